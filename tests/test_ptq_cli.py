"""``npquant ptq`` and ``npquant eval`` on a toy checkpoint: stages, summary, files, errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import write_toy_fashion_mnist

from npquant import cli, train
from npquant.metrics import per_class_report
from npquant.ptq_cli import parse_override


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ptqcli")
    (d / "data").mkdir()
    data = write_toy_fashion_mnist(d / "data", 256, 128)
    train.train("cnn", "fashion-mnist", 1, 0, d / "ckpt", data_dir=data, limit_train=256,
                limit_test=128, progress=False, log=lambda _: None)
    return d / "ckpt", data


def test_ptq_command_writes_qparams_and_summary(checkpoint, tmp_path, capsys):
    ckpt, data = checkpoint
    out = tmp_path / "ptq"
    argv = ["ptq", str(ckpt), "--bits-w", "4", "--bits-a", "8", "--observer", "percentile",
            "--profile", "tflite", "--data-dir", str(data), "--calib-batches", "2",
            "--calib-batch-size", "32", "--no-progress", "--per-class", "--out", str(out),
            "--override", "conv1:weight_bits=8", "--bias-correction"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "[1/3]" in printed and "[3/3]" in printed and "argmax fake-quant vs integer" in printed
    s = json.loads((out / "summary.json").read_text())
    assert set(s["modes"]) == {"float", "fake-quant", "integer"}
    assert s["ptq"]["config"]["weight_bits"] == 4 and s["ptq"]["bias_correction"]
    assert s["ptq"]["config"]["overrides"] == {"conv1": {"weight_bits": 8}}
    qp = json.loads((out / "qparams.json").read_text())
    assert qp["layers"]["conv1"]["weight"]["bits"] == 8
    assert qp["layers"]["fc"]["weight"]["bits"] == 4


def test_eval_command_one_mode(checkpoint, capsys):
    ckpt, data = checkpoint
    assert cli.main(["eval", str(ckpt), "--mode", "integer", "--data-dir", str(data),
                     "--calib-batches", "1", "--no-progress", "--observer", "kl"]) == 0
    printed = capsys.readouterr().out
    assert "integer    accuracy" in printed and "float      accuracy" not in printed


@pytest.mark.parametrize(("extra", "match"), [
    (["--override", "conv9:act_bits=4"], r"do not exist: \['conv9'\]"),
    (["--bits-a", "17"], "act_bits must be an int in 2..16, got 17"),
    (["--bits-w", "1"], "weight_bits must be an int in 2..16, got 1"),
    (["--bits-w", "12"], "weights take 2..8 bits"),
    (["--percentile", "99.9"], "--percentile applies to --observer percentile only"),
])
def test_bad_arguments_are_errors(checkpoint, capsys, extra, match):
    ckpt, data = checkpoint
    assert cli.main(["ptq", str(ckpt), "--data-dir", str(data), "--calib-batches", "1",
                     "--no-progress", *extra]) == 2
    assert re.search(match, capsys.readouterr().out)


def test_parse_override():
    assert parse_override("layer1.0.conv1:weight_bits=4,per_channel=false") == \
        ("layer1.0.conv1", {"weight_bits": 4, "per_channel": False})
    with pytest.raises(ValueError, match="LAYER:key=value"):
        parse_override("conv1")


def test_per_class_report_by_hand():
    y = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0])
    r = per_class_report(y, p, 3)
    np.testing.assert_allclose(r["precision"], [0.5, 2 / 3, 0.0])
    np.testing.assert_allclose(r["recall"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(r["f1"], [0.5, 0.8, 0.0])
    assert r["accuracy"] == 0.6 and r["support"].tolist() == [2, 2, 1]
