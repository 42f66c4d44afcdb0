"""npquant.testing.cpu: which oneDNN int8 kernel family a CPU and a cap select."""

from __future__ import annotations

import pytest

from npquant.testing.cpu import FLAGS, cpu_flags, has_vnni, onednn_int8_isa, onednn_sums_exactly

ZEN4 = frozenset({"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                  "avx512_bf16"})
SAPPHIRE_RAPIDS = ZEN4 | {"avx_vnni", "amx_int8", "amx_tile", "amx_bf16"}
HASWELL = frozenset({"avx", "avx2", "fma"})


@pytest.mark.parametrize("flags, cap, isa", [
    (SAPPHIRE_RAPIDS, "", "avx512_core_amx"),
    (SAPPHIRE_RAPIDS, "AVX512_CORE_VNNI", "avx512_core_vnni"),
    (SAPPHIRE_RAPIDS, "avx512_core", "avx512_core"),
    (SAPPHIRE_RAPIDS, "AVX2_VNNI", "avx2_vnni"),
    (SAPPHIRE_RAPIDS, "AVX2", "avx2"),
    (ZEN4, "", "avx512_core_vnni"),
    (ZEN4, "AVX2_VNNI", "avx2"),  # no AVX-VNNI: oneDNN falls back to its AVX2 kernels
    (ZEN4, "AVX512_CORE_AMX", "avx512_core_vnni"),
    (HASWELL, "", "avx2"),
    (frozenset({"avx"}), "", "older"),
], ids=["spr", "spr-vnni", "spr-avx512", "spr-avx2vnni", "spr-avx2", "zen4", "zen4-avx2vnni",
        "zen4-amx-cap", "haswell", "sandy"])
def test_onednn_family(flags, cap, isa):
    assert onednn_int8_isa(flags, cap) == isa


def test_exact_sums_and_vnni():
    assert onednn_sums_exactly("avx512_core_vnni") and not onednn_sums_exactly("avx2")
    assert has_vnni(ZEN4) and has_vnni(frozenset({"avx_vnni"})) and not has_vnni(HASWELL)


def test_unknown_cap_is_an_error():
    with pytest.raises(ValueError, match="ONEDNN_MAX_CPU_ISA='AVX3'"):
        onednn_int8_isa(ZEN4, "AVX3")


def test_host_flags_are_known_names():
    assert cpu_flags() <= set(FLAGS)
    onednn_int8_isa(cpu_flags(), "")  # this machine maps to a family (or "older")
