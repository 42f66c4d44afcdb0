"""Integer ops that quantized ONNX models need beyond those ``npquant.convert`` emits.

ORT's quantizer gives a ``GlobalAveragePool`` its own output qparams (calibrated on the pooled
tensor), which npquant's AVERAGE_POOL_2D (input qparams kept, as TFLite requires) cannot hold;
and it leaves a ReLU that it cannot fuse by the output range as a node of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from npquant import integer
from npquant.convert import IntOp
from npquant.qparams import QParams


@dataclass
class GlobalAvgPoolOp(IntOp):
    """GLOBAL_AVERAGE_POOL with requantization: ``(N, C, H, W) -> (N, C, 1, 1)``,
    ``y = clamp(Z_out + rne(f32(sum q - Z_in H W) M))``, ``M = f32(S_in / f32(S_out H W))``
    (ONNX Runtime's QLinearGlobalAveragePool; the profile's ``global_average_pool`` rule, so a
    profile without one refuses different input and output qparams). The accumulators are
    ``sum q - Z_in H W``."""

    input_qparams: QParams = None
    output_qparams: QParams = None
    op = "GLOBAL_AVERAGE_POOL"

    @property
    def qparams(self) -> QParams:
        """The output qparams (as pools expose theirs)."""
        return self.output_qparams

    def run(self, x, profile):
        qi, qo = self.input_qparams, self.output_qparams
        r = integer.global_avg_pool2d(x, zero_point=int(qi.zero_point), scale=float(qi.scale),
                                      out_scale=float(qo.scale),
                                      out_zero_point=int(qo.zero_point), profile=profile,
                                      return_accumulators=True)
        return r.out, r.acc

    def describe(self):
        return {}


@dataclass
class ReluOp(IntOp):
    """A ReLU (or ReLU6) of its own, on the stored integers with unchanged qparams:
    ``max(q, Z)`` (``min(.., Z + q(6))`` for ReLU6, real 6 quantized by the profile's
    ``relu6_bound_rule``). ORT's quantizer writes ``DQ -> Relu -> Q`` with the input's qparams
    when it cannot fuse the ReLU into the op before it by the output range (a zero point above
    the type's minimum, e.g. symmetric activations); ``Q(relu(DQ(q)))`` is exactly ``max(q, Z)``
    because ``rne(f32(f32(S k) / S)) = k`` for every int8 ``k``."""

    qparams: QParams = None
    activation: str = "relu"
    op = "RELU"

    def run(self, x, profile):
        q = self.qparams
        if self.activation == "relu6":
            return integer.relu6(x, scale=float(q.scale), zero_point=int(q.zero_point),
                                 profile=profile), None
        return integer.relu(x, zero_point=int(q.zero_point)), None

    def describe(self):
        return {"activation": self.activation}
