"""Shared pytest configuration: optional frameworks are skipped on a laptop, required in CI."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from npquant.testing.cpu import cpu_flags, has_vnni, onednn_int8_isa

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def require(module_name: str):
    """Import an optional framework; skip without it, unless NPQUANT_REQUIRE_ORACLES=1 (CI)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if os.environ.get("NPQUANT_REQUIRE_ORACLES") == "1":
            pytest.fail(f"{module_name} is required in CI (NPQUANT_REQUIRE_ORACLES=1): {exc}")
        pytest.skip(f"{module_name} is not installed")


# oneDNN (PyTorch's x86 engine) picks its int8 kernels by ISA. Its AMX kernels have not been
# measured (no AMX CPU was at hand), so on an AMX CPU the test run caps oneDNN at AVX-512 VNNI,
# whose rules are measured, unless the user chose a cap; test ids name the family under test.
# This must happen before torch is imported: oneDNN reads the variable once.
if "amx_int8" in cpu_flags() and "ONEDNN_MAX_CPU_ISA" not in os.environ:
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX512_CORE_VNNI"
    ONEDNN_PINNED = True
else:
    ONEDNN_PINNED = False
ONEDNN_ISA = onednn_int8_isa()
ONEDNN_ISA_ID = ONEDNN_ISA + ("-pinned" if ONEDNN_PINNED else "")

# ONNX Runtime (MLAS) and PyTorch fbgemm multiply u8 x s8 with VNNI (vpdpbusd: exact int32
# sums) where the CPU has it, and otherwise with AVX2 vpmaddubsw, which saturates each adjacent
# pair of products to int16. The exact-accumulation claims were measured on a VNNI CPU
# (docs/fidelity.md); the pair-saturation accumulator model (AccumulatorRule(pair_saturation),
# the ``-avx2`` profiles) was checked against ORT and fbgemm under ``qemu-x86_64 -cpu Haswell``
# only (tools/emulated_cpu.py, docs/framework_facts.md), not on a real CPU without VNNI. (oneDNN's
# own pair-saturated sums are modelled: tests/oracles/oracle_refs.conv2d_acc_pair_saturated.)
EXACT_U8S8_ACCUMULATION = has_vnni()


def emulated_child(cpu: str, *modules: str):
    """Yield one child process of tools/emulated_cpu.py running the frameworks on the emulated
    ``cpu`` (for a module-scoped fixture): ``modules`` are required as by ``require``, and
    without the emulation the test skips, or fails in CI (NPQUANT_REQUIRE_ORACLES=1)."""
    for name in modules:
        require(name)
    tools = str(Path(__file__).resolve().parents[1] / "tools")
    if tools not in sys.path:  # the module the emulated tests import, not a second copy
        sys.path.insert(0, tools)
    emulated_cpu = importlib.import_module("emulated_cpu")
    reason = emulated_cpu.missing(cpu)
    if reason:
        if os.environ.get("NPQUANT_REQUIRE_ORACLES") == "1":
            pytest.fail(f"the {cpu} emulation is required in CI: {reason}")
        pytest.skip(reason)
    with emulated_cpu.EmulatedFrameworks(cpu) as proc:
        yield proc


def require_exact_u8s8_accumulation(what: str) -> None:
    """Skip ``what`` on a CPU without VNNI, where the framework's u8 x s8 sums saturate int16
    pairs (vpmaddubsw) and the exact-sum claim under test does not hold."""
    if not EXACT_U8S8_ACCUMULATION:
        pytest.skip(f"{what}: this CPU has no VNNI, so the framework accumulates u8 x s8 "
                    "through vpmaddubsw (int16 pair saturation); exactness was measured on VNNI "
                    "(the -avx2 profiles model this CPU, measured under emulation: "
                    "docs/fidelity.md)")


def write_toy_fashion_mnist(directory: Path, n_train: int, n_test: int) -> Path:
    """Write a learnable dataset in FashionMNIST's IDX format (gzipped) to ``directory``: class k
    is a bright 6x6 square at one of 10 positions, on uniform noise 0..59 (seed 0)."""
    from npquant.data import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        img = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            r, c = 3 + 12 * (k // 5), 2 + 5 * (k % 5)
            img[i, r:r + 6, c:c + 6] = 250
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", img, compress=True)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels, compress=True)
    return directory


def load_tool(filename: str):
    """The module of ``tools/<filename>`` (the tools are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "tools" / filename
    spec = importlib.util.spec_from_file_location(path.stem + "_tool", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
