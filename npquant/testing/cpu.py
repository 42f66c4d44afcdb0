"""Which integer kernel paths this CPU gives the frameworks, read once with cpuid.

Framework results depend on the CPU where a kernel multiplies u8 x s8:

* with VNNI (``vpdpbusd``: AVX-512 VNNI or AVX-VNNI) every product is summed exactly in int32;
* without it (AVX2 / AVX-512 without VNNI) the kernel uses ``vpmaddubsw``, which adds each adjacent
  pair of products and saturates the pair to int16 before widening, so a pair such as
  ``255 * 127 + 255 * 127 = 64770`` becomes 32767;
* with AMX (``amx_int8``) oneDNN runs tile kernels again with other orders and steps.

oneDNN (PyTorch's ``x86`` engine) picks its kernel by the ISA and honours the environment variable
``ONEDNN_MAX_CPU_ISA`` as a cap; fbgemm and ONNX Runtime's MLAS do not read it. Features come from
cpuid through llvmlite (as numba sees them), never from ``/proc/cpuinfo``: under qemu-user that file
shows the host's flags while cpuid shows the emulated CPU.
"""

from __future__ import annotations

import functools
import os

# llvmlite's feature names -> the Linux /proc/cpuinfo names people know them by.
_LLVM_NAMES = {"avx": "avx", "avx2": "avx2", "fma": "fma", "avx512f": "avx512f",
               "avx512bw": "avx512bw", "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni",
               "avxvnni": "avx_vnni", "avx512bf16": "avx512_bf16", "amx-int8": "amx_int8",
               "amx-tile": "amx_tile", "amx-bf16": "amx_bf16"}
FLAGS = tuple(_LLVM_NAMES.values())

# oneDNN's int8 kernel families, weakest first, and the ONEDNN_MAX_CPU_ISA caps that allow each.
ONEDNN_ISAS = ("avx2", "avx2_vnni", "avx512_core", "avx512_core_vnni", "avx512_core_amx")
_CAP_LEVEL = {"SSE41": -1, "AVX": -1, "AVX2": 0, "AVX2_VNNI": 1, "AVX2_VNNI_2": 1,
              "AVX512_CORE": 2, "AVX512_CORE_VNNI": 3, "AVX512_CORE_BF16": 3,
              "AVX10_1_512": 3, "AVX512_CORE_FP16": 3, "AVX10_1_512_AMX": 4,
              "AVX512_CORE_AMX": 4, "AVX10_1_512_AMX_FP16": 4, "AVX512_CORE_AMX_FP16": 4,
              "AVX10_2_512": 3, "AVX10_2_512_AMX_2": 4, "ALL": 4, "DEFAULT": 4, "": 4}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The SIMD flags of ``FLAGS`` this CPU has (cpuid via llvmlite), in /proc/cpuinfo names."""
    import llvmlite.binding as llvm

    feats = llvm.get_host_cpu_features()
    return frozenset(name for key, name in _LLVM_NAMES.items() if feats.get(key, False))


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    """True when u8 x s8 products can be summed exactly (AVX-512 VNNI or AVX-VNNI): the path of
    fbgemm and ONNX Runtime MLAS, which ignore ``ONEDNN_MAX_CPU_ISA``."""
    f = cpu_flags() if flags is None else flags
    return bool({"avx512_vnni", "avx_vnni"} & f)


def onednn_int8_isa(flags: frozenset[str] | None = None, cap: str | None = None) -> str:
    """The int8 kernel family oneDNN runs here: one of ``ONEDNN_ISAS``.

    The best family the CPU has (``amx_int8`` -> ``avx512_core_amx``; ``avx512_vnni`` ->
    ``avx512_core_vnni``; ``avx_vnni`` -> ``avx2_vnni``; ``avx512bw`` -> ``avx512_core``; else
    ``avx2``) that ``cap`` (default: the ``ONEDNN_MAX_CPU_ISA`` environment variable) allows. A cap
    the CPU lacks falls through to the next family it has, as oneDNN does: ``AVX2_VNNI`` on a CPU
    with AVX-512 VNNI but no AVX-VNNI runs the ``avx2`` kernels. An unknown cap is a ValueError.
    """
    f = cpu_flags() if flags is None else flags
    raw = os.environ.get("ONEDNN_MAX_CPU_ISA", "") if cap is None else cap
    key = raw.strip().upper()
    if key not in _CAP_LEVEL:
        raise ValueError(f"ONEDNN_MAX_CPU_ISA={raw!r} is not a oneDNN ISA name this helper knows "
                         f"({', '.join(k for k in _CAP_LEVEL if k)})")
    level = _CAP_LEVEL[key]
    has = {"avx512_core_amx": "amx_int8" in f and "avx512_vnni" in f,
           "avx512_core_vnni": "avx512_vnni" in f and "avx512bw" in f,
           "avx2_vnni": "avx_vnni" in f,
           "avx512_core": "avx512bw" in f,
           "avx2": "avx2" in f}
    for isa in reversed(ONEDNN_ISAS):
        if ONEDNN_ISAS.index(isa) <= level and has[isa]:
            return isa
    return "older"


def onednn_sums_exactly(isa: str) -> bool:
    """True for the oneDNN families whose u8 x s8 convolution sums are exact (VNNI, AMX)."""
    return isa in ("avx2_vnni", "avx512_core_vnni", "avx512_core_amx")
