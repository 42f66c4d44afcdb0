"""Public test helpers for suites that check integer kernels against npquant (needs hypothesis).

``assert_bit_exact`` reports the first divergence instead of numpy's generic message;
``npquant.testing.strategies`` draws valid-by-construction qparams, tensors, multipliers and
conv/GEMM shapes, including the edges.
"""

from npquant.testing.asserts import BitExactMismatch, assert_bit_exact, describe_mismatch

__all__ = ["BitExactMismatch", "assert_bit_exact", "describe_mismatch"]
