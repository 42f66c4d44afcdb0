"""tools/experiments_ptq.py end to end on a toy dataset: the observer, weight, bits and pow2
tables, integer-only vs fake-quant agreement, the rival profile's columns."""

from __future__ import annotations

import json

from conftest import load_tool, write_toy_fashion_mnist

from npquant import train


def test_experiments_ptq_tool_on_toy_data(tmp_path):
    tool = load_tool("experiments_ptq.py")
    (tmp_path / "data").mkdir()
    data = write_toy_fashion_mnist(tmp_path / "data", 600, 200)
    train.train("cnn", "fashion-mnist", 1, 0, tmp_path / "float", data_dir=data, progress=False,
                log=lambda m: None)
    out, md = tmp_path / "ptq.json", tmp_path / "ptq.md"
    assert tool.main([str(tmp_path / "float"), "--quick", "--calib-batches", "2",
                      "--data-dir", str(data), "--out", str(out), "--markdown", str(md)]) == 0
    r = json.loads(out.read_text())
    tables = [row["table"] for row in r["rows"]]
    assert {"observers", "weights", "bits", "pow2"} <= set(tables)
    keys = [(row["table"], row["profile"], row["observer"], json.dumps(row["config"]),
             row["bias_correction"]) for row in r["rows"]]
    assert len(keys) == len(set(keys)), "a configuration was measured twice"
    for row in r["rows"]:
        # one rounding of the exact accumulator (tflite-single-rounding) and the pow2 shifts
        # are what the float64 simulation computes: every prediction equal
        assert row["agree_fake_quant"] == 1.0, row
        if row["profile"] == "tflite-single-rounding":
            assert row["rival"]["profile"] == "tflite"
            assert 0.0 <= row["rival"]["agree_fake_quant"] <= 1.0
        else:
            assert row["rival"] is None
    text = md.read_text()
    assert "tflite-single-rounding profile" in text and "| tflite = fake-quant |" in text
    assert tool.format_markdown(r) == text
