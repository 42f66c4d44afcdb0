"""``npquant golden`` end to end on a toy FashionMNIST: a model name and a trained checkpoint as
sources, refusal without ``--force``, argument errors before any file, and ``npquant compare``
against a fresh run under the same and another profile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_toy_fashion_mnist

from npquant import train
from npquant.cli import main
from npquant.golden import load_golden

QUICK = ["--calib-batches", "2", "--calib-batch-size", "32"]


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    return write_toy_fashion_mnist(tmp_path_factory.mktemp("toy"), 128, 16)


@pytest.fixture(scope="module")
def model_golden(toy_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmd") / "g"
    assert main(["golden", "cnn", "--images", "3", "--profile", "tflite", "--formats",
                 "npz,hex,bin,h", "--data-dir", str(toy_dir), *QUICK, str(out)]) == 0
    return out


def test_golden_from_a_model_name(model_golden, toy_dir, capsys):
    g = load_golden(model_golden)
    m = g.manifest
    assert m["formats"] == ["npz", "hex", "bin", "h"] and m["batch_size"] == 3
    assert not any(name.endswith(".npy") for name in m["sha256"])
    src = m["extra"]["source"]
    assert src["kind"] == "model" and src["model"] == "cnn" and src["dataset"] == "fashion-mnist"
    assert src["calibration"] == {"batches": 2, "batch_size": 32, "seed": 0,
                                  "images": src["calibration"]["images"]}
    x, y = train.prepare("fashion-mnist", "test", toy_dir, 3)
    assert np.array_equal(g.arrays["00_input.input"], x) and np.array_equal(g.arrays["labels"], y)
    assert m["provenance"]["command"].startswith("npquant golden cnn --images 3")
    assert main(["verify", str(model_golden)]) == 0
    assert "OK" in capsys.readouterr().out


def test_compare_with_a_fresh_run(model_golden, toy_dir, capsys):
    """Rebuilt under the same profile: identical; under pow2 (power-of-two scales): not."""
    assert main(["compare", str(model_golden), "--profile", "tflite", "--data-dir",
                 str(toy_dir)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("identical")
    assert main(["compare", str(model_golden), "--profile", "pow2", "--data-dir", str(toy_dir),
                 "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["identical"] and report["first_divergence"]["layer_index"] >= 0


def test_existing_output_needs_force(model_golden, toy_dir, capsys):
    before = (model_golden / "manifest.json").read_bytes()
    argv = ["golden", "cnn", "--images", "2", "--data-dir", str(toy_dir), *QUICK,
            str(model_golden)]
    assert main(argv) == 2
    assert "not empty" in capsys.readouterr().err
    assert (model_golden / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("argv, message", [
    (["nope"], "npquant golden: error: source 'nope' is neither a training / pipeline directory"),
    (["cnn", "--images", "0"], "argument --images: must be an int >= 1, got 0"),
    (["cnn", "--images", "17"], "the fashion-mnist test split has 16"),
    (["cnn", "--formats", "npz,tiff"], "formats must be distinct names"),
], ids=["source", "zero-images", "too-many-images", "format"])
def test_bad_arguments_write_nothing(toy_dir, tmp_path, capsys, argv, message):
    """One line naming the problem, exit status 2 (argparse's SystemExit for a bad option)."""
    out = tmp_path / "g"
    try:
        code = main(["golden", *argv, "--data-dir", str(toy_dir), *QUICK, str(out)])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_golden_from_a_trained_checkpoint(toy_dir, tmp_path):
    """A training directory (and a pipeline directory holding train/) are sources; the model is
    the checkpoint's, BatchNorm folded, calibrated as the pipeline does."""
    train.train("cnn", "fashion-mnist", 1, 5, tmp_path / "run" / "train", data_dir=toy_dir,
                limit_train=64, limit_test=16, progress=False, log=lambda _: None)
    for source in (tmp_path / "run" / "train", tmp_path / "run"):
        out = tmp_path / f"g-{source.name}"
        assert main(["golden", str(source), "--images", "2", "--data-dir", str(toy_dir),
                     "--formats", "npy", *QUICK, str(out)]) == 0
        src = load_golden(out).manifest["extra"]["source"]
        assert src["kind"] == "checkpoint" and src["seed"] == 5 and src["epoch"] == 1
    a, b = (load_golden(tmp_path / f"g-{n}") for n in ("train", "run"))
    assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
