"""Cases that tell profiles apart (npquant.testing.tell_apart): for pairs of profiles of one
framework, a search finds cases on which npquant computes the op differently under the two,
and the framework, run on those cases, computes every one of them as the row's profile does.
TFLite's reference and optimized ADD are the issue's example: they differ on one value pair in
roughly one scale triple of 250, which random tensors do not find (``add_grid_cases`` do)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from npq_testing import require_framework

from npquant.testing.oracles import COMPARISONS
from npquant.testing.tell_apart import add_grid_cases, profile_differences, rivals, tell_apart

BY_ID = {c.id: c for c in COMPARISONS}


def test_rivals_are_the_other_profiles_of_the_framework():
    assert "tflite" not in rivals("tflite")
    assert {"tflite-optimized", "tflite-xnnpack"} <= set(rivals("tflite"))
    assert not any(r.startswith(("onnxruntime", "pytorch", "pow2")) for r in rivals("tflite"))
    assert rivals("pytorch-fbgemm") == sorted(rivals("pytorch-fbgemm"))


def test_profile_differences_name_the_rule_fields():
    assert profile_differences("tflite", "tflite") == []
    differ = profile_differences("tflite", "tflite-optimized")
    assert "add_inputs" in differ and "conv" in differ
    assert "name" not in differ and "version" not in differ
    assert set(differ) == set(profile_differences("tflite-optimized", "tflite"))


@given(add_grid_cases(np.uint8))
@settings(max_examples=3, deadline=None)
def test_add_grid_cases_hold_every_pair_of_values(case):
    pairs = case.x.astype(np.int32) * 256 + case.b.astype(np.int32)
    assert case.x.dtype == np.uint8 and np.unique(pairs).size == 256 * 256


@pytest.mark.oracle
@pytest.mark.parametrize("row, rival", [
    ("tflite-reference-ADD", "tflite-optimized"),
    ("tflite-optimized-ADD", "tflite"),
    ("tflite-xnnpack-QUANTIZE", "tflite"),
    ("onnxruntime-cpu-QLinearAdd int8", "onnxruntime-aarch64"),
    ("pytorch-fbgemm-conv2d", "pytorch-qnnpack"),
])
def test_a_case_set_tells_the_profiles_apart(row, rival):
    cmp = BY_ID[row]
    require_framework(cmp)
    t = tell_apart(cmp, draws=200, grid_draws=3000, keep=2, against=[rival])[rival]
    assert t.found > 0, (f"no case in {t.draws} draws on which {cmp.profile} and {rival} "
                         f"differ on {row}")
    assert t.sides_with_profile == t.found - t.declined > 0, (
        f"{row}: of {t.found} cases on which {cmp.profile} and {rival} differ, the framework "
        f"computed {t.sides_with_profile} as {cmp.profile} and {t.sides_with_rival} as {rival}")
