"""Float -> int quantization of each profile against the real framework's quantize op.

Inputs are drawn around exact ties (x = (k + 1/2) S) where the rules differ, plus normal draws;
the alternative rules are run too, to show that the data tells the rules apart.
(TFLite's QUANTIZE is checked by tests/oracles against the interpreter.)
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

from npquant.fixedpoint import Ties
from npquant.profiles import QuantizeMethod, QuantizeRule, ZeroPointOrder, get_profile
from npquant.qparams import QParams, quantize

pytestmark = pytest.mark.oracle
N = 20_000
TRIALS = 10


def _cases(seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(TRIALS):
        s = np.float32(rng.uniform(1e-3, 1.0))
        z = int(rng.integers(-20, 20))
        ties = ((rng.integers(-150, 150, size=N) + 0.5) * np.float64(s)).astype(np.float32)
        normal = rng.normal(0, 60 * s, size=N).astype(np.float32)
        yield s, z, np.concatenate([ties, normal])


def _mismatches(rule: QuantizeRule, qp: QParams, x: np.ndarray, framework: np.ndarray) -> int:
    return int(np.count_nonzero(quantize(x, qp, rule=rule) != framework))


def test_onnxruntime_quantize_linear_is_the_onnxruntime_profile():
    ort = require("onnxruntime")
    onnx = require("onnx")
    from onnx import TensorProto, helper

    rule = get_profile("onnxruntime").quantize
    wrong = QuantizeRule(QuantizeMethod.DIVIDE, "float32", Ties.AWAY, ZeroPointOrder.AFTER_ROUNDING)
    n_wrong = 0
    for s, z, x in _cases(1):
        node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
        graph = helper.make_graph(
            [node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [x.size])],
            [helper.make_tensor_value_info("y", TensorProto.INT8, [x.size])],
            initializer=[helper.make_tensor("s", TensorProto.FLOAT, [], [float(s)]),
                         helper.make_tensor("z", TensorProto.INT8, [], [z])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
        model.ir_version = 9
        onnx.checker.check_model(model)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": x})[0]
        qp = QParams(s, z)
        assert _mismatches(rule, qp, x, got) == 0
        n_wrong += _mismatches(wrong, qp, x, got)
    assert n_wrong > 0  # ties away would not have matched: the cases do test the tie rule


def test_torch_quantize_per_tensor_and_per_channel_are_the_pytorch_profile():
    torch = require("torch")
    profile = get_profile("pytorch-fbgemm")
    cross = {"per-tensor rule on per-channel op": 0, "per-channel rule on per-tensor op": 0}
    for s, z, x in _cases(2):
        per_tensor = torch.quantize_per_tensor(torch.from_numpy(x), float(s), z,
                                               torch.qint8).int_repr().numpy()
        qp = QParams(s, z)
        assert _mismatches(profile.quantize_rule(per_channel=False), qp, x, per_tensor) == 0
        row = torch.from_numpy(x.reshape(1, -1))
        per_channel = torch.quantize_per_channel(
            row, torch.tensor([float(s)], dtype=torch.float64), torch.tensor([z]), 0,
            torch.qint8).int_repr().numpy()
        qpc = QParams([s], [z], axis=0)
        assert _mismatches(profile.quantize_rule(per_channel=True), qpc, x.reshape(1, -1),
                           per_channel) == 0
        cross["per-tensor rule on per-channel op"] += _mismatches(
            profile.quantize_rule(per_channel=False), qpc, x.reshape(1, -1), per_channel)
        cross["per-channel rule on per-tensor op"] += _mismatches(
            profile.quantize_rule(per_channel=True), qp, x, per_tensor)
    # the zero point added inside one fma vs after a float32 rounding: both really differ
    assert all(v > 0 for v in cross.values()), cross
