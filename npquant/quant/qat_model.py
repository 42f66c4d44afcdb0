"""The QAT model: a float chain with fake quantization where the integer model will round, and
BatchNorm folded *during* training (Jacob et al. 2018, arXiv:1712.05877, section 3.2;
Krishnamoorthi 2018, arXiv:1806.08342, section 3.2 and fig. 12).

Each Conv2d [+ BatchNorm2d] [+ ReLU] and Linear [+ ReLU] of the float chain becomes a
``QATLayer``: weights fake-quantized per channel (symmetric, narrow range per the profile),
bias rounded to the int32 grid ``S_in S_w[c]``, output (after the fused ReLU) fake-quantized per
tensor; the model input has its own quantizer. Max pool, Flatten, Identity, Dropout pass through
(max of quantized values is quantized). Anything else is a ValueError naming the layer.

BatchNorm in QAT. With ``a = gamma / sqrt(var_run + eps)`` the inference conv is
``y = conv(x, Q(w a)) + beta + (b - mu_run) a`` (``npquant.quant.fold``). In training, before the
statistics are frozen, the layer computes (PyTorch's ``_ConvBnNd``, which is this scheme)::

    z = conv(x, Q(w a)) / a + b          weights folded with the *running* std (stable)
    y = gamma (z - mu_B) / sigma_B + beta  batch statistics (BN in training mode)

i.e. ``y = (sigma_run / sigma_B) conv(x, Q(w a)) + beta - gamma (mu_B - b) / sigma_B``: the
correction factor ``c = sigma_run / sigma_B`` of Krishnamoorthi fig. 12 applied to the output,
so the weights that are quantized are exactly those inference will use, while the gradients see
batch statistics. ``a`` is held constant in this path (``z`` does not depend on gamma in exact
arithmetic). ``freeze_bn()`` switches to running statistics, stops updating them, and from then
on the layer computes exactly the folded conv that ``export_float_chain`` exports; evaluation
always uses that folded path.
"""

from __future__ import annotations

import copy

import numpy as np

from npquant import nn
from npquant.nn import functional as F
from npquant.nn.conv import conv2d
from npquant.profiles import Profile, get_profile
from npquant.qparams import QParams
from npquant.quant.chain import chain_layers
from npquant.quant.fake_quant import (
    LSQ,
    PACT,
    FakeQuantize,
    ObservingQuantizer,
    fake_quantize,
)
from npquant.quant.fold import fold_batch_norm
from npquant.quant.ptq import (
    INPUT,
    LayerQParams,
    ModelQParams,
    QuantConfig,
    activation_scheme,
    calibration_order,
    quantize_bias,
    weight_observer,
)

WEIGHT_QUANT = ("minmax", "lsq")
ACT_QUANT = ("ema", "minmax", "pact", "lsq")
_PASS_THROUGH = (nn.MaxPool2d, nn.Flatten, nn.Identity, nn.Dropout)


class BiasFakeQuantizeFn(nn.Function):
    """``b -> S_b round_away(b / S_b)`` with ``S_b = S_in S_w[c]`` (``ptq.quantize_bias``, the int32
    bias the converter stores); STE gradient ``db = dy``."""

    @staticmethod
    def forward(ctx, b, bias_scale):
        return (quantize_bias(b, bias_scale).astype(np.float64) * bias_scale).astype(b.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (grad,)


class WeightFakeQuantize(nn.Module):
    """Per-channel (axis 0) symmetric weight fake quantization under a profile.

    ``mode="minmax"``: the qparams are recomputed from the weight at every forward by the
    PTQ weight observer (``ptq.weight_observer``: ``S_w[c] = max|w[c]| / qmax``), so QAT and
    conversion pick the same scales; ``mode="lsq"``: the per-channel step is learned (``LSQ``).
    """

    def __init__(self, profile: Profile, bits: int, mode: str, channels: int, name: str):
        super().__init__()
        if mode not in WEIGHT_QUANT:
            raise ValueError(f"weight_quant must be one of {WEIGHT_QUANT}, got {mode!r}")
        self.profile, self.bits, self.mode, self.name = profile, int(bits), mode, name
        self.rule = profile.quantize_rule(True)
        self.last_qparams: QParams | None = None
        if mode == "lsq":
            self.lsq = LSQ(bits=bits, scheme="symmetric", narrow_range=profile.narrow_range_weights,
                           axis=0, channels=channels, rule=self.rule,
                           method=profile.qparams_method, name=name)

    def qparams_of(self, weight: np.ndarray) -> QParams:
        """The qparams this quantizer applies to ``weight``."""
        if self.mode == "lsq":
            return self.lsq.qparams()
        return weight_observer(weight, self.profile, self.name,
                               bits=self.bits).calculate_qparams(self.profile)

    def forward(self, w: nn.Tensor) -> nn.Tensor:
        self.last_qparams = self.qparams_of(w.data)
        if self.mode == "lsq":
            return self.lsq(w)
        return fake_quantize(w, self.last_qparams, self.rule)

    def extra_repr(self) -> str:
        return f"{self.name}: per-channel symmetric {self.bits}-bit, {self.mode}"


class QATLayer(nn.Module):
    """Conv2d [+ BatchNorm2d] [+ ReLU] or Linear [+ ReLU] with fake quantization (module doc)."""

    def __init__(self, name: str, layer: nn.Module, bn: nn.BatchNorm2d | None,
                 relu_name: str | None, weight_fq: WeightFakeQuantize, act_fq: nn.Module,
                 bn_name: str | None = None):
        super().__init__()
        self.layer = layer
        if bn is not None:
            self.bn = bn
        self.has_bn = bn is not None
        self.weight_fq, self.act_fq = weight_fq, act_fq
        self.layer_name, self.bn_name, self.relu_name = name, bn_name, relu_name
        self.bn_frozen = False
        self.fake_quant_enabled = True

    def folded(self) -> tuple[nn.Tensor, nn.Tensor | None]:
        """``(w a, beta + (b - mu_run) a)`` with ``a = gamma / sqrt(var_run + eps)`` (running
        statistics; gradients flow to w, b, gamma, beta), or ``(w, b)`` without BatchNorm."""
        w, b = self.layer.weight, self.layer.bias
        if not self.has_bn:
            return w, b
        bn = self.bn
        dtype = w.data.dtype
        invstd = (1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)).astype(dtype)
        a = bn.weight * nn.Tensor(invstd)
        w_fold = w * a.reshape(-1, *([1] * (w.ndim - 1)))
        mean = nn.Tensor(bn.running_mean.astype(dtype))
        b_fold = bn.bias + ((b - mean) * a if b is not None else (-mean) * a)
        return w_fold, b_fold

    def _linear_op(self, x: nn.Tensor, w: nn.Tensor, b: nn.Tensor | None) -> nn.Tensor:
        m = self.layer
        if isinstance(m, nn.Conv2d):
            return conv2d(x, w, b, stride=m.stride, padding=m.padding, dilation=m.dilation,
                          groups=m.groups)
        return F.linear(x, w, b)

    def run(self, x: nn.Tensor, in_qparams: QParams | None) -> nn.Tensor:
        """The layer's output for ``x``, whose quantizer had ``in_qparams`` (None while
        calibrating with fake quantization off)."""
        fq = self.fake_quant_enabled
        if self.has_bn and self.training and not self.bn_frozen:
            y = self._batch_stats_forward(x, fq)
        else:
            w, b = self.folded()
            if fq:
                w = self.weight_fq(w)
                if b is not None:
                    s_b = (in_qparams.scale.astype(np.float64)
                           * self.weight_fq.last_qparams.scale.astype(np.float64))
                    b = BiasFakeQuantizeFn.apply(b, bias_scale=s_b)
            y = self._linear_op(x, w, b)
        if self.relu_name is not None:
            y = F.relu(y)
        return self.act_fq(y)

    def _batch_stats_forward(self, x: nn.Tensor, fq: bool) -> nn.Tensor:
        bn, w = self.bn, self.layer.weight
        dtype = w.data.dtype
        invstd = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
        a = bn.weight.data.astype(np.float64) * invstd
        a = np.where(np.abs(a) < 1e-12, 1e-12, a)  # NOTE: gamma = 0 would divide by zero below
        w_fold = w * nn.Tensor(a.astype(dtype).reshape(-1, 1, 1, 1))
        if fq:
            w_fold = self.weight_fq(w_fold)
        unfold = nn.Tensor((1.0 / a).astype(dtype).reshape(1, -1, 1, 1))
        z = self._linear_op(x, w_fold, None) * unfold
        if self.layer.bias is not None:
            z = z + self.layer.bias.reshape(1, -1, 1, 1)
        return bn(z)  # training mode: batch statistics, running statistics updated

    def extra_repr(self) -> str:
        parts = [self.layer_name] + [n for n in (self.bn_name, self.relu_name) if n]
        return " + ".join(parts) + (", bn frozen" if self.bn_frozen else "")


class QATModel(nn.Module):
    """A float chain prepared for QAT under one profile and ``QuantConfig`` (module docstring).

    Build it with ``prepare_qat``. Children: ``input_fq`` and, in call order, one ``QATLayer`` per
    conv/linear (attribute = layer name with dots as underscores) and the pass-through layers.
    """

    def __init__(self, model: nn.Module, profile: Profile | str, config: QuantConfig, *,
                 weight_quant: str = "minmax", act_quant: str = "ema",
                 averaging_constant: float = 0.01):
        super().__init__()
        prof = get_profile(profile)
        if not isinstance(config, QuantConfig):
            raise TypeError(f"config must be a QuantConfig, got {type(config).__name__}")
        if weight_quant not in WEIGHT_QUANT:
            raise ValueError(f"weight_quant must be one of {WEIGHT_QUANT}, got {weight_quant!r}")
        if act_quant not in ACT_QUANT:
            raise ValueError(f"act_quant must be one of {ACT_QUANT}, got {act_quant!r}")
        scheme = activation_scheme(prof)
        if scheme == "power_of_two" and ("lsq" in (weight_quant, act_quant)
                                         or act_quant == "pact"):
            raise ValueError(f"profile {prof.name!r} needs power-of-two scales, which LSQ/PACT "
                             "do not learn; use weight_quant='minmax' and act_quant='ema'")
        work = copy.deepcopy(model)
        layers = chain_layers(work)
        config.check_layers([n for n, m in layers if isinstance(m, (nn.Conv2d, nn.Linear))])
        object.__setattr__(self, "_template", work)  # not a child: its layers are ours below
        self.profile, self.config = prof, config
        self.weight_quant, self.act_quant = weight_quant, act_quant
        rule = prof.quantize_rule(False)

        def act(name: str, bits: int, after_relu: bool) -> nn.Module:
            kw = dict(bits=bits, rule=rule, method=prof.qparams_method, name=name,
                      averaging_constant=averaging_constant)
            if act_quant == "pact" and after_relu:
                return PACT(**kw)
            if act_quant == "lsq":
                return LSQ(scheme=scheme, **kw)
            obs = "minmax" if act_quant == "minmax" else "ema"
            return FakeQuantize(scheme=scheme, observer=obs, **kw)

        self.input_fq = FakeQuantize(bits=config.bits(INPUT)[1], scheme=scheme, rule=rule,
                                     method=prof.qparams_method, observer="minmax", name=INPUT)
        self._steps: list[str] = []
        i = 0
        while i < len(layers):
            name, m = layers[i]
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                j, bn, bn_name, relu_name = i + 1, None, None, None
                if isinstance(m, nn.Conv2d) and j < len(layers) and \
                        isinstance(layers[j][1], nn.BatchNorm2d):
                    bn_name, bn = layers[j]
                    if bn.num_features != m.out_channels:
                        raise ValueError(f"BatchNorm2d {bn_name!r} has {bn.num_features} "
                                         f"features but {name!r} has {m.out_channels} outputs")
                    j += 1
                if j < len(layers) and isinstance(layers[j][1], nn.ReLU):
                    relu_name = layers[j][0]
                    j += 1
                w_bits, a_bits = config.bits(name)
                out_name = relu_name or name
                step = QATLayer(name, m, bn, relu_name,
                                WeightFakeQuantize(prof, w_bits, weight_quant,
                                                   m.weight.shape[0], f"{name}.weight"),
                                act(out_name, a_bits, relu_name is not None), bn_name)
                i = j
            elif isinstance(m, _PASS_THROUGH):
                step, i = m, i + 1
            else:
                raise ValueError(f"layer {name!r} ({type(m).__name__}) is not supported by QAT: "
                                 "only Conv2d [+ BatchNorm2d] [+ ReLU], Linear [+ ReLU], "
                                 "MaxPool2d, Flatten, Identity and Dropout are")
            attr = name.replace(".", "_")
            setattr(self, attr, step)
            self._steps.append(attr)

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: nn.Tensor) -> nn.Tensor:
        return self._run(x)[0]

    def _run(self, x: nn.Tensor, record: list | None = None):
        x = self.input_fq(x)
        qp = self.input_fq.qparams() if self.input_fq.fake_quant_enabled else None
        if record is not None:
            record.append((INPUT, x.data, qp))
        for attr in self._steps:
            m = getattr(self, attr)
            if isinstance(m, QATLayer):
                x = m.run(x, qp)
                qp = m.act_fq.qparams() if m.fake_quant_enabled else None
                name = m.layer_name
            else:
                x = m(x)
                name = attr
            if record is not None:
                record.append((name, x.data, qp))
        return x, record

    def trace(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Eval-mode forward of ``x``; ``{layer name: integer codes}`` of every quantized
        tensor, ``q = rint(y / S) + Z`` (exact: ``y = S (q - Z)`` in float32, ``|q - Z| < 2^16``),
        named as the integer model's ops (``"input"``, conv/linear by name, pools...)."""
        was = self.training
        self.eval()
        try:
            with nn.no_grad():
                _, rec = self._run(nn.Tensor(np.asarray(x)), [])
        finally:
            self.train(was)
        out = {}
        for name, y, qp in rec:
            s, z = qp.broadcast(y.ndim)
            out[name] = (np.rint(y.astype(np.float64) / s.astype(np.float64)) + z).astype(np.int64)
        return out

    # -- switches ------------------------------------------------------------------------------
    def qat_layers(self) -> list[QATLayer]:
        """The QATLayers in call order."""
        return [getattr(self, a) for a in self._steps if isinstance(getattr(self, a), QATLayer)]

    def quantizers(self) -> list[nn.Module]:
        """Every activation quantizer: the input's and each layer's output quantizer."""
        return [self.input_fq] + [layer.act_fq for layer in self.qat_layers()]

    def set_fake_quant(self, enabled: bool) -> None:
        """Fake quantization on or off everywhere (off: calibration, the float forward)."""
        for q in self.quantizers():
            q.fake_quant_enabled = bool(enabled)
        for layer in self.qat_layers():
            layer.fake_quant_enabled = bool(enabled)
            if layer.weight_fq.mode == "lsq":
                layer.weight_fq.lsq.fake_quant_enabled = bool(enabled)

    def start_fake_quant(self) -> None:
        """After calibration: PACT/LSQ initialize from the observed ranges (LSQ weights from
        the folded weights), and fake quantization is turned on everywhere."""
        for q in self.quantizers():
            if isinstance(q, (PACT, LSQ)):
                q.start()
        for layer in self.qat_layers():
            if layer.weight_fq.mode == "lsq":
                with nn.no_grad():
                    layer.weight_fq.lsq.start(layer.folded()[0].data)
        self.set_fake_quant(True)

    def freeze_observers(self) -> None:
        """Stop updating the observed activation ranges (their qparams stay fixed)."""
        for q in self.quantizers():
            if isinstance(q, ObservingQuantizer):
                q.observer_enabled = False

    def freeze_bn(self) -> None:
        """Use (and stop updating) the running BatchNorm statistics: the folded conv."""
        for layer in self.qat_layers():
            layer.bn_frozen = True

    # -- conversion ----------------------------------------------------------------------------
    def export_float_chain(self) -> nn.Module:
        """The BN-folded float chain (eval mode) whose weights and biases are exactly the arrays
        the fake-quantized forward uses (``QATLayer.folded``), named as the original model."""
        chain = fold_batch_norm(self._template)
        by_name = dict(chain_layers(chain))
        with nn.no_grad():
            for layer in self.qat_layers():
                w, b = layer.folded()
                m = by_name[layer.layer_name]
                m.weight.data = w.data.copy()
                if b is not None:
                    m.bias = nn.Parameter(b.data.copy())
        return chain.eval()

    def to_model_qparams(self) -> ModelQParams:
        """The ``ModelQParams`` of the current (learned / frozen) quantizers, for ``convert``."""
        current = self.input_fq.qparams()
        result = ModelQParams(self.profile.name, self.profile.version, current)
        with nn.no_grad():
            for layer in self.qat_layers():
                w_qp = layer.weight_fq.qparams_of(layer.folded()[0].data)
                out = layer.act_fq.qparams()
                kind = "conv2d" if isinstance(layer.layer, nn.Conv2d) else "linear"
                bias_scale = current.scale.astype(np.float64) * w_qp.scale.astype(np.float64)
                result.layers[layer.layer_name] = LayerQParams(
                    layer.layer_name, kind, current, w_qp, out, bias_scale,
                    "relu" if layer.relu_name else None, layer.relu_name)
                current = out
        return result


def prepare_qat(model: nn.Module, profile: Profile | str, config: QuantConfig | None = None, *,
                weight_quant: str = "minmax", act_quant: str = "ema",
                averaging_constant: float = 0.01) -> QATModel:
    """A ``QATModel`` of a float chain (a deep copy: ``model`` is untouched), in training mode
    with fake quantization off until ``calibrate_qat`` and ``start_fake_quant``.

    ``weight_quant``: "minmax" (per-channel max|w|, recomputed each step) or "lsq";
    ``act_quant``: "ema" (PyTorch's moving-average observer, ``averaging_constant``), "minmax",
    "pact" (outputs of a fused ReLU; others use "ema") or "lsq". Bit widths from ``config``
    (default 8/8). Raises ValueError for an unknown scheme, a layer QAT cannot take, or a
    power-of-two profile with PACT/LSQ.
    """
    qat = QATModel(model, profile, QuantConfig() if config is None else config,
                   weight_quant=weight_quant, act_quant=act_quant,
                   averaging_constant=averaging_constant)
    qat.set_fake_quant(False)
    return qat.train()


def calibrate_qat(qat: QATModel, images: np.ndarray, *, num_batches: int = 16,
                  batch_size: int = 64, seed: int = 0) -> int:
    """Observe activation ranges on seeded batches (the batches of ``ptq.calibrate``), in eval
    mode with fake quantization off, then ``start_fake_quant``. Returns the batches used."""
    x, order = calibration_order(images, num_batches, batch_size, seed)
    was = qat.training
    qat.set_fake_quant(False)
    qat.eval()
    used = 0
    with nn.no_grad():
        for start in range(0, len(order), batch_size):
            qat(nn.Tensor(x[order[start:start + batch_size]]))
            used += 1
    qat.train(was)
    qat.start_fake_quant()
    return used
