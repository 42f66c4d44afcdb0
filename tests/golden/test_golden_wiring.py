"""Golden data of a residual network: each op's ``input`` names the output of the op that feeds
it (``IntegerModel.wiring``), not op k-1's, and an ADD's second input is ``input_b``."""

from __future__ import annotations

import numpy as np

from npquant.convert import convert
from npquant.golden import verify_golden
from npquant.golden.reader import load_golden
from npquant.golden.writer import golden_tensors, write_golden
from npquant.models import resnet_small
from npquant.quant import calibrate, choose_qparams, fold_batch_norm

SHAPE = (1, 12, 12)


def _model():
    x = np.random.default_rng(0).normal(size=(16,) + SHAPE).astype(np.float32)
    f = fold_batch_norm(resnet_small(seed=0).eval(), x[:2])
    qp = choose_qparams(f, calibrate(f, x, num_batches=1, batch_size=16), "tflite")
    return convert(f, qp, "tflite", input_shape=SHAPE), x[:2]


def test_inputs_follow_the_wiring(tmp_path):
    im, x = _model()
    tensors, layers = golden_tensors(im, x)
    arrays = {k: a for k, a, _ in tensors}
    _, trace = im.run(x, return_trace=True)
    assert im.wiring is not None
    shortcut = 0
    for e in trace:
        t = layers[e.index]["tensors"]
        src = im.wiring[e.index]
        if src[0] >= 0:
            assert t["input"] == layers[src[0]]["tensors"]["output"], e.name
            shortcut += src[0] != e.index - 1
        assert np.array_equal(arrays[t["input"]], e.input), e.name
        if e.other is not None:
            assert t["input_b"] == layers[src[1]]["tensors"]["output"]
            assert np.array_equal(arrays[t["input_b"]], e.other)
    assert shortcut > 0  # some op reads an output other than the previous op's
    out = tmp_path / "g"
    write_golden(im, x, out, formats=["npy"])
    assert verify_golden(out) == []
    g = load_golden(out)
    add = next(lay for lay in g.manifest["layers"] if lay["op"] == "ADD")
    assert add["tensors"]["input_b"] in g.arrays
