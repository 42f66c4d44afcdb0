"""Post-training quantization: calibrate activation ranges, then choose every layer's qparams.

Two steps, so one calibration serves several profiles and bit widths:

1. ``calibrate(model, images, ...)`` traces the BN-folded model (``trace_graph``: chains and
   residual networks), runs ``num_batches`` seeded batches of (training) images through it and
   lets an observer (min/max, moving average, histogram, percentile, MSE, KL) watch the model
   input and every layer output (``Calibration``).
2. ``choose_qparams(model, calibration, profile, config)`` fixes, per conv/linear layer and per
   residual ADD (a following ReLU is fused: its output range is the layer's):

   * activations: per tensor from the observer's (clipped) range, asymmetric by default;
   * weights: per channel (axis 0 of OIHW / (out, in)) or per tensor, symmetric, narrow range
     ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` when the profile says so, min/max or MSE clipping;
   * bias: int32 with ``S_b[c] = S_in S_w[c]`` and ``Z_b = 0``, so that it adds straight into
     the accumulator, whose scale is exactly that (``quantize_bias``);

   with the bit widths and schemes of a ``QuantConfig`` (default 8 and 8; per-layer overrides)
   and the profile's qparams method. A power-of-two profile (or ``scheme="power_of_two"``)
   uses power-of-two scales for weights and activations, so every ``M = S_in S_w / S_out`` is a
   power of two.

The result, ``ModelQParams``, is plain data: ``to_dict()`` gives JSON. Bias correction
(``npquant.quant.bias_correction``) is an optional step between choosing and converting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npquant import nn
from npquant.fixedpoint import INT32_MAX, Ties
from npquant.profiles import Profile, RequantKind, get_profile
from npquant.qparams import QParams, quantize, round_to_integer
from npquant.quant.chain import (
    Node,
    chain_graph,
    chain_layers,
    consumers,
    is_alias,
    resolve,
    run_graph,
    trace_graph,
)
from npquant.quant.config import QuantConfig
from npquant.quant.observers import Observer
from npquant.quant.registry import (
    ACTIVATION_OBSERVERS,
    make_activation_observer,
    make_weight_observer,
)

OBSERVERS = tuple(ACTIVATION_OBSERVERS)
INPUT = "input"  # the name of the model input in Calibration.observers


@dataclass
class Calibration:
    """Observers of the model input (key ``"input"``) and of every layer's output (by name).

    ``graph``: the traced leaf graph the observers were attached to (``trace_graph``);
    ``channel_means``: the mean of every observed tensor per channel (axis 1), which bias
    correction uses.
    """

    observers: dict[str, Observer]
    num_batches: int
    batch_size: int
    seed: int
    observer: str
    graph: list[Node] | None = None
    channel_means: dict[str, np.ndarray] = field(default_factory=dict)


def calibration_order(images: np.ndarray, num_batches: int, batch_size: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(images, indices)`` of a calibration: the first ``num_batches * batch_size`` indices of
    ``np.random.default_rng(seed).permutation(len(images))`` (fewer if ``images`` is short), run
    in batches of ``batch_size``. ValueError for images that are not float NCHW and for counts
    below 1. PTQ and QAT calibrate on the same batches."""
    x = np.asarray(images)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be float NCHW (N, C, H, W), got {x.dtype} {x.shape}")
    for name, v in (("num_batches", num_batches), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    return x, np.random.default_rng(seed).permutation(len(x))[: num_batches * batch_size]


def calibrate(model: nn.Module, images: np.ndarray, *, num_batches: int = 16,
              batch_size: int = 64, seed: int = 0, observer: str = "minmax",
              averaging_constant: float = 0.01,
              observer_options: dict[str, Any] | None = None) -> Calibration:
    """Observe activation ranges on ``num_batches`` batches drawn (seeded) from ``images``.

    ``model`` is traced on the first batch (``trace_graph``: chains and residual networks) and
    is expected BN-folded (``fold_batch_norm``): ranges are observed on what the integer model
    will compute. Batches are the first ``num_batches * batch_size`` indices of
    ``np.random.default_rng(seed).permutation(len(images))`` (fewer if ``images`` is short).
    ``observer`` names an activation observer (``npquant.quant.registry``: minmax, ema,
    histogram, percentile, mse, kl); ``observer_options`` go to its constructor
    (``averaging_constant`` to "ema"). NaN or inf in a calibration image is a ValueError naming
    the image's index in ``images``. ``model`` is left in eval mode.
    """
    x, order = calibration_order(images, num_batches, batch_size, seed)
    if observer not in ACTIVATION_OBSERVERS:
        raise ValueError(f"observer must be one of {OBSERVERS}, got {observer!r}")
    options = dict(observer_options or {})
    if observer == "ema":
        options.setdefault("averaging_constant", averaging_constant)

    def make(name: str) -> Observer:
        return make_activation_observer(observer, name=name, **options)

    _check_finite_images(x, order[: min(2, len(order))])
    nodes = trace_graph(model, x[order[: min(2, len(order))]])
    model.eval()
    observers: dict[str, Observer] = {INPUT: make(INPUT)}
    observers.update({n.name: make(n.name) for n in nodes if not is_alias(n.module)})
    sums: dict[str, np.ndarray] = {}

    def record(name: str, out: np.ndarray) -> None:
        if name in observers:
            observers[name].observe(out)
            axes = tuple(a for a in range(out.ndim) if a != 1)
            sums[name] = sums.get(name, 0.0) + out.astype(np.float64).mean(axis=axes)

    used = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        xb = x[idx]
        _check_finite_images(x, idx)
        record(INPUT, xb)
        run_graph(nodes, xb, lambda name, _m, out: record(name, out))
        used += 1
    means = {k: v / used for k, v in sums.items()}
    return Calibration(observers, used, int(batch_size), int(seed), observer, nodes, means)


def _check_finite_images(x: np.ndarray, idx: np.ndarray) -> None:
    """ValueError naming the first image of ``x[idx]`` with NaN/inf by its index in ``x``."""
    bad = ~np.isfinite(x[idx]).reshape(len(idx), -1).all(axis=1)
    if bad.any():
        i = int(idx[int(np.argmax(bad))])
        raise ValueError(f"calibration images[{i}] has NaN or inf (index {i} of the dataset "
                         f"given to calibrate); clean the data before calibrating")


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
class AddQParams:
    """The qparams of one residual ADD: its inputs ``a``/``b`` (the producers' output qparams,
    named ``inputs``) and its ``output`` (after a fused ReLU named ``activation_layer``)."""

    name: str
    inputs: tuple[str, str]
    a: QParams
    b: QParams
    output: QParams
    activation: str | None = None
    activation_layer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"name": self.name, "inputs": list(self.inputs), "a": qparams_to_dict(self.a),
                "b": qparams_to_dict(self.b), "output": qparams_to_dict(self.output),
                "activation": self.activation, "activation_layer": self.activation_layer}


@dataclass
class ModelQParams:
    """Per-layer qparams for one profile: the model input's, each conv/linear layer's and (for
    residual networks) each ADD's."""

    profile: str
    profile_version: str
    input: QParams
    layers: dict[str, LayerQParams] = field(default_factory=dict)
    adds: dict[str, AddQParams] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (scales as float32 values written as Python floats)."""
        d = {"profile": self.profile, "profile_version": self.profile_version,
             "input": qparams_to_dict(self.input),
             "layers": {k: v.to_dict() for k, v in self.layers.items()}}
        if self.adds:
            d["adds"] = {k: v.to_dict() for k, v in self.adds.items()}
        return d


def qparams_to_dict(q: QParams) -> dict[str, Any]:
    """``{"scale", "zero_point", "bits", "signed", "axis", "narrow_range"}`` of a QParams."""
    return {"scale": q.scale.astype(np.float64).tolist(), "zero_point": q.zero_point.tolist(),
            "bits": q.bits, "signed": q.signed, "axis": q.axis, "narrow_range": q.narrow_range}


def activation_scheme(profile: Profile, config: QuantConfig | None = None) -> str:
    """The activation scheme: ``config.scheme`` if set, else "power_of_two" for a power-of-two
    profile (its conv rule is a shift) and "asymmetric" otherwise."""
    if config is not None and config.scheme is not None:
        return config.scheme
    return "power_of_two" if profile.conv.kind is RequantKind.POWER_OF_TWO else "asymmetric"


def weight_scheme(profile: Profile, config: QuantConfig | None = None) -> str:
    """Weights are symmetric (``Z = 0``), power of two when the activations are."""
    return "power_of_two" if activation_scheme(profile, config) == "power_of_two" \
        else "symmetric"


def weight_observer(weight: np.ndarray, profile: Profile, name: str = "weight", *,
                    bits: int = 8, observer: str = "minmax", per_channel: bool = True,
                    config: QuantConfig | None = None) -> Observer:
    """A ``bits``-bit symmetric weight observer (per channel on axis 0, or per tensor) that has
    seen ``weight``: ``observer`` "minmax" or "mse"."""
    obs = make_weight_observer(observer, per_channel=per_channel,
                               scheme=weight_scheme(profile, config), bits=bits,
                               narrow_range=profile.narrow_range_weights, name=name)
    obs.observe(weight)
    return obs


def choose_qparams(model: nn.Module, calibration: Calibration,
                   profile: Profile | str, config: QuantConfig | None = None) -> ModelQParams:
    """Per-layer qparams of the (BN-folded) ``model`` for ``profile`` (module docstring), with
    the bit widths, schemes and weight observers of ``config`` (default: 8-bit weights and
    activations, min/max, per channel).

    The graph is the calibration's (``trace_graph``), or the model's chain for a Calibration
    made without one. A ReLU whose input is read by nothing else is fused into the conv, linear
    or ADD before it; pools and flatten keep their input's qparams. Raises ValueError for a
    layer without calibration data, for a BatchNorm2d left unfolded and for an override naming
    no conv/linear/ADD layer.
    """
    prof = get_profile(profile)
    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration, got {type(calibration).__name__}")
    cfg = QuantConfig() if config is None else config
    if not isinstance(cfg, QuantConfig):
        raise TypeError(f"config must be a QuantConfig, got {type(cfg).__name__}")
    obs = calibration.observers
    scheme = activation_scheme(prof, cfg)

    def act_qparams(name: str, bits: int) -> QParams:
        if name not in obs:
            raise ValueError(f"no calibration data for {name!r}; calibrate this model first")
        return obs[name].configured(bits=bits, scheme=scheme).calculate_qparams(prof)

    nodes = calibration.graph or chain_graph(chain_layers(model))
    modules = dict(model.named_modules())
    readers = consumers(nodes)
    cfg.check_layers([n.name for n in nodes
                      if isinstance(n.module, (nn.Conv2d, nn.Linear, nn.Add))])
    tensor_q: dict[str, QParams] = {INPUT: act_qparams(INPUT, cfg.bits(INPUT)[1])}
    result = ModelQParams(prof.name, prof.version, tensor_q[INPUT])
    fused: set[str] = set()

    def fused_relu(name: str) -> str | None:
        after = readers.get(name, [])
        return after[0] if len(after) == 1 and isinstance(modules[after[0]], nn.ReLU) else None

    for node in nodes:
        m = modules.get(node.name, node.module)
        src = [resolve(nodes, i) for i in node.inputs]
        if is_alias(m) or node.name in fused:
            continue
        if isinstance(m, nn.BatchNorm2d):
            raise ValueError(f"layer {node.name!r} (BatchNorm2d) must be folded into the conv "
                             "before it first (npquant.quant.fold_batch_norm)")
        relu = fused_relu(node.name) if isinstance(m, (nn.Conv2d, nn.Linear, nn.Add)) else None
        out_name = relu or node.name
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w_bits, a_bits = cfg.bits(node.name)
            w = weight_observer(m.weight.data, prof, f"{node.name}.weight", bits=w_bits,
                                observer=cfg.setting(node.name, "weight_observer"),
                                per_channel=cfg.setting(node.name, "per_channel"),
                                config=cfg).calculate_qparams(prof)
            out = act_qparams(out_name, a_bits)
            x_q = tensor_q[src[0]]
            out_channels = m.weight.data.shape[0]
            bias_scale = np.broadcast_to(x_q.scale.astype(np.float64)
                                         * w.scale.astype(np.float64), (out_channels,)).copy()
            result.layers[node.name] = LayerQParams(
                node.name, "conv2d" if isinstance(m, nn.Conv2d) else "linear", x_q, w, out,
                bias_scale, "relu" if relu else None, relu)
        elif isinstance(m, nn.Add):
            out = act_qparams(out_name, cfg.bits(node.name)[1])
            result.adds[node.name] = AddQParams(node.name, (src[0], src[1]), tensor_q[src[0]],
                                                tensor_q[src[1]], out, "relu" if relu else None,
                                                relu)
        else:  # pools, flatten, an unfused ReLU (convert refuses it): the input's qparams
            out = tensor_q[src[0]]
        tensor_q[node.name] = out
        if relu:
            fused.add(relu)
            tensor_q[relu] = out
    return result


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
