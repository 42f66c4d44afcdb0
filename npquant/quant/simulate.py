"""Fake-quantized float simulation of a PTQ model: the float graph with every weight and every
quantized activation replaced by its dequantized value.

For each conv/linear layer the weights become ``w^ = S_w (q_w - 0)`` (the integer model's int8
weights, dequantized) and the bias ``b^ = S_in S_w q_b`` (its int32 bias, dequantized); every
tensor the integer model stores — the model input, each conv/linear/ADD output (after a fused
ReLU) and each average pool output — is replaced by ``S (clamp(round(x / S) + Z) - Z)`` with the
profile's quantize rule. What is left between the two models is where the integer model rounds
differently: the requantization of the accumulators (fixed-point ``M``), ADD's rescaling and the
average pool's rounded division. Their argmax agreement measures exactly that.
"""

from __future__ import annotations

import copy

import numpy as np

from npquant import nn
from npquant.profiles import Profile, get_profile
from npquant.qparams import QParams, dequantize, quantize
from npquant.quant.chain import INPUT, Node, is_alias, trace_graph
from npquant.quant.ptq import ModelQParams, quantize_bias, quantize_weight


def fake_quant(x: np.ndarray, q: QParams, profile: Profile) -> np.ndarray:
    """``dequantize(quantize(x))`` with the profile's per-tensor quantize rule."""
    return dequantize(quantize(x, q, rule=profile.quantize_rule(q.per_channel)), q)


class FakeQuantModel:
    """``model`` (BN-folded) with the weights of ``qparams`` fake-quantized, run with its stored
    activations fake-quantized (module docstring). ``predict(x)`` gives the float logits."""

    def __init__(self, model: nn.Module, qparams: ModelQParams, profile: Profile | str, *,
                 input_shape: tuple[int, int, int]) -> None:
        self.profile = get_profile(profile)
        self.model = copy.deepcopy(model).eval()
        self.qparams = qparams
        self.nodes: list[Node] = trace_graph(
            self.model, np.zeros((1,) + tuple(int(v) for v in input_shape), np.float32))
        modules = dict(self.model.named_modules())
        self.out_q: dict[str, QParams] = {}
        for name, lq in qparams.layers.items():
            m = modules[name]
            wq = quantize_weight(m.weight.data, lq.weight, self.profile)
            m.weight.data = dequantize(wq, lq.weight).astype(m.weight.data.dtype)
            qb = quantize_bias(None if m.bias is None else m.bias.data, lq.bias_scale)
            b = (qb.astype(np.float64) * lq.bias_scale).astype(m.weight.data.dtype)
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

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float logits of the fake-quantized model for images ``x (N, C, H, W)``."""
        values = {INPUT: nn.Tensor(fake_quant(np.asarray(x, np.float32), self.qparams.input,
                                              self.profile))}
        with nn.no_grad():
            for node in self.nodes:
                ins = [values[i] for i in node.inputs]
                if is_alias(node.module):
                    values[node.name] = ins[0]
                    continue
                out = node.module(*ins)
                if node.name in self.out_q:
                    out = nn.Tensor(fake_quant(out.data, self.out_q[node.name], self.profile))
                values[node.name] = out
        return values[self.nodes[-1].name].data

    def predict(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Class indices, batch by batch."""
        if not len(x):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.forward(x[s:s + batch_size]).argmax(axis=1)
                               for s in range(0, len(x), batch_size)])
