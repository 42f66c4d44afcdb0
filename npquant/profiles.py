"""Named, versioned requantization profiles: everything that makes two frameworks' integers differ.

A profile is data — a frozen dataclass of named rules that kernels read — never a flag hidden in a
kernel. Adding a framework is adding a profile (and its oracle test), not editing kernels. The
rules are given per op kind, because one framework can requantize differently in different ops
(TFLite's reference CONV_2D uses double rounding while its reference FULLY_CONNECTED uses a
float64 multiply). docs/profiles.md is generated from this module (``npquant profiles``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum

import numpy as np

from npquant.fixedpoint import Ties


class RequantKind(str, Enum):
    """How an int32 accumulator is scaled by ``M = S_in S_w / S_out`` (docs/fixedpoint.md)."""

    DOUBLE_ROUNDING = "double_rounding"  # SRDHM (ties up), then rounding shift (rule.ties)
    SINGLE_ROUNDING = "single_rounding"  # (acc * M0 + 2^(30-shift)) >> (31-shift), ties up
    FLOAT32 = "float32"  # round(f32(f32(acc) * f32(M))), rule.ties
    FLOAT64 = "float64"  # round(f64(acc) * f64(M)), rule.ties
    POWER_OF_TWO = "power_of_two"  # M = 2^-n exactly: rounding shift right by n, rule.ties


class MultiplierDerivation(str, Enum):
    """How the real multiplier ``M`` is computed from the three float32 scales."""

    DOUBLE = "double"  # f64(s_x) * f64(s_w) / f64(s_y)          (TFLite per-channel conv)
    FLOAT32_PRODUCT = "float32_product"  # f64(f32(s_x * s_w)) / f64(s_y)  (TFLite per-tensor)
    FLOAT32_RATIO = "float32_ratio"  # f32(f32(s_x * s_w) / s_y)     (ORT, FBGEMM)
    FLOAT32_RECIPROCAL = "float32_reciprocal"  # f32(f32(s_w * s_x) * f32(1 / s_y))  (QNNPACK)


class Overflow(str, Enum):
    """What an accumulator does when a partial sum leaves its range."""

    RAISE = "raise"  # a contract violation: stop with the layer and index
    WRAP = "wrap"  # two's complement wrap-around (C unsigned arithmetic, most hardware)
    SATURATE = "saturate"  # clamp every partial sum (DSP accumulators with saturation)


class QuantizeMethod(str, Enum):
    """How float -> int QUANTIZE divides by the scale."""

    DIVIDE = "divide"  # x / S
    MULTIPLY_RECIPROCAL = "multiply_reciprocal"  # x * f32(1 / S)


class ZeroPointOrder(str, Enum):
    """Where the zero point enters float -> int quantization."""

    AFTER_ROUNDING = "after_rounding"  # round(x / S) + Z                  (TFLite, ORT)
    BEFORE_ROUNDING_FMA = "before_rounding_fma"  # round(fma(x, 1/S, Z))   (torch per-tensor)
    BEFORE_ROUNDING = "before_rounding"  # round(f32(f32(x / S) + Z))      (torch per-channel)


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
    """

    kind: RequantKind
    derivation: MultiplierDerivation
    ties: Ties
    channel_group: int = 0
    tail_ties: Ties | None = None

    def __post_init__(self) -> None:
        if (self.channel_group > 0) != (self.tail_ties is not None):
            raise ValueError("channel_group > 0 and tail_ties go together "
                             f"(got channel_group={self.channel_group}, "
                             f"tail_ties={self.tail_ties})")
        if self.channel_group < 0:
            raise ValueError(f"channel_group must be >= 0, got {self.channel_group}")

    def channel_ties(self, channels: int) -> np.ndarray:
        """Tie-rule codes (``Ties.code``) per output channel: length ``channels`` when the rule
        groups channels, else length 1 (one rule for all)."""
        if self.channel_group == 0:
            return np.array([self.ties.code], dtype=np.int64)
        codes = np.full(channels, self.tail_ties.code, dtype=np.int64)
        codes[: self.channel_group * (channels // self.channel_group)] = self.ties.code
        return codes

    def describe(self) -> str:
        """One line: ``double_rounding, M from double, final ties away``."""
        text = f"{self.kind.value}, M from {self.derivation.value}, ties {self.ties.value}"
        if self.channel_group:
            text += (f" on whole groups of {self.channel_group} channels, "
                     f"{self.tail_ties.value} on the rest")
        return text


@dataclass(frozen=True)
class QuantizeRule:
    """Float -> integer quantization ``q = saturate(round(x / S) + Z)`` and its variants."""

    method: QuantizeMethod
    precision: str  # "float32" or "float64": the type of the division / multiplication
    ties: Ties
    zero_point: ZeroPointOrder

    def describe(self) -> str:
        """One line: ``divide in float32, ties away, zero point after rounding``."""
        return (f"{self.method.value} in {self.precision}, ties {self.ties.value}, "
                f"zero point {self.zero_point.value}")


@dataclass(frozen=True)
class AccumulatorRule:
    """The accumulator of GEMM/conv: width in bits (16..64) and overflow behaviour.

    ``pair_saturation`` models x86 ``vpmaddubsw``: each adjacent pair of uint8 x int8 products
    along the kernel's reduction order is saturated to int16 before it is accumulated.
    """

    bits: int
    overflow: Overflow
    pair_saturation: bool = False

    def describe(self) -> str:
        """One line: ``int32, overflow raise``."""
        extra = ", int16 pair saturation (vpmaddubsw)" if self.pair_saturation else ""
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
    average_pool: Ties  # tie rule of the integer division sum / count
    quantize: QuantizeRule  # float -> int with per-tensor qparams
    quantize_per_channel: QuantizeRule  # float -> int with per-channel qparams
    qparams_method: QParamsMethod
    narrow_range_weights: bool  # symmetric weights in [-(2^(b-1) - 1), 2^(b-1) - 1]
    accumulator: AccumulatorRule

    def quantize_rule(self, per_channel: bool) -> QuantizeRule:
        """The float -> int rule for per-tensor or per-channel qparams."""
        return self.quantize_per_channel if per_channel else self.quantize

    def rules(self) -> list[tuple[str, str]]:
        """``(field, description)`` pairs for listing (``npquant profiles``)."""
        out = []
        for f in fields(self):
            if f.name in ("name", "version", "description"):
                continue
            value = getattr(self, f.name)
            text = value.describe() if hasattr(value, "describe") else _plain(value)
            out.append((f.name, text))
        return out


def _plain(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


_DR_DOUBLE_AWAY = RequantRule(RequantKind.DOUBLE_ROUNDING, MultiplierDerivation.DOUBLE, Ties.AWAY)
_SR_DOUBLE = RequantRule(RequantKind.SINGLE_ROUNDING, MultiplierDerivation.DOUBLE, Ties.UP)
_F32_RATIO_EVEN = RequantRule(RequantKind.FLOAT32, MultiplierDerivation.FLOAT32_RATIO, Ties.EVEN)
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
            name="onnxruntime",
            version="1",
            description="ONNX Runtime CPU (MLAS) QLinearConv/QLinearMatMul: "
                        "nearbyint(f32(acc) * f32(f32(s_x s_w) / s_y)) + Z",
            conv=_F32_RATIO_EVEN,
            depthwise_conv=_F32_RATIO_EVEN,
            fully_connected=_F32_RATIO_EVEN,
            add=_F32_RATIO_EVEN,
            average_pool=Ties.EVEN,
            quantize=_ORT_QUANTIZE,
            quantize_per_channel=_ORT_QUANTIZE,
            qparams_method=QParamsMethod.PYTORCH,
            narrow_range_weights=False,
            accumulator=_EXACT_INT32,
        ),
        Profile(
            name="pytorch-fbgemm",
            version="1",
            description="PyTorch quantized CPU ops on the fbgemm/x86 engine: float32 "
                        "requantization as ORT; quantize_per_tensor rounds fma(x, 1/S, Z)",
            conv=_F32_RATIO_EVEN,
            depthwise_conv=_F32_RATIO_EVEN,
            fully_connected=_F32_RATIO_EVEN,
            add=_F32_RATIO_EVEN,
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
