"""Fake-quantized float simulation of a PTQ model: the float graph with every weight and every
quantized activation replaced by its dequantized value, computed in float64.

For each conv/linear layer the weights become ``w^ = S_w (q_w - 0)`` (the integer model's int8
weights, dequantized) and the bias ``b^ = S_in S_w q_b`` (its int32 bias, dequantized); every
tensor the integer model stores — the model input, each conv/linear/ADD output (after a fused
ReLU) and each average pool output — is replaced by ``S (clamp(round(x / S) + Z) - Z)`` with the
profile's tie rule. The arithmetic is float64 (a float32 conv would add its own rounding of
the sums, and flip about 0.4% of the 8-bit codes of the first conv of a ResNet on its own).
What is left between the two models is where the integer model rounds differently: the
fixed-point requantization multiplier ``M``, ADD's 20-bit rescaling and the average pool's
rounded division of ``q`` (not ``q - Z``). Their argmax agreement measures exactly that.
"""

from __future__ import annotations

import copy

import numpy as np

from npquant import nn
from npquant.profiles import Profile, get_profile
from npquant.qparams import QParams, dequantize, quantize, round_to_integer
from npquant.quant.chain import INPUT, Node, is_alias, trace_graph
from npquant.quant.ptq import ModelQParams, quantize_bias, quantize_weight


def fake_quant(x: np.ndarray, q: QParams, profile: Profile) -> np.ndarray:
    """``S (clamp(round(x / S) + Z, qmin, qmax) - Z)`` in float64, ties by the profile's
    per-tensor quantize rule."""
    scale, zp = q.broadcast(np.ndim(x))
    s = scale.astype(np.float64)
    v = round_to_integer(np.asarray(x, np.float64) / s, profile.quantize_rule(False).ties)
    return s * (np.clip(v + zp, q.qmin, q.qmax) - zp)


class FakeQuantModel:
    """``model`` (BN-folded) with the weights of ``qparams`` fake-quantized, run with its stored
    activations fake-quantized (module docstring). ``predict(x)`` gives the float logits."""

    def __init__(self, model: nn.Module, qparams: ModelQParams, profile: Profile | str, *,
                 input_shape: tuple[int, int, int]) -> None:
        self.profile = get_profile(profile)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.data = p.data.astype(np.float64)
        self.qparams = qparams
        self.nodes: list[Node] = trace_graph(
            self.model, np.zeros((1,) + tuple(int(v) for v in input_shape), np.float64))
        modules = dict(self.model.named_modules())
        self.out_q: dict[str, QParams] = {}
        for name, lq in qparams.layers.items():
            m = modules[name]
            wq = quantize_weight(m.weight.data, lq.weight, self.profile)
            s_w, _ = lq.weight.broadcast(wq.ndim)
            m.weight.data = s_w.astype(np.float64) * wq.astype(np.float64)  # Z_w = 0
            qb = quantize_bias(None if m.bias is None else m.bias.data, lq.bias_scale)
            b = qb.astype(np.float64) * lq.bias_scale
            if m.bias is None:
                m.bias = nn.Parameter(b)
            else:
                m.bias.data = b
            self.out_q[lq.activation_layer or name] = lq.output
        for name, aq in qparams.adds.items():
            self.out_q[aq.activation_layer or name] = aq.output
        tensor_q = {INPUT: qparams.input}
        for node in self.nodes:  # average pools store their input's qparams
            src = node.inputs[0] if node.inputs else INPUT
            if node.name in self.out_q:
                tensor_q[node.name] = self.out_q[node.name]
            elif src in tensor_q:
                tensor_q[node.name] = tensor_q[src]
            if isinstance(node.module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)) and \
                    node.name in tensor_q:
                self.out_q[node.name] = tensor_q[node.name]

    def forward(self, x: np.ndarray, codes: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Float logits of the fake-quantized model for images ``x (N, C, H, W)``.

        With a dict ``codes``, also fills it with the integer code ``round(x / S) + Z`` of every
        fake-quantized tensor (by the name of the layer whose output it is; the integer model
        stores the same tensors, so the two can be compared code for code).
        """
        # the input is quantized from float32 as the integer model's QUANTIZE does it
        q_in = quantize(np.asarray(x, np.float32), self.qparams.input,
                        rule=self.profile.quantize_rule(False))
        values = {INPUT: nn.Tensor(dequantize(q_in, self.qparams.input).astype(np.float64))}
        with nn.no_grad():
            for node in self.nodes:
                ins = [values[i] for i in node.inputs]
                if is_alias(node.module):
                    values[node.name] = ins[0]
                    continue
                out = node.module(*ins)
                if node.name in self.out_q:
                    q = self.out_q[node.name]
                    if isinstance(node.module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                        out = nn.Tensor(self._average_codes(out.data, q))
                    else:
                        out = nn.Tensor(fake_quant(out.data, q, self.profile))
                    if codes is not None:
                        scale, zp = q.broadcast(out.data.ndim)
                        codes[node.name] = (np.rint(out.data / scale.astype(np.float64))
                                            + zp).astype(np.int64)
                values[node.name] = out
        return values[self.nodes[-1].name].data

    def _average_codes(self, mean: np.ndarray, q: QParams) -> np.ndarray:
        """An average pool of values on the grid of ``q`` is ``S (mean(q_in) - Z)``; the integer
        pool stores ``round(mean(q_in))`` rounded with the profile's ``average_pool`` tie rule
        on the stored codes (not on ``q - Z``: the two differ on exact ties when ``Z != 0``)."""
        scale = float(q.scale)
        zp = int(q.zero_point)
        codes = round_to_integer(mean / scale + zp, self.profile.average_pool)
        return scale * (np.clip(codes, q.qmin, q.qmax) - zp)

    def predict(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Class indices, batch by batch."""
        if not len(x):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.forward(x[s:s + batch_size]).argmax(axis=1)
                               for s in range(0, len(x), batch_size)])
