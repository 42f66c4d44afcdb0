"""Profiles are complete, named, versioned data, listed by the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from npquant.profiles import PROFILES, Profile, RequantKind, format_profiles, get_profile

REQUIRED = ["tflite", "tflite-single-rounding", "onnxruntime", "pytorch-fbgemm", "pow2"]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_profiles_exist_and_are_complete(name):
    p = get_profile(name)
    assert isinstance(p, Profile) and p.name == name and p.version and p.description
    assert all(text for _, text in p.rules())


def test_tflite_reference_rules():
    p = get_profile("tflite")
    assert p.conv.kind is RequantKind.DOUBLE_ROUNDING and p.conv.ties.value == "away"
    assert p.fully_connected.kind is RequantKind.FLOAT64  # reference FC requantizes in float64
    assert get_profile("onnxruntime").conv.kind is RequantKind.FLOAT32


def test_unknown_profile_lists_known():
    with pytest.raises(ValueError, match="known profiles: .*tflite"):
        get_profile("caffe")


def test_profiles_are_frozen():
    with pytest.raises(AttributeError):
        PROFILES["tflite"].version = "2"


def test_cli_lists_profiles_with_rules():
    out = subprocess.run([sys.executable, "-m", "npquant", "profiles"], check=True,
                         capture_output=True, text=True).stdout
    assert out == format_profiles()
    for name in REQUIRED:
        assert f"{name} (version" in out
