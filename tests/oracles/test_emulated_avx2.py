"""ONNX Runtime and PyTorch fbgemm as they run on an x86 CPU without VNNI, by user-mode
emulation (``qemu-x86_64 -cpu Haswell``; slow: minutes): the ``-avx2`` profiles reproduce their
u8 x s8 linear and conv layers bit for bit, where the exact-sum profiles do not
(tools/emulated_paths.py; docs/framework_facts.md). Install qemu with tools/setup_emulation.sh."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import require

pytestmark = [pytest.mark.oracle, pytest.mark.slow]


def test_avx2_profiles_reproduce_the_frameworks_without_vnni():
    require("onnxruntime")
    require("torch")
    if shutil.which("qemu-x86_64") is None:
        pytest.skip("qemu-x86_64 is not installed (bash tools/setup_emulation.sh)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from emulated_paths import measure

    rows = measure(8, seed=1, cpu="Haswell")
    for op, (n, exact, avx2) in rows.items():
        if op == "ort-ConvInteger":  # ORT's ConvInteger sums exactly even on AVX2
            assert exact == n, rows
        else:
            assert avx2 == n, (op, rows)
    assert sum(exact for op, (n, exact, _) in rows.items() if op != "ort-ConvInteger") < \
        sum(n for op, (n, _, _) in rows.items() if op != "ort-ConvInteger"), rows
