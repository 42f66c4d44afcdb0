"""Named, versioned requantization profiles: everything that makes two frameworks' integers differ.

A profile is data — a frozen dataclass of named rules that kernels read — never a flag hidden in a
kernel. Adding a framework is adding a profile (and its oracle test), not editing kernels. The
rules are given per op kind, because one framework can requantize differently in different ops
(TFLite's reference CONV_2D uses double rounding while its reference FULLY_CONNECTED uses a
float64 multiply). docs/profiles.md is generated from this module (``npquant profiles``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum

import numpy as np

from npquant.fixedpoint import Ties

# TFLite's custom GEMV (NEON; SSE-emulated on x86) takes a GEMM with one output column when it
# has at least 4 rows (its kernel computes 4 at a time) and a depth of at least 8 (one int8x8
# load; shorter rows would be read past their end).
GEMV_MIN_ROWS = 4
GEMV_MIN_DEPTH = 8


class RequantKind(str, Enum):
    """How an int32 accumulator is scaled by ``M = S_in S_w / S_out`` (docs/fixedpoint.md)."""

    DOUBLE_ROUNDING = "double_rounding"  # SRDHM (ties up), then rounding shift (rule.ties)
    SINGLE_ROUNDING = "single_rounding"  # (acc * M0 + 2^(30-shift)) >> (31-shift), ties up
    FLOAT32 = "float32"  # round(f32(f32(acc) * f32(M))), rule.ties
    FLOAT64 = "float64"  # round(f64(acc) * f64(M)), rule.ties
    POWER_OF_TWO = "power_of_two"  # M = 2^-n exactly: rounding shift right by n, rule.ties
    # as DOUBLE_ROUNDING, but a left shift (M >= 1) comes after the rounded SRDHM:
    # SRDHM(acc, M0) 2^shift (TFLite's aarch64 dot-product 3x3 depthwise kernel)
    DOUBLE_ROUNDING_LATE_SHIFT = "double_rounding_late_shift"
    # oneDNN's int8 epilogue (PyTorch's x86 engine conv): three float32 multiplies with the bias
    # and the zero point between and after them, rounded once at the end:
    # rne(f32(f32(f32(f32(f32(acc) src) wei[c]) + B[c]) D) + Z) (ONEDNN_RECIPROCALS)
    FLOAT32_ONEDNN = "float32_onednn"


class MultiplierDerivation(str, Enum):
    """How the real multiplier ``M`` is computed from the three float32 scales."""

    DOUBLE = "double"  # f64(s_x) * f64(s_w) / f64(s_y)          (TFLite per-channel conv)
    FLOAT32_PRODUCT = "float32_product"  # f64(f32(s_x * s_w)) / f64(s_y)  (TFLite per-tensor)
    FLOAT32_RATIO = "float32_ratio"  # f32(f32(s_x * s_w) / s_y)     (ORT, FBGEMM)
    FLOAT32_RECIPROCAL = "float32_reciprocal"  # f32(f32(s_w * s_x) * f32(1 / s_y))  (QNNPACK)
    # three factors, for the float32_onednn kind: src = f32(1 / f32(1 / s_x)), wei[c] = s_w[c],
    # D = f32(1 / f32(1 / f32(1 / s_y))): PyTorch passes 1/s_x and 1/s_y, ideep inverts them
    # for oneDNN, and oneDNN multiplies by the inverse of its dst scale
    ONEDNN_RECIPROCALS = "onednn_reciprocals"


class Overflow(str, Enum):
    """What an accumulator does when a partial sum leaves its range."""

    RAISE = "raise"  # a contract violation: stop with the layer and index
    WRAP = "wrap"  # two's complement wrap-around (C unsigned arithmetic, most hardware)
    SATURATE = "saturate"  # clamp every partial sum (DSP accumulators with saturation)


class BiasAdd(str, Enum):
    """How a conv / fully-connected layer's int32 bias ``b`` (scale ``S_b = S_x S_w``) enters.

    TFLite and ONNX Runtime take ``b`` itself and add it to the accumulator. PyTorch's quantized
    conv and linear hold the bias as a float (as a trained model has it): npquant hands them
    ``B = f32(b S_b)`` with ``S_b = f32(s_x s_w)`` (the product of the float32 scales that the
    kernels themselves use as the bias scale), and each engine brings ``B`` back its own way.
    """

    INTEGER = "integer"  # acc = b + sum (x - Zx)(w - Zw), requantized as a whole
    # qnnpack: the float bias quantized to int32 (quantize_per_tensor / _per_channel to qint32,
    # fbgemm::Quantize): b' = rne(f32(B f32(1 / S_b))), then added to the accumulator as ``b``
    QUANTIZED_RECIPROCAL = "quantized_reciprocal"
    # fbgemm ReQuantizeOutput with a float bias, per-tensor weights: the bias term is
    # f32(B r) with r = f32(1.0 / f64(S_b)), added to the accumulator in float32:
    # y = round(f32(f32(f32(acc - b) + f32(B r)) M))
    FLOAT32_RECIPROCAL = "float32_reciprocal"
    # the same with per-channel weights: the bias term is f32(B / S_b[c]) (a float32 division)
    FLOAT32_DIVIDE = "float32_divide"
    # oneDNN (PyTorch's x86 engine conv): the float bias B = f32(b S_b) itself, added after the
    # accumulator's multiplies by the scales src and wei[c] (RequantKind.FLOAT32_ONEDNN)
    FLOAT32_AFTER_SCALE = "float32_after_scale"

    @property
    def in_float(self) -> bool:
        """True when the bias is added in float32 after the integer sum (fbgemm, oneDNN)."""
        return self in (BiasAdd.FLOAT32_RECIPROCAL, BiasAdd.FLOAT32_DIVIDE,
                        BiasAdd.FLOAT32_AFTER_SCALE)


class QuantizeMethod(str, Enum):
    """How float -> int QUANTIZE divides by the scale."""

    DIVIDE = "divide"  # x / S
    MULTIPLY_RECIPROCAL = "multiply_reciprocal"  # x * f32(1 / S)


class ZeroPointOrder(str, Enum):
    """Where the zero point enters float -> int quantization."""

    AFTER_ROUNDING = "after_rounding"  # round(x / S) + Z                  (TFLite, ORT)
    BEFORE_ROUNDING_FMA = "before_rounding_fma"  # round(fma(x, 1/S, Z))   (torch per-tensor)
    BEFORE_ROUNDING = "before_rounding"  # round(f32(f32(x / S) + Z))      (torch per-channel)


class AddScheme(str, Enum):
    """The integer sequence of ADD of two differently quantized tensors (npquant.integer.add)."""

    # TFLite: (q - Z) 2^20 of each input rescaled to 2 max(S_a, S_b) by ``add_inputs``, summed,
    # then rescaled to S_out by ``add`` (lite/kernels/add.cc, reference and optimized kernels).
    TFLITE = "tflite"
    # XNNPACK qs8 vadd: r = f32(S / S_out) per input, m = rne(r 2^(20 - e)) with 2^e <= max r,
    # ((q_a - Z_a) m_a + (q_b - Z_b) m_b) / 2^(20 - e) rounded once with ``add.ties`` (up).
    XNNPACK = "xnnpack"
    # QNNPACK q8vadd (PyTorch qnnpack engine): as XNNPACK with 2^(21 - e), ``add.ties`` (away).
    QNNPACK = "qnnpack"
    # ONNX Runtime's QLinearAdd on x86-64 with AVX2 (MLAS): float32 r = f32(S / S_out), zero
    # points folded into one float32 constant, two fused multiply-adds, rne (npquant.integer.mlas).
    MLAS = "mlas"
    # ONNX Runtime's QLinearAdd on ARM (MLAS NEON): QNNPACK's one-shift sequence (2^(21 - e),
    # ``add.ties`` away), falling back to float32 outside its ranges (npquant.integer.mlas_neon).
    MLAS_NEON = "mlas-neon"
    # PyTorch's quantized add on CPU (ATen qadd_kernel, fbgemm and x86 engines): float32
    # dequantize-add-quantize, blocks of 64 elements with fma dequantization and the zero point
    # after the rounding, a scalar tail with it before (npquant.integer.aten_add).
    ATEN = "aten"

    @property
    def multiplier_bits(self) -> int:
        """``b`` of the one-shift schemes: multipliers ``rne(r 2^(b - e)) < 2^(b + 1)``."""
        return {AddScheme.XNNPACK: 20, AddScheme.QNNPACK: 21}[self]

    @property
    def ratio_range(self) -> tuple[float, float]:
        """One-shift schemes: the ratios ``r = f32(S / S_out)`` the library accepts,
        ``lo <= r < hi`` (outside, it declines the op): XNNPACK ``[2^-10, 2^8)``, QNNPACK
        ``[2^-14, 2^8)``."""
        return {AddScheme.XNNPACK: (2.0**-10, 2.0**8), AddScheme.QNNPACK: (2.0**-14, 2.0**8)}[self]

    def left_shift(self, input_bits: int) -> int:
        """TFLite scheme: the left shift ``ls`` of ``(q - Z) 2^ls`` before the input rescaling,
        20 for 8-bit inputs and 15 for int16 (lite/kernels/add.cc Prepare)."""
        return 15 if input_bits == 16 else 20


class AveragePoolScheme(str, Enum):
    """The arithmetic of an average pool over a window (npquant.integer.pool)."""

    # round(sum q / count) on the stored integers with ``average_pool``'s tie rule (TFLite)
    INTEGER = "integer"
    # ONNX Runtime's QLinearAveragePool (contrib_ops/cpu/quantization/qlinear_pool.cc): each
    # input dequantized to f32(S (q - Z)), summed in float32 in window order (rows, then
    # columns), divided by the count in float32, quantized rne(f32(f32(y / S_out) + Z_out));
    # a window that is the whole unpadded plane is the global average pool instead
    FLOAT32 = "float32"


class QParamsMethod(str, Enum):
    """How (scale, zero point) are chosen from an observed range (npquant.qparams)."""

    TFLITE = "tflite"  # float64 scale, zero point nudged from the smaller-error end, ties away
    PYTORCH = "pytorch"  # float32 scale, Z = qmin - round_even(min / S), eps floor


@dataclass(frozen=True)
class RequantRule:
    """The requantization of one op kind: arithmetic, multiplier derivation, final tie rule.

    SIMD kernels can round channels differently by position: with ``channel_group = g > 0``,
    channels in the whole groups of ``g`` (``c < g * floor(C / g)``) round with ``ties`` and the
    ``C mod g`` channels of the scalar tail with ``tail_ties`` (TFLite's optimized depthwise conv
    on x86: groups of 8 channels ties up, the tail ties away).

    ``per_channel_derivation``, when given, is how ``M`` is derived for per-channel weight
    scales (more than one); ``derivation`` then applies to per-tensor weights only (TFLite's
    optimized FULLY_CONNECTED: per-tensor ``M`` from the float32 product of the scales,
    per-channel from the double product).

    ``gemv``, when given, is the rule of the GEMMs that TFLite hands to its custom NEON GEMV
    kernel instead of ruy (lite/kernels/cpu_backend_gemm_custom_gemv.h): one output column
    (``N`` rows of a fully-connected input, ``N OH OW`` output pixels of a conv equal to 1), at
    least ``GEMV_MIN_ROWS`` output channels and a depth (``K``, ``C KH KW``) of at least
    ``GEMV_MIN_DEPTH`` (see ``for_gemm``). On aarch64 ruy rounds once and that kernel twice.
    """

    kind: RequantKind
    derivation: MultiplierDerivation
    ties: Ties
    channel_group: int = 0
    tail_ties: Ties | None = None
    per_channel_derivation: MultiplierDerivation | None = None
    gemv: RequantRule | None = None
    # the depthwise shapes of TFLite's 3x3 kernel (``tflite_fast_3x3``), when it rounds otherwise
    fast_3x3: RequantRule | None = None
    # how the int32 bias enters (``BiasAdd``); ``per_channel_bias``, when given, for per-channel
    # weight scales (as ``per_channel_derivation``)
    bias: BiasAdd = BiasAdd.INTEGER
    per_channel_bias: BiasAdd | None = None

    def __post_init__(self) -> None:
        biases = [b for b in (self.bias, self.per_channel_bias) if b is not None]
        for b in biases:
            # fbgemm's terms go with the float32 kind, oneDNN's bias after the scale with its own
            need = (RequantKind.FLOAT32_ONEDNN if b is BiasAdd.FLOAT32_AFTER_SCALE
                    else RequantKind.FLOAT32 if b.in_float else None)
            if need is not None and self.kind is not need:
                raise ValueError(f"the float32 bias {b.value} needs the {need.value} "
                                 f"requantization kind, got {self.kind.value}")
        onednn_parts = (self.kind is RequantKind.FLOAT32_ONEDNN,
                        MultiplierDerivation.ONEDNN_RECIPROCALS in
                        (self.derivation, self.per_channel_derivation))
        if any(onednn_parts) and not (all(onednn_parts) and self.per_channel_derivation in
                                      (None, MultiplierDerivation.ONEDNN_RECIPROCALS)):
            raise ValueError("the float32_onednn kind and the onednn_reciprocals derivation go "
                             f"together (got kind={self.kind.value}, derivation="
                             f"{self.derivation.value}, per_channel_derivation="
                             f"{getattr(self.per_channel_derivation, 'value', None)})")
        if (self.channel_group > 0) != (self.tail_ties is not None):
            raise ValueError("channel_group > 0 and tail_ties go together "
                             f"(got channel_group={self.channel_group}, "
                             f"tail_ties={self.tail_ties})")
        if self.channel_group < 0:
            raise ValueError(f"channel_group must be >= 0, got {self.channel_group}")

    def same_arithmetic(self, other: RequantRule) -> bool:
        """True when ``other`` rounds as this rule does once ``M`` is known: the same kind, tie
        rules, channel grouping and bias rules (the derivation of ``M`` from the scales may
        differ)."""
        return (self.kind, self.ties, self.channel_group, self.tail_ties, self.bias,
                self.per_channel_bias) == (other.kind, other.ties, other.channel_group,
                                           other.tail_ties, other.bias, other.per_channel_bias)

    def channel_ties(self, channels: int) -> np.ndarray:
        """Tie-rule codes (``Ties.code``) per output channel: length ``channels`` when the rule
        groups channels, else length 1 (one rule for all)."""
        if self.channel_group == 0:
            return np.array([self.ties.code], dtype=np.int64)
        codes = np.full(channels, self.tail_ties.code, dtype=np.int64)
        codes[: self.channel_group * (channels // self.channel_group)] = self.ties.code
        return codes

    def for_gemm(self, columns: int, rows: int, depth: int) -> RequantRule:
        """The rule of a GEMM with ``columns`` output columns (batch rows, or output pixels),
        ``rows`` output channels and reduction ``depth``: ``gemv`` on TFLite's GEMV shapes
        (``columns == 1``, ``rows >= GEMV_MIN_ROWS``, ``depth >= GEMV_MIN_DEPTH``), else self."""
        if (self.gemv is not None and columns == 1 and rows >= GEMV_MIN_ROWS
                and depth >= GEMV_MIN_DEPTH):
            return self.gemv
        return self

    def for_depthwise(self, fast_3x3: bool) -> RequantRule:
        """The rule of a depthwise conv: ``fast_3x3`` when given and the shape is one that
        TFLite's 3x3 kernel takes (``fast_3x3`` from ``tflite_fast_3x3``), else self."""
        return self.fast_3x3 if fast_3x3 and self.fast_3x3 is not None else self

    def derivation_for(self, per_channel: bool) -> MultiplierDerivation:
        """The multiplier derivation for per-channel (True) or per-tensor (False) weights."""
        if per_channel and self.per_channel_derivation is not None:
            return self.per_channel_derivation
        return self.derivation

    def bias_for(self, per_channel: bool) -> BiasAdd:
        """How the bias enters for per-channel (True) or per-tensor (False) weights."""
        if per_channel and self.per_channel_bias is not None:
            return self.per_channel_bias
        return self.bias

    def describe(self) -> str:
        """One line: ``double_rounding, M from double, final ties away``."""
        text = f"{self.kind.value}, M from {self.derivation.value}"
        if self.per_channel_derivation is not None:
            text += f" (per-channel: {self.per_channel_derivation.value})"
        text += f", ties {self.ties.value}"
        if self.channel_group:
            text += (f" on whole groups of {self.channel_group} channels, "
                     f"{self.tail_ties.value} on the rest")
        if self.gemv is not None:
            text += (f"; GEMV shapes (1 column, >= {GEMV_MIN_ROWS} channels, depth >= "
                     f"{GEMV_MIN_DEPTH}): {self.gemv.describe()}")
        if self.fast_3x3 is not None:
            text += f"; 3x3 kernel shapes: {self.fast_3x3.describe()}"
        if self.bias is not BiasAdd.INTEGER or self.per_channel_bias is not None:
            text += f"; bias {self.bias.value}"
            if self.per_channel_bias is not None:
                text += f" (per-channel: {self.per_channel_bias.value})"
        return text


def tflite_fast_3x3(channels: int, multiplier: int, kernel: tuple[int, int],
                    stride: tuple[int, int], dilation: tuple[int, int], pads: tuple[int, int],
                    in_hw: tuple[int, int], out_hw: tuple[int, int]) -> bool:
    """True when TFLite's optimized DEPTHWISE_CONV_2D runs its dedicated 3x3 kernel (the shape
    part of ``Fast3x3FilterKernelSupported``, depthwiseconv_3x3_filter_common.h): a 3x3 filter,
    depth multiplier 1, equal strides of 1 or 2, no dilation, a multiple of 8 channels, equal
    top/left pads ``pads = (pad_h, pad_w)`` of 0 or 1, the last window within the input (with
    one padded row and column when padded), and not a 1-wide input taller than 1 (or the
    reverse)."""
    (h, w), (oh, ow) = in_hw, out_hw
    ph, pw = pads
    if not (kernel == (3, 3) and multiplier == 1 and stride[0] == stride[1]
            and stride[0] in (1, 2) and dilation == (1, 1) and channels % 8 == 0
            and ph == pw and ph in (0, 1)):
        return False
    x_end = (ow - 1) * stride[1] - pw + 3  # one past the last window's right column
    y_end = (oh - 1) * stride[0] - ph + 3
    if ph == 0:
        return x_end <= w and y_end <= h
    if x_end > w + 1 or y_end > h + 1:
        return False
    return h == w if 1 in (h, w) else True


@dataclass(frozen=True)
class QuantizeRule:
    """Float -> integer quantization ``q = saturate(round(x / S) + Z)`` and its variants.

    SIMD kernels can quantize by position: with ``block = b > 0`` this rule applies to the
    elements of the whole blocks of ``b`` of the flat (C-order) array, ``i < b floor(n / b)``,
    and ``tail`` (a rule without blocks) to the last ``n mod b`` (TFLite's optimized QUANTIZE
    on x86: blocks of 8 multiply by f32(1/S) and round ties to even, the scalar tail divides in
    double and rounds ties away).
    """

    method: QuantizeMethod
    precision: str  # "float32" or "float64": the type of the division / multiplication
    ties: Ties
    zero_point: ZeroPointOrder
    block: int = 0
    tail: QuantizeRule | None = None

    def __post_init__(self) -> None:
        if self.precision not in ("float32", "float64"):
            raise ValueError(f"precision must be 'float32' or 'float64', got {self.precision!r}")
        if self.block < 0:
            raise ValueError(f"block must be >= 0, got {self.block}")
        if (self.block > 0) != (self.tail is not None):
            raise ValueError(f"block > 0 and tail go together (got block={self.block}, "
                             f"tail={self.tail})")
        if self.tail is not None and self.tail.block:
            raise ValueError("the tail rule of a blocked QuantizeRule cannot itself be blocked")
        if (self.zero_point is ZeroPointOrder.BEFORE_ROUNDING_FMA
                and self.method is not QuantizeMethod.MULTIPLY_RECIPROCAL):
            # fma(x, f32(1/S), Z) is one rounding of x * (1/S) + Z: it has no dividing form
            raise ValueError("zero point order before_rounding_fma needs the multiply method "
                             f"(fma(x, f32(1/S), Z)), got method {self.method.value!r}")

    def describe(self) -> str:
        """One line: ``divide in float32, ties away, zero point after_rounding``."""
        text = (f"{self.method.value} in {self.precision}, ties {self.ties.value}, "
                f"zero point {self.zero_point.value}")
        if self.block:
            text = (f"whole blocks of {self.block} elements: {text}; tail: "
                    f"{self.tail.describe()}")
        return text


@dataclass(frozen=True)
class DequantizeRule:
    """Integer -> float32 ``r = S (q - Z)``: rounded once from the exact product (default) or
    ``two_step`` as ``f32(f32(q S) + f32(-Z S))``, or with ``fused`` as one fused multiply-add
    ``f32(q S + f32(-Z S))`` (NEON ``vmlaq_f32`` compiled to ``fmla`` on aarch64: ``q S`` is
    not rounded); ``block``/``tail`` as in ``QuantizeRule``."""

    two_step: bool = False
    block: int = 0
    tail: DequantizeRule | None = None
    fused: bool = False

    def __post_init__(self) -> None:
        if self.fused and not self.two_step:
            raise ValueError("fused applies to the two_step form (got fused=True, "
                             "two_step=False)")
        if self.block < 0 or (self.block > 0) != (self.tail is not None):
            raise ValueError(f"block >= 0, and block > 0 with a tail rule (got block="
                             f"{self.block}, tail={self.tail})")
        if self.tail is not None and self.tail.block:
            raise ValueError("the tail rule of a blocked DequantizeRule cannot itself be blocked")

    def describe(self) -> str:
        """One line: ``exact product rounded once to float32``."""
        text = ("f32(q S + f32(-Z S)), fused multiply-add" if self.fused
                else "f32(f32(q S) + f32(-Z S))" if self.two_step
                else "exact product rounded once to float32")
        if self.block:
            text = f"whole blocks of {self.block} elements: {text}; tail: {self.tail.describe()}"
        return text


@dataclass(frozen=True)
class AccumulatorRule:
    """The accumulator of GEMM/conv: width in bits (16..64) and overflow behaviour.

    ``pair_saturation`` models x86 ``vpmaddubsw``: each adjacent pair of uint8 x int8 products
    along the kernel's reduction order is saturated to int16 before it is accumulated.
    ``conv_order`` is that order for a convolution: ``"chw"`` pairs ``(ci, kh, kw)`` with ``kw``
    fastest (an NCHW im2col row); ``"hwc"`` pairs ``(kh, kw, ci)`` with ``ci`` fastest (an NHWC
    im2col row, as ONNX Runtime's QLinearConv and fbgemm's conv run on AVX2: two channels of one
    tap, or with an odd channel count the last channel of one tap and the first of the next).
    A fully-connected layer's order is always its input features.
    """

    bits: int
    overflow: Overflow
    pair_saturation: bool = False
    conv_order: str = "chw"

    def __post_init__(self) -> None:
        if self.conv_order not in ("chw", "hwc"):
            raise ValueError(f"conv_order must be 'chw' or 'hwc', got {self.conv_order!r}")

    def describe(self) -> str:
        """One line: ``int32, overflow raise``."""
        extra = (f", int16 pair saturation (vpmaddubsw) along {self.conv_order} in convs"
                 if self.pair_saturation else "")
        return f"int{self.bits}, overflow {self.overflow.value}{extra}"


@dataclass(frozen=True)
class Profile:
    """One framework's integer arithmetic, named and versioned. Kernels read it; none edits it."""

    name: str
    version: str
    description: str
    conv: RequantRule
    depthwise_conv: RequantRule
    fully_connected: RequantRule
    add: RequantRule  # ADD of two tensors: rescale each input, sum, requantize (op docs)
    average_pool: Ties  # tie rule of the integer division sum / count (INTEGER scheme)
    quantize: QuantizeRule  # float -> int with per-tensor qparams
    quantize_per_channel: QuantizeRule  # float -> int with per-channel qparams
    qparams_method: QParamsMethod
    narrow_range_weights: bool  # symmetric weights in [-(2^(b-1) - 1), 2^(b-1) - 1]
    accumulator: AccumulatorRule
    # ADD's input rescalings (TFLITE scheme); None: the ``add`` rule, as in TFLite's reference.
    add_inputs: RequantRule | None = None
    add_scheme: AddScheme = AddScheme.TFLITE
    dequantize: DequantizeRule = DequantizeRule()
    # How a fused RELU6's upper clamp, real 6.0, becomes an output integer; None: ``quantize``.
    # TFLite: Z + round_away(f32(6 / S)); XNNPACK: round_even(f32(f32(6 / S) + Z)).
    relu6_bound: QuantizeRule | None = None
    # The global average pool: None divides ``sum q`` by the plane size with ``average_pool``'s
    # tie rule; a rule requantizes ``sum q - Z N`` by ``M = f32(S_in / f32(S_out N))`` (ONNX
    # Runtime's QLinearGlobalAveragePool: ``M`` is the FLOAT32_RATIO of S_in, 1 and f32(S_out N)).
    global_average_pool: RequantRule | None = None
    # The accumulator of a conv whose every group has one input and one output channel (a
    # depthwise conv with multiplier 1), where the framework runs those on a kernel of their own;
    # None: ``accumulator``. ONNX Runtime on AVX2: MLAS's depthwise kernels sum
    # (x - Zx)(w - Zw) exactly in int32 while its GEMM (every other conv) pairs vpmaddubsw.
    depthwise_accumulator: AccumulatorRule | None = None
    # How an average pool over a window computes (``AveragePoolScheme``); ``average_pool`` is
    # its tie rule under the INTEGER scheme.
    average_pool_scheme: AveragePoolScheme = AveragePoolScheme.INTEGER

    def relu6_bound_rule(self) -> QuantizeRule:
        """The rule that quantizes RELU6's bound 6.0 (``relu6_bound``, else ``quantize``)."""
        return self.relu6_bound if self.relu6_bound is not None else self.quantize

    def add_input_rule(self) -> RequantRule:
        """The rule of ADD's two input rescalings (``add_inputs``, else ``add``)."""
        return self.add_inputs if self.add_inputs is not None else self.add

    def quantize_rule(self, per_channel: bool) -> QuantizeRule:
        """The float -> int rule for per-tensor or per-channel qparams."""
        return self.quantize_per_channel if per_channel else self.quantize

    def rules(self) -> list[tuple[str, str]]:
        """``(field, description)`` pairs for listing (``npquant profiles``); ADD's input rule
        and scheme come right after ``add``, ``dequantize`` after the quantize rules, the
        depthwise accumulator (when set) after ``accumulator``."""
        later = ("add_inputs", "add_scheme", "dequantize", "depthwise_accumulator",
                 "average_pool_scheme")
        names = [f.name for f in fields(self)
                 if f.name not in ("name", "version", "description") + later]
        at = names.index("add") + 1
        names[at:at] = (["add_inputs"] if self.add_inputs is not None else []) + ["add_scheme"]
        at = names.index("average_pool") + 1
        names[at:at] = (["average_pool_scheme"]
                        if self.average_pool_scheme is not AveragePoolScheme.INTEGER else [])
        at = names.index("quantize_per_channel") + 1
        names[at:at] = ["dequantize"]
        at = names.index("accumulator") + 1
        names[at:at] = ["depthwise_accumulator"] if self.depthwise_accumulator is not None else []
        out = []
        for name in names:
            value = getattr(self, name)
            if name == "relu6_bound" and value is None:
                out.append((name, "as quantize"))
                continue
            if name == "global_average_pool" and value is None:
                continue  # listed only when set: the global pool is then the average_pool rule
            if name == "average_pool" and \
                    self.average_pool_scheme is not AveragePoolScheme.INTEGER:
                out.append((name, "not read: the float32 scheme rounds to even"))
                continue
            if name == "add" and self.add_scheme in (AddScheme.MLAS, AddScheme.ATEN):
                out.append((name, f"not read: the {self.add_scheme.value} scheme is a float32 "
                                  "sequence"))
                continue
            text = value.describe() if hasattr(value, "describe") else _plain(value)
            out.append((name, text))
        return out


def _plain(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


_DR_DOUBLE_AWAY = RequantRule(RequantKind.DOUBLE_ROUNDING, MultiplierDerivation.DOUBLE, Ties.AWAY)
_SR_DOUBLE = RequantRule(RequantKind.SINGLE_ROUNDING, MultiplierDerivation.DOUBLE, Ties.UP)
_F32_RATIO_EVEN = RequantRule(RequantKind.FLOAT32, MultiplierDerivation.FLOAT32_RATIO, Ties.EVEN)
# fbgemm's ReQuantizeOutput with PyTorch's float bias (BiasAdd): per-tensor f32(B f32(1/S_b)),
# per-channel f32(B / S_b), added to f32(acc) before the multiply by M
_FBGEMM_F32 = replace(_F32_RATIO_EVEN, bias=BiasAdd.FLOAT32_RECIPROCAL,
                      per_channel_bias=BiasAdd.FLOAT32_DIVIDE)
_F32_RECIP_EVEN = RequantRule(RequantKind.FLOAT32, MultiplierDerivation.FLOAT32_RECIPROCAL,
                              Ties.EVEN)
# QNNPACK (PyTorch qnnpack engine): the float bias quantized to int32, b' = rne(f32(B f32(1/S_b)))
_QNNPACK_F32 = replace(_F32_RECIP_EVEN, bias=BiasAdd.QUANTIZED_RECIPROCAL)
# oneDNN's int8 conv epilogue (PyTorch x86 engine: its brgemm, brdgmm and jit convs; its gemm
# conv, which a few depthwise shapes with a channel multiplier take, multiplies by f32(src wei)
# first instead, not modelled: docs/framework_facts.md):
# rne(f32(f32(f32(f32(f32(acc) src) wei[c]) + B[c]) D) + Z), the float bias B itself after
# the scales
_ONEDNN_F32 = RequantRule(RequantKind.FLOAT32_ONEDNN, MultiplierDerivation.ONEDNN_RECIPROCALS,
                          Ties.EVEN, bias=BiasAdd.FLOAT32_AFTER_SCALE)
_XNNPACK_QUANTIZE = QuantizeRule(QuantizeMethod.MULTIPLY_RECIPROCAL, "float32", Ties.EVEN,
                                 ZeroPointOrder.AFTER_ROUNDING)
_TFLITE_QUANTIZE = QuantizeRule(QuantizeMethod.DIVIDE, "float32", Ties.AWAY,
                                ZeroPointOrder.AFTER_ROUNDING)
_ORT_QUANTIZE = QuantizeRule(QuantizeMethod.DIVIDE, "float32", Ties.EVEN,
                             ZeroPointOrder.AFTER_ROUNDING)
_POW2_QUANTIZE = QuantizeRule(QuantizeMethod.DIVIDE, "float32", Ties.UP,
                              ZeroPointOrder.AFTER_ROUNDING)
_EXACT_INT32 = AccumulatorRule(32, Overflow.RAISE)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="tflite",
            version="1",
            description="TFLite reference kernels (BUILTIN_REF op resolver), int8, as in "
                        "ai-edge-litert 2.x: gemmlowp double rounding; reference FC in float64",
            conv=_DR_DOUBLE_AWAY,
            depthwise_conv=_DR_DOUBLE_AWAY,
            fully_connected=RequantRule(RequantKind.FLOAT64, MultiplierDerivation.DOUBLE,
                                        Ties.AWAY),
            add=_DR_DOUBLE_AWAY,
            average_pool=Ties.AWAY,
            quantize=_TFLITE_QUANTIZE,
            quantize_per_channel=_TFLITE_QUANTIZE,
            qparams_method=QParamsMethod.TFLITE,
            narrow_range_weights=True,
            accumulator=_EXACT_INT32,
        ),
        Profile(
            name="tflite-single-rounding",
            version="1",
            description="TFLite built with TFLITE_SINGLE_ROUNDING (also ruy, TOSA single_round): "
                        "one rounding of acc * M0 in int64, ties up",
            conv=_SR_DOUBLE,
            depthwise_conv=_SR_DOUBLE,
            fully_connected=_SR_DOUBLE,
            add=_SR_DOUBLE,
            average_pool=Ties.AWAY,
            quantize=_TFLITE_QUANTIZE,
            quantize_per_channel=_TFLITE_QUANTIZE,
            qparams_method=QParamsMethod.TFLITE,
            narrow_range_weights=True,
            accumulator=_EXACT_INT32,
        ),
        Profile(
            name="tflite-optimized",
            version="2",
            description="TFLite optimized builtin kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES), "
                        "int8, ai-edge-litert 2.3 on x86-64 (NEON paths via SSE emulation): "
                        "final shift ties up",
            conv=RequantRule(RequantKind.DOUBLE_ROUNDING, MultiplierDerivation.DOUBLE, Ties.UP),
            # vrshlq on whole groups of 8 channels, the scalar reference rounding on the rest
            depthwise_conv=RequantRule(RequantKind.DOUBLE_ROUNDING, MultiplierDerivation.DOUBLE,
                                       Ties.UP, channel_group=8, tail_ties=Ties.AWAY),
            fully_connected=RequantRule(RequantKind.DOUBLE_ROUNDING,
                                        MultiplierDerivation.FLOAT32_PRODUCT, Ties.UP,
                                        per_channel_derivation=MultiplierDerivation.DOUBLE),
            add=_DR_DOUBLE_AWAY,
            add_inputs=_SR_DOUBLE,
            average_pool=Ties.AWAY,
            quantize=QuantizeRule(QuantizeMethod.MULTIPLY_RECIPROCAL, "float32", Ties.EVEN,
                                  ZeroPointOrder.AFTER_ROUNDING, block=8,
                                  tail=QuantizeRule(QuantizeMethod.DIVIDE, "float64", Ties.AWAY,
                                                    ZeroPointOrder.AFTER_ROUNDING)),
            quantize_per_channel=_TFLITE_QUANTIZE,
            dequantize=DequantizeRule(two_step=True, block=8, tail=DequantizeRule()),
            qparams_method=QParamsMethod.TFLITE,
            narrow_range_weights=True,
            accumulator=_EXACT_INT32,
            relu6_bound=_TFLITE_QUANTIZE,  # CalculateActivationRangeQuantized, not the blocks
        ),
        Profile(
            name="tflite-xnnpack",
            version="2",
            description="TFLite default Interpreter() on the XNNPACK delegate, int8, "
                        "ai-edge-litert 2.3 on x86-64: float32 requantization ties to even, "
                        "M = f32(f32(s_x s_w) / s_y) < 256",
            conv=_F32_RATIO_EVEN,
            depthwise_conv=_F32_RATIO_EVEN,
            fully_connected=_F32_RATIO_EVEN,
            # qs8 vadd: 21-bit multipliers from f32(S / S_out), one shift rounding ties up
            add=RequantRule(RequantKind.SINGLE_ROUNDING, MultiplierDerivation.FLOAT32_RATIO,
                            Ties.UP),
            add_scheme=AddScheme.XNNPACK,
            average_pool=Ties.AWAY,  # int8 AVERAGE_POOL_2D is not delegated: builtin kernel
            quantize=_XNNPACK_QUANTIZE,
            quantize_per_channel=_TFLITE_QUANTIZE,
            qparams_method=QParamsMethod.TFLITE,
            narrow_range_weights=True,
            accumulator=_EXACT_INT32,
            # the delegate passes [-inf, 6] as floats; XNNPACK quantizes lrintf(6 / S + Z)
            relu6_bound=QuantizeRule(QuantizeMethod.DIVIDE, "float32", Ties.EVEN,
                                     ZeroPointOrder.BEFORE_ROUNDING),
        ),
        Profile(
            name="onnxruntime",
            version="3",
            description="ONNX Runtime CPU (MLAS) on x86-64 with AVX2: QLinearConv/QLinearMatMul/"
                        "QGemm nearbyint(f32(acc) * f32(f32(s_x s_w) / s_y)) + Z; QLinearAdd's "
                        "float32 fma sequence; QLinearGlobalAveragePool; QLinearAveragePool's "
                        "float32 sequence",
            conv=_F32_RATIO_EVEN,
            depthwise_conv=_F32_RATIO_EVEN,
            fully_connected=_F32_RATIO_EVEN,
            # ``add`` is not read by the MLAS scheme (npquant.integer.mlas)
            add=_F32_RATIO_EVEN,
            add_scheme=AddScheme.MLAS,
            average_pool=Ties.EVEN,
            average_pool_scheme=AveragePoolScheme.FLOAT32,
            global_average_pool=_F32_RATIO_EVEN,
            quantize=_ORT_QUANTIZE,
            quantize_per_channel=_ORT_QUANTIZE,
            qparams_method=QParamsMethod.PYTORCH,
            narrow_range_weights=False,
            accumulator=_EXACT_INT32,
        ),
        Profile(
            name="pytorch-fbgemm",
            version="2",
            description="PyTorch 2.13 quantized CPU ops on the fbgemm engine (and linear on "
                        "'x86'): float32 requantization as ORT, the float bias added in "
                        "float32 before it; quantized add ATen's float32 sequence; "
                        "quantize_per_tensor rounds fma(x, 1/S, Z)",
            # fbgemm ReQuantizeOutput (include/fbgemm/OutputProcessing-inl.h,
            # src/QuantUtilsAvx2.cc requantizeOutputProcessingAvx2, FbgemmI8DepthwiseAvx2-inl.h)
            conv=_FBGEMM_F32,
            depthwise_conv=_FBGEMM_F32,
            fully_connected=_FBGEMM_F32,
            # ``add`` is not read by the ATen scheme (npquant.integer.aten_add); the average
            # pool's rule is npquant's (PyTorch pools are not measured)
            add=_F32_RATIO_EVEN,
            add_scheme=AddScheme.ATEN,
            average_pool=Ties.EVEN,
            quantize=QuantizeRule(QuantizeMethod.MULTIPLY_RECIPROCAL, "float32", Ties.EVEN,
                                  ZeroPointOrder.BEFORE_ROUNDING_FMA),
            quantize_per_channel=QuantizeRule(QuantizeMethod.MULTIPLY_RECIPROCAL, "float32",
                                              Ties.EVEN, ZeroPointOrder.BEFORE_ROUNDING),
            qparams_method=QParamsMethod.PYTORCH,
            narrow_range_weights=False,
            accumulator=_EXACT_INT32,
        ),
        Profile(
            name="pytorch-qnnpack",
            version="2",
            description="PyTorch 2.13 quantized CPU ops on the qnnpack engine (quint8 x qint8): "
                        "nearbyint(f32(acc) * f32(f32(s_w s_x) * f32(1 / s_y))) + Z, the float "
                        "bias quantized to int32 first",
            # quant_utils::QuantizeBias (aten/src/ATen/native/quantized/cpu/QuantUtils.h)
            conv=_QNNPACK_F32,
            depthwise_conv=_QNNPACK_F32,
            fully_connected=_QNNPACK_F32,
            # q8vadd: 22-bit multipliers from f32(S / S_out), one shift rounding ties away
            add=RequantRule(RequantKind.SINGLE_ROUNDING, MultiplierDerivation.FLOAT32_RATIO,
                            Ties.AWAY),
            add_scheme=AddScheme.QNNPACK,
            average_pool=Ties.EVEN,
            quantize=QuantizeRule(QuantizeMethod.MULTIPLY_RECIPROCAL, "float32", Ties.EVEN,
                                  ZeroPointOrder.BEFORE_ROUNDING_FMA),
            quantize_per_channel=QuantizeRule(QuantizeMethod.MULTIPLY_RECIPROCAL, "float32",
                                              Ties.EVEN, ZeroPointOrder.BEFORE_ROUNDING),
            qparams_method=QParamsMethod.PYTORCH,
            narrow_range_weights=False,
            accumulator=_EXACT_INT32,
        ),
        Profile(
            name="pow2",
            version="1",
            description="TI TIDL style: symmetric power-of-two scales, requantization is a "
                        "rounding right shift (ties up)",
            conv=RequantRule(RequantKind.POWER_OF_TWO, MultiplierDerivation.DOUBLE, Ties.UP),
            depthwise_conv=RequantRule(RequantKind.POWER_OF_TWO, MultiplierDerivation.DOUBLE,
                                       Ties.UP),
            fully_connected=RequantRule(RequantKind.POWER_OF_TWO, MultiplierDerivation.DOUBLE,
                                        Ties.UP),
            add=RequantRule(RequantKind.POWER_OF_TWO, MultiplierDerivation.DOUBLE, Ties.UP),
            average_pool=Ties.UP,
            quantize=_POW2_QUANTIZE,
            quantize_per_channel=_POW2_QUANTIZE,
            qparams_method=QParamsMethod.TFLITE,
            narrow_range_weights=True,
            accumulator=_EXACT_INT32,
        ),
    )
}


def _without_vnni(base: Profile, version: str, depthwise: str,
                  depthwise_accumulator: AccumulatorRule | None = None) -> Profile:
    """``base`` as it runs on an x86 CPU without VNNI (AVX2 ``vpmaddubsw``): the same rules, but
    uint8 x int8 products are summed in int16-saturated pairs, along the input features of a
    linear layer and along ``(kh, kw, ci)`` in a conv; ``depthwise`` says how its depthwise
    convs sum (``depthwise_accumulator``). Measured under ``qemu-x86_64 -cpu Haswell``
    (tools/emulated_paths.py: ORT QLinearMatMul / MatMulInteger / QLinearConv and PyTorch fbgemm
    linear / conv2d equal on every case, the exact sums on 5-25%; tools/emulated_cpu.py: every
    row of the oracle table, depthwise convs included)."""
    return replace(base, name=f"{base.name}-avx2", version=version,
                   description=f"{base.name} on x86 without VNNI (AVX2): u8 x s8 products summed "
                               "in int16-saturated pairs (vpmaddubsw), conv pairs along (kh, kw, "
                               f"ci); {depthwise}",
                   accumulator=AccumulatorRule(32, Overflow.RAISE, pair_saturation=True,
                                               conv_order="hwc"),
                   depthwise_accumulator=depthwise_accumulator)


PROFILES.update({p.name: p for p in (
    # MLAS: a conv with one input and one output channel per group runs MlasConvDepthwise
    # (qdwconv.cpp, intrinsics/avx2/qdwconv_avx2.cpp: (x - Zx)(w - Zw) widened to int16,
    # multiplied to int32, summed in int32) or, with 16k channels and Zw = 0,
    # MlasConvSymDepthwiseKernelAvx2 (x86_64/ConvSymKernelAvx2.S: x and w widened to int32 by
    # vpmovzxbd / vpmovsxbd, then vpmaddwd, whose second product is 0 x (0 or -1): x w exactly);
    # a depthwise conv with a channel multiplier > 1 is a grouped GEMM, whose u8 x s8 kernel
    # pairs taps (kh, kw).
    # version 4: QLinearAveragePool's float32 sequence of onnxruntime version 3
    _without_vnni(PROFILES["onnxruntime"], "4",
                  "one input and one output channel per group (depthwise, multiplier 1) sums "
                  "exactly (MLAS depthwise kernels)", depthwise_accumulator=_EXACT_INT32),
    # fbgemm's depthwise kernels (FbgemmI8DepthwiseAvx2) pair kernel taps in vpmaddubsw too;
    # version 2: the float bias of pytorch-fbgemm version 2
    _without_vnni(PROFILES["pytorch-fbgemm"], "2",
                  "depthwise convs pair kernel taps (kh, kw) the same way"))})


# PyTorch's x86 engine (torch.backends.quantized.engine = "x86", the default on x86) with
# AVX-512 VNNI: its conv and depthwise conv run on oneDNN (ATen PackedConvWeightsOnednn,
# aten/src/ATen/native/quantized/cpu/qconv.cpp), its linear and add on fbgemm / ATen as the
# fbgemm engine. oneDNN's int8 conv kernels (brgemm, jit, gemm alike) apply the scales, the
# float bias, the dst scale and the zero point one float32 operation at a time (_ONEDNN_F32;
# docs/framework_facts.md). Without VNNI the engine hands these convs to fbgemm
# (pytorch-fbgemm-avx2; npquant.testing.oracles.CPU_VARIANTS).
PROFILES["pytorch-x86"] = replace(
    PROFILES["pytorch-fbgemm"], name="pytorch-x86", version="1",
    description="PyTorch 2.13 quantized CPU ops on the x86 engine with AVX-512 VNNI: conv and "
                "depthwise on oneDNN 3.12, rne(f32(f32(f32(f32(f32(acc) src) s_w) + B) D) + Z) "
                "with src = f32(1/f32(1/s_x)), D = f32(1/f32(1/f32(1/s_y))), B the float "
                "bias; linear, add and quantize as pytorch-fbgemm",
    conv=_ONEDNN_F32, depthwise_conv=_ONEDNN_F32)


def _optimized_on_aarch64(base: Profile) -> Profile:
    """TFLite's optimized kernels as the aarch64 build runs them (measured under ``qemu-aarch64
    -cpu neoverse-n1``, tools/emulated_cpu.py; docs/framework_facts.md). Two paths differ from
    the x86-64 build, whose NEON code is emulated with SSE: CONV_2D and FULLY_CONNECTED GEMMs on
    ruy's ARM kernels round ``acc M0`` once (ties up) where the x86 kernels round twice, except
    on the shapes of the custom GEMV kernel (``RequantRule.gemv``), which rounds twice on both;
    DEPTHWISE_CONV_2D on the shapes of the 3x3 kernel (``tflite_fast_3x3``; its aarch64
    dot-product version) applies ``M >= 1`` as a left shift of the rounded product; and
    DEQUANTIZE's ``vmlaq_f32`` on blocks of 8 is a fused multiply-add (``fmla``)."""
    return replace(
        base, name=f"{base.name}-aarch64", version="1",
        description=f"{base.name} on aarch64 (ai-edge-litert 2.3, neoverse-n1): conv and fully "
                    "connected round once (ruy), twice on GEMV shapes; 3x3 depthwise shifts "
                    "left last; dequantize fused",
        conv=RequantRule(RequantKind.SINGLE_ROUNDING, base.conv.derivation, Ties.UP,
                         gemv=base.conv),
        fully_connected=RequantRule(
            RequantKind.SINGLE_ROUNDING, base.fully_connected.derivation, Ties.UP,
            per_channel_derivation=base.fully_connected.per_channel_derivation,
            gemv=base.fully_connected),
        depthwise_conv=replace(base.depthwise_conv, fast_3x3=RequantRule(
            RequantKind.DOUBLE_ROUNDING_LATE_SHIFT, base.depthwise_conv.derivation, Ties.UP)),
        dequantize=replace(base.dequantize, fused=True))


PROFILES["tflite-optimized-aarch64"] = _optimized_on_aarch64(PROFILES["tflite-optimized"])
# ONNX Runtime on aarch64 (measured under qemu-aarch64 -cpu neoverse-n1, tools/emulated_cpu.py):
# QLinearAdd is MLAS's NEON kernel (mlas/lib/qladd.cpp, MLAS_NEON_INTRINSICS), QNNPACK's
# one-shift sequence with a float32 fallback (npquant.integer.mlas_neon); QLinearConv, QGemm and
# the quantize ops give the x86 results (exact sums on ARM's dot-product kernels).
PROFILES["onnxruntime-aarch64"] = replace(  # version 2: QLinearAveragePool as onnxruntime 3
    PROFILES["onnxruntime"], name="onnxruntime-aarch64", version="2",
    description="onnxruntime on aarch64 (onnxruntime 1.32, neoverse-n1): QLinearAdd is MLAS's NEON "
                "fixed point, m = rne(f32(S/S_y) 2^(21-e)), one shift ties away, float32 "
                "fallback outside its ranges",
    add=RequantRule(RequantKind.SINGLE_ROUNDING, MultiplierDerivation.FLOAT32_RATIO, Ties.AWAY),
    add_scheme=AddScheme.MLAS_NEON)


def get_profile(name: str | Profile) -> Profile:
    """Look a profile up by name (a ``Profile`` passes through); unknown names list the known."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r}; known profiles: {known}") from None


def format_profiles() -> str:
    """A plain-text listing of every profile and its rules (``npquant profiles``)."""
    lines = []
    for p in PROFILES.values():
        lines.append(f"{p.name} (version {p.version}): {p.description}")
        for field_name, text in p.rules():
            lines.append(f"    {field_name:<22} {text}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
