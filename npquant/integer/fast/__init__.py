"""The kernels that exist for speed, and only for speed.

``npquant.integer.reference`` says what every integer op computes, one plain loop per op. The
public kernels (``npquant.integer.conv2d``, ``fully_connected``, ...) check their arguments once
and then pick, from the operands, the fastest of these modules that is exact for them:

* ``vnni_gemm`` / ``vnni_conv``: u8 x s8 ``vpdpbusd`` micro-kernels (AVX-512 VNNI CPUs) for
  int8/uint8 activations, with the requantization fused into the last pass;
* ``gemm_loops``: the portable int32 GEMMs (and the int64 loop for wide accumulators);
* ``conv_loops``: im2col, and the direct depthwise loops;
* ``max_pool``: the 2x2 stride-2 max pool; ``add``: the TFLite-scheme ADD in one fused loop;
* ``threads``: one thread for a call below a grain of work (what a parallel region costs).

The VNNI kernels pack a layer's weights on its first call and reuse the pack (keyed by the
weight bytes and the input shape), so a model repacks nothing per batch.

tests/integer/test_reference.py holds every path to the reference with ``np.array_equal``.
"""
