"""Integer-only kernels (numba): GEMM, conv, depthwise, pools, add, with exact accumulators.

Layouts: NCHW activations, OIHW weights, ``(N, K)`` x ``(O, K)`` for fully connected (as the float
side). Every kernel takes a profile (``npquant.profiles``) whose rules fix the requantization and
accumulator, and can return its accumulators (``return_accumulators=True``). docs/kernels.md.
"""

from npquant.integer.accumulator import AccumulatorOverflowError
from npquant.integer.conv import conv2d, conv_padding, depthwise_conv2d
from npquant.integer.elementwise import add, concat, relu, relu6, requantize_tensor
from npquant.integer.epilogue import activation_range
from npquant.integer.fused import conv2d_max_pool
from npquant.integer.gemm import fully_connected
from npquant.integer.pool import avg_pool2d, global_avg_pool2d, max_pool2d
from npquant.integer.result import KernelResult

__all__ = [
    "AccumulatorOverflowError",
    "KernelResult",
    "activation_range",
    "add",
    "avg_pool2d",
    "concat",
    "conv2d",
    "conv2d_max_pool",
    "conv_padding",
    "depthwise_conv2d",
    "fully_connected",
    "global_avg_pool2d",
    "max_pool2d",
    "relu",
    "relu6",
    "requantize_tensor",
]
