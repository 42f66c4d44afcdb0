"""``npquant compare MODEL.tflite`` and ``npquant golden MODEL.tflite`` on an exported model and on
the independently built MobileNet-style stack."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import require
from tflite_mobilenet import build_mobilenet
from tflite_models import integer_model

from npquant.cli import main

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    require("ai_edge_litert")
    from npquant.interop.tflite_export import export_tflite

    d = tmp_path_factory.mktemp("tflite")
    export_tflite(integer_model("resnet_small", "tflite"), d / "resnet.tflite")
    (d / "mobilenet.tflite").write_bytes(build_mobilenet(seed=0))
    return d


def test_compare_reports_every_layer_identical(models, capsys):
    assert main(["compare", str(models / "mobilenet.tflite"), "--images", "30"]) == 0
    out = capsys.readouterr().out
    assert "identical" in out and "(100.0000%) over 13 layers, 30 images" in out
    assert main(["compare", str(models / "resnet.tflite"), "--images", "8", "--profile",
                 "tflite-xnnpack", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identical"] and report["agreement"]["equal"] == \
        report["agreement"]["elements"]
    assert report["not_delegated"] == ["15:AVERAGE_POOL_2D"]


def test_compare_names_the_first_divergent_layer(models, capsys, tmp_path):
    # npquant under the reference profile against the XNNPACK kernels: the convs differ
    x = np.random.default_rng(0).normal(size=(6, 1, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = main(["compare", str(models / "resnet.tflite"), "--images", str(tmp_path / "x.npy"),
                 "--kernels", "xnnpack"])
    out = capsys.readouterr().out
    assert code == 1 and "first divergence: op 01 conv1, tensor output" in out


def test_compare_and_golden_refuse_bad_images(models, capsys, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 16, 16), np.float32))
    assert main(["compare", str(models / "resnet.tflite"), "--images",
                 str(tmp_path / "bad.npy")]) == 2
    assert "expected float32 (N, 1, 16, 16)" in capsys.readouterr().err
    assert main(["golden", str(models / "resnet.tflite"), str(tmp_path / "g"), "--images",
                 "x.txt"]) == 2
    assert "must be a count or a .npy file" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def test_golden_writes_a_verified_directory(models, tmp_path, capsys):
    out = tmp_path / "golden"
    assert main(["golden", str(models / "mobilenet.tflite"), str(out), "--images", "3",
                 "--formats", "npy,hex", "--profile", "tflite-xnnpack"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"]["name"] == "tflite-xnnpack"
    assert manifest["extra"]["source"]["kind"] == "tflite"
    assert [lay["op"] for lay in manifest["layers"]][-4:] == ["MEAN", "FULLY_CONNECTED",
                                                             "SOFTMAX", "DEQUANTIZE"]
    assert main(["verify", str(out)]) == 0
