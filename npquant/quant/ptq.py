"""Post-training quantization: calibrate activation ranges, then choose every layer's qparams.

Two steps, so one calibration serves several profiles:

1. ``calibrate(model, images, ...)`` runs ``num_batches`` seeded batches of (training) images
   through the BN-folded chain and lets an observer watch the model input and every layer
   output (``Calibration``).
2. ``choose_qparams(model, calibration, profile)`` fixes, per conv/linear layer (a following
   ReLU is fused: its output range is the layer's):

   * activations: per-tensor asymmetric from the observed range;
   * weights: per-channel (axis 0 of OIHW / (out, in)) symmetric, narrow range
     ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` when the profile says so;

   with the bit widths of a ``QuantConfig`` (default 8 and 8; per-layer overrides);
   * bias: int32 with ``S_b[c] = S_in S_w[c]`` and ``Z_b = 0``, so that it adds straight into
     the accumulator, whose scale is exactly that (``quantize_bias``);

   with the profile's qparams method. A power-of-two profile uses the ``power_of_two`` scheme
   for weights and activations, so every ``M = S_in S_w / S_out`` is a power of two.

The result, ``ModelQParams``, is plain data: ``to_dict()`` gives JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npquant import nn
from npquant.fixedpoint import INT32_MAX, Ties
from npquant.profiles import Profile, RequantKind, get_profile
from npquant.qparams import QParams, quantize, round_to_integer
from npquant.quant.chain import chain_layers, check_chain, run_chain
from npquant.quant.observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    Observer,
    PerChannelMinMaxObserver,
)

OBSERVERS = ("minmax", "ema")
INPUT = "input"  # the name of the model input in Calibration.observers


@dataclass
class Calibration:
    """Observers of the model input (key ``"input"``) and of every layer's output (by name)."""

    observers: dict[str, Observer]
    num_batches: int
    batch_size: int
    seed: int
    observer: str


def calibrate(model: nn.Module, images: np.ndarray, *, num_batches: int = 16,
              batch_size: int = 64, seed: int = 0, observer: str = "minmax",
              averaging_constant: float = 0.01) -> Calibration:
    """Observe activation ranges on ``num_batches`` batches drawn (seeded) from ``images``.

    ``model`` must be a chain of layers (``check_chain`` proves it on the first batch) and is
    expected BN-folded (``fold_batch_norm``): ranges are observed on what the integer model
    will compute. Batches are the first ``num_batches * batch_size`` indices of
    ``np.random.default_rng(seed).permutation(len(images))`` (fewer if ``images`` is short).
    ``observer`` is "minmax" or "ema" (``MovingAverageMinMaxObserver``). ``model`` is left in
    eval mode.
    """
    x = np.asarray(images)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be float NCHW (N, C, H, W), got {x.dtype} {x.shape}")
    for name, v in (("num_batches", num_batches), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if observer not in OBSERVERS:
        raise ValueError(f"observer must be one of {OBSERVERS}, got {observer!r}")

    def make(name: str) -> Observer:
        if observer == "ema":
            return MovingAverageMinMaxObserver(averaging_constant=averaging_constant, name=name)
        return MinMaxObserver(name=name)

    order = np.random.default_rng(seed).permutation(len(x))[: num_batches * batch_size]
    layers = check_chain(model, x[order[: min(2, len(order))]])
    model.eval()
    observers: dict[str, Observer] = {INPUT: make(INPUT)}
    observers.update({name: make(name) for name, _ in layers})

    def visit(name: str, _m: nn.Module, out: np.ndarray) -> None:
        observers[name].observe(out)

    used = 0
    for start in range(0, len(order), batch_size):
        xb = x[order[start:start + batch_size]]
        observers[INPUT].observe(xb)
        run_chain(layers, xb, visit)
        used += 1
    return Calibration(observers, used, int(batch_size), int(seed), observer)


@dataclass
class LayerQParams:
    """The qparams of one conv/linear layer of the integer model.

    ``input``/``output``: per-tensor activation qparams (``output`` is after the fused
    activation); ``weight``: per-channel, axis 0; ``bias_scale``: ``S_in S_w[c]`` (float64, one
    per output channel); ``activation``: "relu" when a ReLU is fused (named ``activation_layer``).
    """

    name: str
    kind: str  # "conv2d" or "linear"
    input: QParams
    weight: QParams
    output: QParams
    bias_scale: np.ndarray
    activation: str | None = None
    activation_layer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"name": self.name, "kind": self.kind, "input": qparams_to_dict(self.input),
                "weight": qparams_to_dict(self.weight), "output": qparams_to_dict(self.output),
                "bias_scale": self.bias_scale.tolist(), "activation": self.activation,
                "activation_layer": self.activation_layer}


@dataclass
class ModelQParams:
    """Per-layer qparams for one profile: the model input's and each conv/linear layer's."""

    profile: str
    profile_version: str
    input: QParams
    layers: dict[str, LayerQParams] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (scales as float32 values written as Python floats)."""
        return {"profile": self.profile, "profile_version": self.profile_version,
                "input": qparams_to_dict(self.input),
                "layers": {k: v.to_dict() for k, v in self.layers.items()}}


def qparams_to_dict(q: QParams) -> dict[str, Any]:
    """``{"scale", "zero_point", "bits", "signed", "axis", "narrow_range"}`` of a QParams."""
    return {"scale": q.scale.astype(np.float64).tolist(), "zero_point": q.zero_point.tolist(),
            "bits": q.bits, "signed": q.signed, "axis": q.axis, "narrow_range": q.narrow_range}


def activation_scheme(profile: Profile) -> str:
    """"power_of_two" for a power-of-two profile (its conv rule is a shift), else asymmetric."""
    return "power_of_two" if profile.conv.kind is RequantKind.POWER_OF_TWO else "asymmetric"


def weight_observer(weight: np.ndarray, profile: Profile, name: str = "weight", *,
                    bits: int = 8) -> PerChannelMinMaxObserver:
    """A per-channel (axis 0) symmetric ``bits``-bit observer that has seen ``weight``."""
    pow2 = activation_scheme(profile) == "power_of_two"
    obs = PerChannelMinMaxObserver(axis=0, scheme="power_of_two" if pow2 else "symmetric",
                                   bits=bits, narrow_range=profile.narrow_range_weights,
                                   name=name)
    obs.observe(weight)
    return obs


@dataclass(frozen=True)
class QuantConfig:
    """Bit widths of a quantized model: a default for weights and activations, and per-layer
    overrides.

    ``weight_bits``/``act_bits`` (2..16) apply to every conv/linear layer; ``act_bits`` is the
    width of each layer's *output* activation and of the model input. ``overrides`` maps a layer
    name (as in ``chain_layers``; ``"input"`` for the model input) to ``{"weight_bits": b,
    "act_bits": b}`` (either key may be left out). Weights are symmetric per channel (axis 0),
    activations asymmetric, both power of two under a power-of-two profile. Integer kernels hold
    weights as int8, so ``weight_bits`` > 8 is refused by ``convert``; activations up to 16 bits
    are stored as int16.
    """

    weight_bits: int = 8
    act_bits: int = 8
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_bits("weight_bits", self.weight_bits)
        _check_bits("act_bits", self.act_bits)
        if not isinstance(self.overrides, dict):
            raise TypeError(f"overrides must be a dict, got {type(self.overrides).__name__}")
        for layer, o in self.overrides.items():
            if not isinstance(o, dict) or not set(o) <= {"weight_bits", "act_bits"}:
                raise ValueError(f"override for {layer!r} must be a dict with keys weight_bits "
                                 f"and/or act_bits, got {o!r}")
            for key, b in o.items():
                _check_bits(f"overrides[{layer!r}][{key!r}]", b)

    def bits(self, layer: str) -> tuple[int, int]:
        """``(weight_bits, act_bits)`` of ``layer`` (its override, else the defaults)."""
        o = self.overrides.get(layer, {})
        return int(o.get("weight_bits", self.weight_bits)), int(o.get("act_bits", self.act_bits))

    def check_layers(self, names: list[str]) -> None:
        """ValueError naming each override that is not one of ``names`` (nor ``"input"``)."""
        unknown = sorted(set(self.overrides) - set(names) - {INPUT})
        if unknown:
            raise ValueError(f"overrides name layers that do not exist: {unknown}; the "
                             f"quantizable layers are {[INPUT] + list(names)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"weight_bits": self.weight_bits, "act_bits": self.act_bits,
                "overrides": {k: dict(v) for k, v in self.overrides.items()}}


def _check_bits(name: str, bits: Any) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise ValueError(f"{name} must be an int in 2..16, got {bits!r}")


def choose_qparams(model: nn.Module, calibration: Calibration,
                   profile: Profile | str, config: QuantConfig | None = None) -> ModelQParams:
    """Per-layer qparams of the (BN-folded) chain ``model`` for ``profile`` (module docstring),
    with the bit widths of ``config`` (default: 8-bit weights and activations).

    Raises ValueError for a layer without calibration data, for a BatchNorm2d left unfolded and
    for an override naming no conv/linear layer.
    """
    prof = get_profile(profile)
    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration, got {type(calibration).__name__}")
    cfg = QuantConfig() if config is None else config
    if not isinstance(cfg, QuantConfig):
        raise TypeError(f"config must be a QuantConfig, got {type(cfg).__name__}")
    obs = calibration.observers
    scheme = activation_scheme(prof)

    def act_qparams(name: str, bits: int) -> QParams:
        if name not in obs:
            raise ValueError(f"no calibration data for {name!r}; calibrate this model first")
        o = obs[name]
        q = MinMaxObserver(scheme=scheme, bits=bits, name=name)  # same range, this scheme
        q.min_val, q.max_val = o.range()
        return q.calculate_qparams(prof)

    layers = chain_layers(model)
    cfg.check_layers([n for n, m in layers if isinstance(m, (nn.Conv2d, nn.Linear))])
    current = act_qparams(INPUT, cfg.bits(INPUT)[1])
    result = ModelQParams(prof.name, prof.version, current)
    for i, (name, m) in enumerate(layers):
        if isinstance(m, nn.BatchNorm2d):
            raise ValueError(f"layer {name!r} (BatchNorm2d) must be folded into the conv before "
                             "it first (npquant.quant.fold_batch_norm)")
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        nxt = _next_real_layer(layers, i)
        fuse = nxt is not None and isinstance(nxt[1], nn.ReLU)
        out_name = nxt[0] if fuse else name
        w_bits, a_bits = cfg.bits(name)
        w = weight_observer(m.weight.data, prof, f"{name}.weight",
                            bits=w_bits).calculate_qparams(prof)
        out = act_qparams(out_name, a_bits)
        bias_scale = current.scale.astype(np.float64) * w.scale.astype(np.float64)
        result.layers[name] = LayerQParams(
            name, "conv2d" if isinstance(m, nn.Conv2d) else "linear", current, w, out,
            bias_scale, "relu" if fuse else None, out_name if fuse else None)
        current = out
    return result


def _next_real_layer(layers: list[tuple[str, nn.Module]], i: int):
    """The first layer after ``i`` that is not an Identity (e.g. a folded BatchNorm)."""
    for name, m in layers[i + 1:]:
        if not isinstance(m, nn.Identity):
            return name, m
    return None


def quantize_weight(weight: np.ndarray, qparams: QParams, profile: Profile | str) -> np.ndarray:
    """int8 weights ``q = clamp(round(w / S_w[c]), qmin, qmax)`` by the profile's per-channel
    quantize rule (``npquant.qparams.quantize``)."""
    prof = get_profile(profile)
    return quantize(np.asarray(weight, dtype=np.float32), qparams,
                    rule=prof.quantize_rule(qparams.per_channel))


def quantize_bias(bias: np.ndarray | None, bias_scale: np.ndarray) -> np.ndarray:
    """int32 bias ``q_b[c] = round(b[c] / S_b[c])`` with ``S_b[c] = S_in S_w[c]`` and ``Z_b = 0``.

    The division is in float64 and ties round away from zero (TFLite's converter,
    ``std::round``); results are clamped to ``[-(2^31 - 1), 2^31 - 1]`` as TFLite does. No bias
    gives zeros.
    """
    s = np.asarray(bias_scale, dtype=np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"bias_scale must be a 1-D array of finite values > 0, got {bias_scale}")
    if bias is None:
        return np.zeros(s.shape, dtype=np.int32)
    b = np.asarray(bias, dtype=np.float64)
    if b.shape != s.shape:
        raise ValueError(f"bias shape {b.shape} != bias_scale shape {s.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("bias has NaN or inf")
    q = round_to_integer(b / s, Ties.AWAY)
    return np.clip(q, -INT32_MAX, INT32_MAX).astype(np.int32)
