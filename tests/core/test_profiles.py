"""Profiles are complete, named, versioned data, listed by the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from npquant.fixedpoint import Ties
from npquant.profiles import (
    PROFILES,
    AddScheme,
    MultiplierDerivation,
    Profile,
    QuantizeMethod,
    QuantizeRule,
    RequantKind,
    ZeroPointOrder,
    format_profiles,
    get_profile,
)

REQUIRED = ["tflite", "tflite-single-rounding", "tflite-optimized", "tflite-xnnpack",
            "onnxruntime", "pytorch-fbgemm", "pytorch-qnnpack", "pow2"]


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


def test_measured_kernel_path_rules():
    """The rules docs/framework_facts.md measured, as data (oracle tests check the arithmetic)."""
    opt = get_profile("tflite-optimized")
    assert opt.conv.ties is Ties.UP and opt.depthwise_conv.channel_group == 8
    assert opt.depthwise_conv.tail_ties is Ties.AWAY
    fc = opt.fully_connected
    assert fc.derivation_for(False) is MultiplierDerivation.FLOAT32_PRODUCT
    assert fc.derivation_for(True) is MultiplierDerivation.DOUBLE
    assert opt.add_input_rule().kind is RequantKind.SINGLE_ROUNDING
    assert opt.add.kind is RequantKind.DOUBLE_ROUNDING
    assert opt.quantize.block == 8 and opt.quantize.tail.precision == "float64"
    assert opt.dequantize.two_step and not opt.dequantize.tail.two_step
    assert get_profile("tflite").add_input_rule() is get_profile("tflite").add
    assert get_profile("tflite-xnnpack").add_scheme is AddScheme.XNNPACK
    qnn = get_profile("pytorch-qnnpack")
    assert qnn.conv.derivation is MultiplierDerivation.FLOAT32_RECIPROCAL
    assert qnn.add_scheme is AddScheme.QNNPACK and qnn.add.ties is Ties.AWAY


@pytest.mark.parametrize("bad", [
    dict(block=8),  # a block without its tail rule
    dict(block=-1),
    dict(precision="float16"),
], ids=["block-no-tail", "negative-block", "precision"])
def test_quantize_rule_validation(bad):
    args = dict(method=QuantizeMethod.DIVIDE, precision="float32", ties=Ties.AWAY,
                zero_point=ZeroPointOrder.AFTER_ROUNDING)
    with pytest.raises(ValueError):
        QuantizeRule(**{**args, **bad})


def test_blocked_quantize_rule_switches_at_the_last_whole_block():
    """Blocks of 8 ties-to-even, tail ties-away: x = 2.5 S quantizes to 2 in the first 8
    elements and to 3 in the last n mod 8."""
    from npquant.qparams import QParams, quantize

    rule = get_profile("tflite-optimized").quantize
    x = np.full(11, 2.5, np.float32)
    assert quantize(x, QParams(1.0, 0), rule=rule).tolist() == [2] * 8 + [3] * 3


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


@pytest.mark.parametrize("command", ["train", "pipeline"])
def test_cli_delegates_subcommands(command):
    out = subprocess.run([sys.executable, "-m", "npquant", command, "--help"], check=True,
                         capture_output=True, text=True).stdout
    assert f"npquant {command}" in out and "--epochs" in out


def test_cli_unknown_profile_is_a_clean_error():
    proc = subprocess.run([sys.executable, "-m", "npquant", "profiles", "caffe"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown profile 'caffe'" in proc.stderr
