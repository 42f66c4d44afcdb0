"""Integer-only kernels (numba): GEMM, conv, depthwise, pools, add, with exact accumulators.

Layouts: NCHW activations, OIHW weights, ``(N, K)`` x ``(O, K)`` for fully connected (as the float
side). Every kernel takes a profile (``npquant.profiles``) whose rules fix the requantization and
accumulator, and can return its accumulators (``return_accumulators=True``). docs/kernels.md.
"""

from npquant.integer.accumulator import AccumulatorOverflowError
from npquant.integer.conv import conv2d, conv_padding, depthwise_conv2d
from npquant.integer.epilogue import activation_range
from npquant.integer.gemm import fully_connected
from npquant.integer.result import KernelResult

__all__ = [
    "AccumulatorOverflowError",
    "KernelResult",
    "activation_range",
    "conv2d",
    "conv_padding",
    "depthwise_conv2d",
    "fully_connected",
]
