"""The integer ops of ``npquant.intops`` (MEAN, PAD, CONCATENATION, RESHAPE, TRANSPOSE, valid-tap
AVERAGE_POOL_2D, SOFTMAX, LOGISTIC) and SAME-padded pools / RELU6-fused convs, each inside a small
exported model, against the real interpreter: every element bit for bit, on seeded qparams and
inputs that reach the whole int8 range, under each kernel path with its scheme."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

from npquant.convert import Conv2dOp, DequantizeOp, IntegerModel, MaxPoolOp, QuantizeOp
from npquant.intops import (
    AvgPool2dOp,
    ConcatOp,
    LogisticOp,
    MeanOp,
    PadOp,
    ReshapeOp,
    SoftmaxOp,
    TransposeOp,
)
from npquant.profiles import get_profile
from npquant.qparams import QParams
from npquant.requant import prepare_requant

pytestmark = pytest.mark.oracle

PROFILE = {"reference": "tflite", "xnnpack": "tflite-xnnpack", "optimized": "tflite-optimized"}
PROB = QParams(np.float32(1 / 256), -128)  # TFLite's softmax / logistic output


def _qp(rng, lo=0.01, hi=0.1) -> QParams:
    return QParams(np.float32(rng.uniform(lo, hi)), int(rng.integers(-40, 40)))


def _images(rng, shape, q: QParams, n=40) -> np.ndarray:
    """Floats whose QUANTIZE spans all of int8 (and saturates at both ends)."""
    span = 140 * float(q.scale)
    return (rng.uniform(-span, span, size=(n,) + shape) + float(q.scale) * float(q.zero_point)
            ).astype(np.float32)


def _check(ops, shape, x, kernels, wiring=None, expect_delegated=True):
    require("ai_edge_litert")
    from npquant.interop.tflite_compare import compare_with_tflite
    from npquant.interop.tflite_export import export_tflite
    from npquant.interop.tflite_import import import_tflite

    model = IntegerModel(ops, get_profile(PROFILE[kernels]), shape, wiring=wiring)
    data = export_tflite(model)
    c, run = compare_with_tflite(model, data, x, kernels=kernels)
    assert not c.problems, c.problems
    bad = [(d.layer_name, d.count, d.size, d.first_index) for d in c.diffs if d.count]
    assert not bad, f"{kernels}: {bad} [ops {[op.op for op in ops]}]"
    # and the same model imported back (the import picks MEAN's and SOFTMAX's scheme)
    c2, _ = compare_with_tflite(import_tflite(data, profile=PROFILE[kernels]), data, x,
                                kernels=kernels)
    assert c2.identical, [(d.layer_name, d.count) for d in c2.diffs if d.count]
    if kernels == "xnnpack" and expect_delegated:
        assert not run.not_delegated, run.not_delegated
    return run


def _mean_cases(keep_dims: bool, channels: int = 20):
    rng = np.random.default_rng(1 + keep_dims)
    for _ in range(12):
        qi = _qp(rng)
        qo = qi if rng.random() < 0.3 else _qp(rng, 0.002, 0.05)
        shape = (int(rng.integers(1, channels)), int(rng.integers(1, 9)),
                 int(rng.integers(1, 9)))
        yield qi, qo, shape, _images(rng, shape, qi)


@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_reference(keep_dims):
    for qi, qo, shape, x in _mean_cases(keep_dims):
        ops = [QuantizeOp("in", qi), MeanOp("mean", qi, qo, keep_dims, "reference"),
               DequantizeOp("out", qo)]
        _check(ops, shape, x, "reference")


@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_xnnpack(keep_dims):
    for qi, qo, shape, x in _mean_cases(keep_dims):
        ops = [QuantizeOp("in", qi), MeanOp("mean", qi, qo, keep_dims, "xnnpack"),
               DequantizeOp("out", qo)]
        _check(ops, shape, x, "xnnpack")


@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_optimized(keep_dims):
    """The optimized builtin MEAN (whole groups of 16 channels in NEON code) with keep_dims; the
    reference sequence without (the optimized kernel falls back to it)."""
    scheme = "optimized" if keep_dims else "reference"
    for qi, qo, shape, x in _mean_cases(keep_dims, channels=40):
        ops = [QuantizeOp("in", qi), MeanOp("mean", qi, qo, keep_dims, scheme),
               DequantizeOp("out", qo)]
        _check(ops, shape, x, "optimized")


# the reference kernels run the fixed-point softmax; XNNPACK does not take int8 SOFTMAX, so the
# builtin optimized kernel (the float table) runs it there
@pytest.mark.parametrize("kernels,scheme", [("reference", "reference"), ("xnnpack", "optimized"),
                                            ("optimized", "optimized")])
def test_softmax(kernels, scheme):
    rng = np.random.default_rng(3)
    for _ in range(8):
        qi = _qp(rng, 0.01, 0.3)
        depth = int(rng.integers(2, 40))
        beta = float(rng.choice([1.0, 1.0, 0.5, 2.0]))
        ops = [QuantizeOp("in", qi), ReshapeOp("flat", qi, (depth,), "nhwc"),
               SoftmaxOp("softmax", qi, PROB, beta, scheme), DequantizeOp("out", PROB)]
        run = _check(ops, (depth, 1, 1), _images(rng, (depth, 1, 1), qi), kernels,
                     expect_delegated=False)
        if kernels == "xnnpack":
            assert [d.split(":")[1] for d in run.not_delegated] == ["SOFTMAX"]


@pytest.mark.parametrize("kernels", sorted(PROFILE))
def test_logistic(kernels):
    rng = np.random.default_rng(4)
    for _ in range(10):
        qi = _qp(rng, 0.005, 0.2)
        ops = [QuantizeOp("in", qi), LogisticOp("logistic", qi, PROB), DequantizeOp("out", PROB)]
        x = _images(rng, (16, 4, 4), qi, n=8)  # 2048 elements: every table entry, many times
        _check(ops, (16, 4, 4), x, kernels)


@pytest.mark.parametrize("kernels", sorted(PROFILE))
def test_shape_ops_pad_and_concat(kernels):
    rng = np.random.default_rng(5)
    q = _qp(rng)
    shape = (6, 5, 7)
    ops = [QuantizeOp("in", q),
           PadOp("pad", q, ((0, 0), (0, 0), (1, 2), (2, 0))),  # (N, 6, 8, 9)
           ConcatOp("concat", q, axis=1),  # the padded tensor twice: (N, 12, 8, 9)
           TransposeOp("transpose", q, (0, 2, 1, 3), "nhwc"),  # NHWC (N, 9, 8, 12)
           ReshapeOp("reshape", q, (9 * 8, 12), "nhwc"),
           DequantizeOp("out", q)]
    wiring = [(-1,), (0,), (1, 1), (2,), (3,), (4,)]
    _check(ops, shape, _images(rng, shape, q), kernels, wiring=wiring)


@pytest.mark.parametrize("kernels", sorted(PROFILE))
def test_same_padded_pools_and_relu6(kernels):
    rng = np.random.default_rng(6)
    prof = get_profile(PROFILE[kernels])
    q = _qp(rng)
    shape = (4, 9, 10)
    w = rng.integers(-127, 128, size=(8, 4, 3, 3)).astype(np.int8)
    w_q = QParams(np.full(8, 0.01, np.float32), np.zeros(8, np.int64), axis=0,
                  narrow_range=True)
    y_q = QParams(np.float32(6.0 / 200), -100)  # real 6 inside the int8 range: RELU6 clamps
    conv = Conv2dOp("conv", weight=w, bias=rng.integers(-500, 500, 8).astype(np.int32),
                    input_qparams=q, weight_qparams=w_q, output_qparams=y_q,
                    requant=prepare_requant(prof.conv, float(q.scale), w_q.scale,
                                            float(y_q.scale)),
                    stride=(2, 2), padding=(1, 1, 0, 1), activation="relu6")  # SAME, 9x10
    ops = [QuantizeOp("in", q), conv,
           MaxPoolOp("maxpool", y_q, (3, 3), (2, 2), (1, 1, 1, 1)),  # SAME on 5x5
           AvgPool2dOp("avgpool", y_q, (2, 2), (1, 1), (0, 1, 0, 1)),  # SAME, valid taps only
           DequantizeOp("out", y_q)]
    # the int8 AVERAGE_POOL_2D is not delegated: the builtin kernel runs it
    run = _check(ops, shape, _images(rng, shape, q), kernels, expect_delegated=False)
    if kernels == "xnnpack":
        assert [d.split(":")[1] for d in run.not_delegated] == ["AVERAGE_POOL_2D"]


def _conv_op(rng, name, q_in, cin, cout, k, prof, groups=1, **kw):
    w = rng.integers(-127, 128, size=(cout, cin // groups, k, k)).astype(np.int8)
    w_q = QParams(rng.uniform(0.005, 0.02, cout).astype(np.float32), np.zeros(cout, np.int64),
                  axis=0, narrow_range=True)
    y_q = _qp(rng, 0.05, 0.3)
    rule = prof.depthwise_conv if groups > 1 else prof.conv
    return Conv2dOp(name, weight=w, bias=rng.integers(-2000, 2000, cout).astype(np.int32),
                    input_qparams=q_in, weight_qparams=w_q, output_qparams=y_q,
                    requant=prepare_requant(rule, float(q_in.scale), w_q.scale,
                                            float(y_q.scale)), groups=groups, **kw), y_q


@pytest.mark.parametrize("kernels", sorted(PROFILE))
def test_conv_layouts_depth_multiplier_dilation_and_explicit_pads(kernels):
    """Export layouts the seed models do not reach: a depthwise conv with depth multiplier 2,
    dilation 2, stride 2, and explicit pads that SAME does not give (exported as PAD)."""
    rng = np.random.default_rng(7)
    prof = get_profile(PROFILE[kernels])
    q = _qp(rng)
    shape = (3, 13, 12)
    c1, q1 = _conv_op(rng, "dw", q, 3, 6, 3, prof, groups=3, stride=(1, 1), padding=(1, 1),
                      dilation=(2, 2), activation="relu")
    c2, q2 = _conv_op(rng, "conv", q1, 6, 5, 3, prof, stride=(2, 2), padding=(2, 0, 1, 2),
                      activation="relu6")
    c3, q3 = _conv_op(rng, "dw2", q2, 5, 5, 3, prof, groups=5, stride=(2, 1),
                      padding=(1, 1, 1, 1))
    ops = [QuantizeOp("in", q), c1, c2, c3, DequantizeOp("out", q3)]
    _check(ops, shape, _images(rng, shape, q), kernels)
