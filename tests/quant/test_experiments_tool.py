"""tools/experiments.py end to end on a toy dataset: every cell from the integer-only model, the
seed's numbers beside ours, an interrupted run continued from results.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import load_tool, write_toy_fashion_mnist


def test_experiments_tool_on_toy_data(tmp_path):
    tool = load_tool("experiments.py")
    (tmp_path / "data").mkdir()
    data = write_toy_fashion_mnist(tmp_path / "data", 600, 200)
    kw = dict(models=("cnn", "cnn_bn"), bits=(4,), float_epochs=1, qat_epochs=1,
              data_dir=data, log=lambda m: None)
    results = tool.run(tmp_path / "out", **kw)
    cells = results["cells"]
    assert set(cells) == {"cnn_PTQ/4", "cnn_QAT/4", "cnnBN_PTQ/4", "cnnBN_QAT/4"}
    assert results["settings"]["freeze_bn_after"] == 0.0
    assert cells["cnn_QAT/4"]["prediction_agreement"] == 1.0
    assert cells["cnn_QAT/4"]["integer_accuracy"] >= 0.9  # the toy classes are easy
    assert (cells["cnn_QAT/4"]["weight_quant"], cells["cnn_QAT/4"]["act_quant"]) == ("lsq", "lsq")
    table = tool.render(results, "python3 tools/experiments.py --toy")
    assert "| cnn_PTQ | " in table and "(71%)" in table and "(81%)" in table
    assert f"{100 * cells['cnn_QAT/4']['integer_accuracy']:.2f}%" in table
    # a second call continues from results.json: nothing is recomputed
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    again = tool.run(tmp_path / "out", **kw)
    assert again["cells"] == saved["cells"]
    assert tool.quant_config(16).weight_bits == 8 and tool.quant_config(16).act_bits == 16
    # CNN_BN against CNN image by image: the rebuilt integer models give the stored accuracies
    pairs = tool.paired(tmp_path / "out", [4], profile="tflite-single-rounding", seed=0,
                        data_dir=data)
    assert set(pairs) == {"ptq/4", "qat/4"}
    for kind, row in (("ptq", "PTQ"), ("qat", "QAT")):
        bn, plain = cells[f"cnnBN_{row}/4"], cells[f"cnn_{row}/4"]
        c = pairs[f"{kind}/4"]
        assert (c["only_a"] - c["only_b"]) == round(200 * (bn["integer_accuracy"]
                                                            - plain["integer_accuracy"]))
        assert 0 < c["p_value"] <= 1
    results["paired"] = pairs
    assert "McNemar" in tool.render(results, "cmd") and "| QAT | " in tool.render(results, "cmd")
    # the same QAT model under TFLite's double rounding: within one code per layer
    dr = tool.double_rounding(tmp_path / "out", "cnn", 4, data, compare_images=20)
    assert dr["layers_equal"]["input"] == 1.0
    assert max(dr["layers_max_abs_diff"].values()) <= 1


def test_plot_needs_matplotlib(tmp_path):
    """The PNG is an optional extra (setup.cfg ``plot``): without matplotlib ``plot`` says so."""
    tool = load_tool("experiments.py")
    results = {"cells": {"cnn_QAT/4": {"integer_accuracy": 0.9},
                         "cnn_QAT/8": {"integer_accuracy": 0.91}}}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert tool.plot(results, tmp_path / "p.png") is False
        assert not (tmp_path / "p.png").exists()
    else:
        assert tool.plot(results, tmp_path / "p.png") is True
        assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mcnemar_exact_p_values():
    tool = load_tool("experiments.py")
    a = np.array([True] * 6 + [False] * 4)
    b = np.array([False] * 6 + [False] * 4)
    # 6 images only a gets right, none only b: p = 2 / 2^6
    assert tool.mcnemar(a, b) == {"only_a": 6, "only_b": 0, "p_value": 2 / 64}
    # 3 against 3: 2 (1 + 6 + 15 + 20) / 64 > 1, so p = 1
    half = np.array([1, 1, 1, 0, 0, 0], bool)
    assert tool.mcnemar(half, ~half) == {"only_a": 3, "only_b": 3, "p_value": 1.0}
    # 1 against 4 of n = 5: p = 2 (C(5,0) + C(5,1)) / 32 = 12/32
    x = np.array([1, 0, 0, 0, 0, 1], bool)
    y = np.array([0, 1, 1, 1, 1, 1], bool)
    assert tool.mcnemar(x, y) == {"only_a": 1, "only_b": 4, "p_value": 12 / 32}
    with pytest.raises(ValueError, match="one shape"):
        tool.mcnemar(x, y[:3])
