"""Measure npquant against every framework kernel path and write docs/fidelity.md.

Runs each comparison of npquant/testing/oracles.py (op x framework x kernel path -> profile)
on ``--cases`` hypothesis cases (seeded, reproducible) and tabulates cases run, agreement (whole
output equal bit for bit), elements that differ, max |diff| (integer steps; float32 outputs in
units in the last place), and the explanation. The CPU features and framework versions of the
run head the page, because SIMD paths (vpmaddubsw pair saturation on AVX2 without VNNI, blocks
of 8 or 64 elements) depend on them.

The CPU columns run the same rows (the same cases) with the frameworks on emulated CPUs
(tools/emulated_cpu.py; set up by tools/setup_emulation.sh): an x86 CPU with AVX2 and without
VNNI (``qemu-x86_64 -cpu Haswell``) and an aarch64 Neoverse N1 (``qemu-aarch64``; TFLite and
ONNX Runtime only), each under the profile claimed on that CPU (npquant.testing.oracles.profile_on).

    python3 tools/fidelity.py             # default 200 cases per row and CPU, about an hour
    python3 tools/fidelity.py --cases 2000 --only tflite --cpus native,aarch64

The campaign (``--results FILE.json``) measures in chunks of ``--chunk`` cases, chunk k with
hypothesis seed ``--seed + k``, until every row has ``--cases`` cases on every CPU, and stores
each chunk's tally in the JSON as soon as it is measured: a stopped run resumes where it was
(``--until HH:MM`` stops starting rows at that UTC time). The page is written from the sums
over the stored chunks; ``--no-measure`` only rewrites it from the JSON.

    nice -n 19 python3 tools/fidelity.py --results fidelity_campaign.json --cases 10000 \
        --chunk 500 --until 06:00

An emulated CPU's child process serves the whole campaign (started once: qemu translates the
frameworks' code on first use). A chunk of 100 cases of every row took, at nice 19 on a core
of its own: 51-63 s for the 44 aarch64 rows and 75-84 s for the 60 AVX2 rows (108 s and 150-300
s before the messages to the child lost their .npz wrapping, tools/emulated_cpu.py); natively
48-310 s for the 59 rows beside other work on 2 cores.

The columns can be measured side by side (one process per CPU, each with its own copy of the
results file) and joined with ``--merge``:

    python3 tools/fidelity.py --results docs/results/fidelity_campaign.json --no-measure \
        --cases 10000 --chunk 100 --merge avx2.json aarch64.json

docs/results/fidelity_campaign.json is the campaign so far (resume it with ``--results
docs/results/fidelity_campaign.json``; its native chunks only on the CPU it names).

``--tell-apart`` first measures, natively and on the emulated CPUs of ``--cpus``, which cases
tell each row's profile from the other profiles of its framework (npquant.testing.tell_apart:
search npquant-only for cases where the two differ, run the framework on them) into
docs/results/tell_apart.json; the page renders the
last such run as "Profiles told apart". With ``--results F --no-measure`` it measures only
that and rewrites the page from F:

    python3 tools/fidelity.py --tell-apart --results docs/results/fidelity_campaign.json \
        --no-measure --cases 10000 --chunk 100
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]  # this checkout, and emulated_cpu beside it

from npquant.testing.oracles import (  # noqa: E402
    COMPARISONS,
    CPU_UNMODELLED,
    REQUIRES,
    Tally,
    measure,
    on_cpu,
)

# The emulated CPU columns: (heading, how the frameworks run there).
EMULATED = {"avx2": ("AVX2 x86", "`qemu-x86_64 -cpu Haswell` (AVX2, no AVX-512, no VNNI)"),
            "aarch64": ("aarch64", "`qemu-aarch64 -cpu neoverse-n1`, Debian arm64 python with "
                                   "the aarch64 wheels of the same framework versions")}


def cpu_features() -> tuple[str, list[str], str]:
    """(model name, SIMD flags from cpuid, the oneDNN int8 family under ONEDNN_MAX_CPU_ISA)."""
    from npquant.testing.cpu import FLAGS, cpu_flags, onednn_int8_isa

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    return model, [f for f in FLAGS if f in flags], onednn_int8_isa()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("numpy", "numba", "hypothesis", "ai_edge_litert", "onnxruntime", "onnx", "torch"):
        try:
            mod = importlib.import_module(name)
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            out[name] = "not installed"
    return out


def measure_emulated(cpu: str, rows: list, cases: int, seed: int) -> dict[str, tuple]:
    """``{row id: (comparison on cpu, tally)}`` for the rows the ``cpu`` child runs, or a
    sentence saying why the CPU could not be emulated (as the value of key "")."""
    from emulated_cpu import FRAMEWORKS, measure_on, missing

    reason = missing(cpu)
    if reason:
        return {"": reason}
    cmps = [on_cpu(cmp, cpu) for cmp, t in rows
            if t is not None and cmp.framework in FRAMEWORKS[cpu]]
    out = measure_on(cpu, cases, seed, cmps=cmps, log=lambda s: print(f"[{cpu}] {s}",
                                                                      flush=True))
    return {cmp.id: (cmp, tally) for cmp, tally, _ in out}


# ----------------------------------------------------------------------------- the campaign
TALLY_FIELDS = ("cases", "agree", "elements", "elements_differ", "max_abs_diff", "declined",
                "first_failure")


def merge_tallies(tallies: list[Tally]) -> Tally:
    """One tally of several chunks: counts summed, the largest difference, the first failure."""
    out = Tally()
    for t in tallies:
        for f in ("cases", "agree", "elements", "elements_differ", "declined"):
            setattr(out, f, getattr(out, f) + getattr(t, f))
        out.max_abs_diff = max(out.max_abs_diff, t.max_abs_diff)
        out.first_failure = out.first_failure or t.first_failure
    return out


class Campaign:
    """The chunks measured so far, in a JSON file: ``{"versions": ..., "native_host": ...,
    "rows": {"<cpu>|<row id>": {"<seed>": tally}}}``, rewritten atomically after every chunk of
    every row.

    ``versions`` are the frameworks' and npquant's dependencies' versions, ``native_host`` the
    native CPU (model, SIMD flags, oneDNN family) the ``native`` chunks were measured on. A
    campaign resumed with other versions, or measuring native chunks on another CPU, would sum
    tallies of different kernels, so it is refused (start another results file); the emulated
    CPUs are the same on every host, so their chunks may be added on any machine. npquant's own
    rules are not keyed: a change of what npquant computes for a row, or of the cases a row
    draws, must delete that row's chunks (``"<cpu>|<row id>"``) from the file."""

    def __init__(self, path: str | Path, versions: dict | None = None,
                 native_host: dict | None = None) -> None:
        self.path = Path(path)
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {
            "format": "npquant-fidelity-campaign", "format_version": 1, "rows": {}}
        for key, here in (("versions", versions), ("native_host", native_host)):
            if here is None:
                continue
            stored = self.data.setdefault(key, here)
            if stored != here:
                diff = sorted(k for k in set(stored) | set(here) if stored.get(k) != here.get(k))
                raise SystemExit(
                    f"{self.path} was measured with other {key.replace('_', ' ')} (differs in "
                    f"{', '.join(diff)}: stored {[stored.get(k) for k in diff]}, here "
                    f"{[here.get(k) for k in diff]}); use a new --results file")

    def chunks(self, cpu: str, row: str) -> dict[str, Tally]:
        return {seed: Tally(**d) for seed, d in
                self.data["rows"].get(f"{cpu}|{row}", {}).items()}

    def add(self, cpu: str, row: str, seed: int, tally: Tally) -> None:
        self.data["rows"].setdefault(f"{cpu}|{row}", {})[str(seed)] = {
            f: getattr(tally, f) for f in TALLY_FIELDS}
        self._save()

    def _save(self) -> None:
        """Write the JSON whole, then rename it over the file: a killed run leaves either."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)

    def merge(self, other: Campaign) -> int:
        """Add the chunks of ``other`` (another results file of the same campaign, e.g. one
        CPU's column measured by a second process or machine) that this file lacks; returns how
        many. Refused (SystemExit): other framework versions, native chunks of another native
        CPU, and a chunk stored in both with a different tally (the same seed draws the same
        cases, so the same kernels give the same tally)."""
        for key in ("versions", "native_host"):
            mine, theirs = self.data.get(key), other.data.get(key)
            if key == "native_host" and not any(k.startswith("native|")
                                                for k in other.data["rows"]):
                continue  # no native chunks to merge: the native CPU does not matter
            if mine is not None and theirs is not None and mine != theirs:
                raise SystemExit(f"{other.path}: other {key.replace('_', ' ')} than "
                                 f"{self.path} ({theirs} vs {mine}); not merged")
            if mine is None and theirs is not None:
                self.data[key] = theirs
        added = 0
        for key, chunks in sorted(other.data["rows"].items()):
            stored = self.data["rows"].setdefault(key, {})
            for seed, tally in sorted(chunks.items()):
                if seed not in stored:
                    stored[seed] = tally
                    added += 1
                elif stored[seed] != tally:
                    raise SystemExit(f"{other.path}: chunk {seed} of {key} differs from "
                                     f"{self.path}'s ({tally} vs {stored[seed]}); not merged")
        self._save()
        return added

    def total(self, cpu: str, row: str) -> Tally | None:
        chunks = self.chunks(cpu, row)
        return merge_tallies(list(chunks.values())) if chunks else None


def _past(until: str | None) -> bool:
    """True once the UTC time of day ``HH:MM`` has come (never without ``until``)."""
    if not until:
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    hh, mm = (int(v) for v in until.split(":"))
    return (now.hour, now.minute) >= (hh, mm)


def run_campaign(camp: Campaign, cmps: list, cpus: list[str], cases: int, chunk: int,
                 seed: int, until: str | None) -> None:
    """Measure chunk after chunk (chunk k: ``chunk`` cases, seed ``seed + k``) for every row on
    every CPU until each has ``cases`` cases or ``until`` comes; stored chunks are skipped.

    An emulated CPU's child process starts once and serves every chunk: under qemu the
    frameworks' code is translated on its first run, which a fresh child per chunk paid again
    for every row (most of an emulated chunk's time)."""
    children: dict = {}
    with contextlib.ExitStack() as keep:
        for k in range(-(-cases // chunk)):
            if not _campaign_chunk(camp, cmps, cpus, chunk, seed + k, until, children, keep):
                return


def _campaign_chunk(camp: Campaign, cmps: list, cpus: list[str], chunk: int, s: int,
                    until: str | None, children: dict, keep: contextlib.ExitStack) -> bool:
    """Chunk ``s`` of every row on every CPU (``run_campaign``); False once ``until`` came."""
    from emulated_cpu import FRAMEWORKS, EmulatedFrameworks, frameworks_on, missing

    for cpu in cpus:
        if cpu != "native" and missing(cpu):
            continue
        todo = [c for c in cmps if str(s) not in camp.chunks(cpu, c.id)
                and (cpu == "native" or c.framework in FRAMEWORKS[cpu])]
        if not todo:
            continue
        with contextlib.ExitStack() as stack:
            if cpu != "native":
                if cpu not in children:
                    children[cpu] = keep.enter_context(EmulatedFrameworks(cpu))
                stack.enter_context(frameworks_on(children[cpu]))
            for cmp in todo:
                if _past(until):
                    return False
                t0 = time.time()
                tally = measure(on_cpu(cmp, cpu) if cpu != "native" else cmp, chunk, seed=s)
                camp.add(cpu, cmp.id, s, tally)
                print(f"[{cpu}] seed {s} {cmp.id:48s} {tally.agree:>5}/{tally.cases:<5} "
                      f"{time.time() - t0:6.1f} s", flush=True)
    return True


def _cpu_cell(cmp, measured: dict, with_cases: bool = False) -> str:
    if "" in measured:
        return "not run"
    if cmp.id not in measured:
        return "—"
    other, t = measured[cmp.id]
    text = f"{t.percent:.1f}%" + (f" of {t.cases}" if with_cases else "")
    if t.declined:
        text += f" ({t.declined} declined)"
    if other.profile != cmp.profile:
        text += f" `{other.profile}`"
    if cmp.exact and not other.exact:
        text += " (not modelled)"
    return text


def _fmt_diff(t) -> str:
    if t.agree == t.cases:
        return "0"
    return f"{t.max_abs_diff:g}"


def _measure_all(cmps: list, installed: set, cpus: list[str], cases: int, emulated_cases: int,
                 seed: int) -> tuple[list, dict]:
    """One run: every row natively (``(cmp, None)`` where the framework is not installed),
    then on each emulated CPU."""
    rows = []
    for cmp in cmps:
        if cmp.id not in installed:
            rows.append((cmp, None))
            continue
        t0 = time.time()
        tally = measure(cmp, cases, seed=seed)
        rows.append((cmp, tally))
        print(f"{cmp.id:48s} {tally.agree:>6}/{tally.cases:<6} {time.time() - t0:6.1f}s",
              flush=True)
    measured = {}
    for cpu in cpus[1:]:
        t0 = time.time()
        measured[cpu] = measure_emulated(cpu, rows, emulated_cases, seed)
        print(f"[{cpu}] {time.time() - t0:.0f} s", flush=True)
    return rows, measured


TELL_APART = ROOT / "docs" / "results" / "tell_apart.json"


def measure_tell_apart(cmps: list, cpus: list[str], draws: int, keep: int, seed: int,
                       vers: dict, host: dict) -> dict:
    """``tell_apart`` of every row natively and on each emulated CPU of ``cpus`` (there under
    the profile claimed on that CPU; npquant.testing.tell_apart), as the JSON that
    ``tell_apart_section`` renders."""
    from dataclasses import asdict

    from emulated_cpu import FRAMEWORKS, EmulatedFrameworks, frameworks_on, missing

    from npquant.testing.tell_apart import tell_apart

    rows, start = {}, time.time()

    def measure_rows(cpu: str, todo: list) -> None:
        for cmp in todo:
            t0 = time.time()
            found = tell_apart(cmp, draws=draws, keep=keep, seed=seed)
            rows[f"{cpu}|{cmp.id}"] = {
                "cpu": cpu, "op": cmp.op, "path": cmp.path, "framework": cmp.framework,
                "profile": cmp.profile, "rivals": {r: asdict(t) for r, t in found.items()}}
            print(f"[tell apart, {cpu}] {cmp.id:48s} {time.time() - t0:6.1f} s " + ", ".join(
                f"{r} {t.sides_with_profile}/{t.found}" for r, t in found.items()), flush=True)

    if "native" in cpus:
        measure_rows("native", cmps)
    for cpu in (c for c in cpus if c != "native" and not missing(c)):
        with EmulatedFrameworks(cpu) as child, frameworks_on(child):
            measure_rows(cpu, [on_cpu(c, cpu) for c in cmps if c.framework in FRAMEWORKS[cpu]])
    return {"format": "npquant-tell-apart", "format_version": 1, "draws": draws, "keep": keep,
            "seed": seed, "seconds": round(time.time() - start), "versions": vers,
            "native_host": host, "cpus": cpus, "rows": rows}


def tell_apart_section(data: dict) -> list[str]:
    """docs/fidelity.md's "Profiles told apart": one line per two profiles of a framework that
    differ in a rule, with the rows whose cases tell them apart."""
    from npquant.profiles import PROFILES
    from npquant.testing.tell_apart import family, profile_differences

    evidence: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for d in data["rows"].values():
        for rival, t in d["rivals"].items():
            if rival not in PROFILES or not t["found"]:
                continue
            pair = tuple(sorted((d["profile"], rival)))
            where = "" if d.get("cpu", "native") == "native" else f" on {EMULATED[d['cpu']][0]}"
            text = (f"{d['op']} {d['path']}{where} ({t['found']}: {t['sides_with_profile']} as "
                    f"`{d['profile']}`" + (f", {t['sides_with_rival']} as `{rival}`"
                                           if t["sides_with_rival"] else "")
                    + (f", {t['declined']} declined" if t["declined"] else "") + ")")
            evidence.setdefault(pair, []).append((t["sides_with_profile"], text))
    lines = [
        "",
        "## Profiles told apart",
        "",
        f"Generated by `python3 tools/fidelity.py --tell-apart --tell-draws {data['draws']}` "
        f"({data['seconds']} s; natively on {data['native_host']['cpu_model']}"
        + "".join(f", on the emulated {EMULATED[c][0]}" for c in data.get("cpus", [])
                  if c in EMULATED)
        + "); the page shows the last such run (docs/results/tell_apart.json), rows on an",
        "emulated CPU under the profile claimed there.",
        "A row agreeing with its profile on random cases says little if the other profiles of",
        "the framework would have agreed too. For each row and each other profile of its",
        "framework, `npquant.testing.tell_apart` searches the row's cases (up to "
        f"{data['draws']} draws; for",
        "element-wise ADD also cases holding every pair of input values) for ones on which",
        f"npquant gives different integers under the two profiles, keeps up to {data['keep']}, "
        "and runs",
        "the framework on them. Each cell lists rows as *op path (cases found: how many the",
        "framework computed as the row's profile, as the other)*, most telling first.",
        "",
        "| profiles | rules that differ | told apart by |",
        "|---|---|---|",
    ]
    names = sorted(PROFILES)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if family(a) != family(b):
                continue
            differ = profile_differences(a, b)
            if not differ:
                continue
            found = sorted(evidence.get((a, b), []), key=lambda e: -e[0])
            cell = "; ".join(text for _, text in found[:4]) + (
                f"; and {len(found) - 4} more rows" if len(found) > 4 else "")
            lines.append(f"| `{a}` / `{b}` | {', '.join(differ)} | "
                         f"{cell or '**not told apart by a row measured here**'} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200, help="hypothesis cases per row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="only rows whose id contains this text")
    ap.add_argument("--out", default=str(ROOT / "docs" / "fidelity.md"))
    ap.add_argument("--cpus", default="native,avx2,aarch64",
                    help="comma-separated: native and the emulated CPUs avx2, aarch64")
    ap.add_argument("--emulated-cases", type=int, default=None,
                    help="cases per row on the emulated CPUs (default: --cases)")
    ap.add_argument("--results", default=None,
                    help="campaign: a JSON file of measured chunks, resumed and extended")
    ap.add_argument("--chunk", type=int, default=500, help="campaign: cases per chunk")
    ap.add_argument("--until", default=None, help="campaign: stop starting rows at HH:MM UTC")
    ap.add_argument("--no-measure", action="store_true",
                    help="campaign: only write the page from the JSON")
    ap.add_argument("--merge", nargs="+", default=[], metavar="FILE",
                    help="campaign: first add the chunks of these results files (same "
                         "versions; e.g. one CPU column measured by another process)")
    ap.add_argument("--tell-apart", action="store_true",
                    help="first measure which cases tell each row's profile from the other "
                         "profiles of its framework, natively and on the emulated CPUs of "
                         "--cpus (docs/results/tell_apart.json), then go on as without it")
    ap.add_argument("--tell-draws", type=int, default=2000,
                    help="--tell-apart: cases searched per row")
    args = ap.parse_args(argv)
    if args.cases < 1:
        ap.error(f"--cases must be >= 1, got {args.cases}")
    if args.merge and not args.results:
        ap.error("--merge adds to a campaign: give --results")
    cpus = [c for c in args.cpus.split(",") if c]
    bad_cpus = [c for c in cpus if c not in ("native", *EMULATED)]
    if bad_cpus or not cpus or ("native" not in cpus and not args.results):
        ap.error(f"--cpus must include native (except in a --results campaign) and only "
                 f"native, avx2, aarch64; got {args.cpus}")
    emulated_cases = args.emulated_cases or args.cases
    warnings.simplefilter("ignore")
    model, flags, onednn = cpu_features()
    vers = versions()
    start = time.time()
    installed = {cmp.id for cmp in COMPARISONS
                 if all(vers.get(m) != "not installed" for m in REQUIRES[cmp.framework])}
    cmps = [c for c in COMPARISONS if not args.only or args.only in c.id]
    if args.tell_apart:
        TELL_APART.write_text(json.dumps(measure_tell_apart(
            [c for c in cmps if c.id in installed], cpus, args.tell_draws, 10, args.seed, vers,
            {"cpu_model": model, "simd_flags": sorted(flags), "onednn": onednn}),
            indent=1, sort_keys=True) + "\n")
    if args.results:
        measuring = not args.no_measure
        camp = Campaign(args.results, versions=vers if measuring else None,
                        native_host={"cpu_model": model, "simd_flags": sorted(flags),
                                     "onednn": onednn} if measuring and "native" in cpus
                        else None)
        for other in args.merge:
            print(f"merged {camp.merge(Campaign(other))} chunks of {other}")
        if not args.no_measure:
            run_campaign(camp, [c for c in cmps if c.id in installed], cpus, args.cases,
                         args.chunk, args.seed, args.until)
        rows = [(cmp, camp.total("native", cmp.id)) for cmp in cmps]
        # the page shows what is stored: every emulated CPU, the native CPU it was measured on
        measured = {cpu: {cmp.id: (on_cpu(cmp, cpu), t) for cmp in cmps
                          if (t := camp.total(cpu, cmp.id)) is not None} for cpu in EMULATED}
        host = camp.data.get("native_host")
        if host:
            model, flags, onednn = host["cpu_model"], host["simd_flags"], host["onednn"]
        counts = {t.cases for m in measured.values() for _, t in m.values()}
        emulated_cases = (str(max(counts, default=0)) if len(counts) <= 1
                          else f"{min(counts)}-{max(counts)}")
    else:
        rows, measured = _measure_all(cmps, installed, cpus, args.cases, emulated_cases,
                                      args.seed)
    command = f"python3 tools/fidelity.py --cases {args.cases} --seed {args.seed}"
    if args.results:
        command += f" --results {Path(args.results).name} --chunk {args.chunk}"
    if args.emulated_cases:
        command += f" --emulated-cases {args.emulated_cases}"
    if args.cpus != "native,avx2,aarch64":
        command += f" --cpus {args.cpus}"
    lines = [
        "# Fidelity: npquant against the frameworks, kernel path by kernel path",
        "",
        f"Generated by `{command}` ({time.time() - start:.0f} s); do not edit by hand.",
        "Each row runs npquant's own kernels (`npquant.integer`, `npquant.qparams`) under the",
        "profile named and the framework's kernel path through `npquant.interop` on the same",
        "hypothesis cases (npquant/testing/oracles.py: half with dyadic scales, where ties are",
        "frequent; half with float32 scales over many octaves and values over the whole range;",
        "zero points over the whole range; per-channel weights where the op has them).",
        "*Agree* counts cases whose whole output is equal bit for bit; *max |diff|* is in output",
        "steps (float32 outputs: units in the last place). Rows marked exact are asserted",
        "bit-exact by `tests/oracles/test_npquant_vs_*.py`; the others are pinned measurements",
        "(`test_npquant_measured_disagreements.py`). Rules: docs/profiles.md,",
        "docs/framework_facts.md.",
        "Whole models (exported from npquant and built independently, per layer, 100 inputs",
        "each) are measured in docs/import_export.md (TFLite: every layer equal under reference,",
        "optimized and XNNPACK) and docs/onnx_import_export.md (ORT QOperator: every layer",
        "equal; QDQ int8 with intermediate tensors observed: 1 of 156,800 depthwise elements",
        "off by one, pinned there).",
        "",
        f"- **CPU**: {model}; SIMD flags (cpuid): {', '.join(flags) or 'none found'}; oneDNN",
        f"  int8 kernels: `{onednn}` (ONEDNN_MAX_CPU_ISA="
        f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}).",
        "- **Which rows depend on the CPU** (the CPU columns measure them): ORT (MLAS)",
        "  uint8 QLinearConv / QLinearMatMul / MatMulInteger and PyTorch fbgemm conv / linear",
        "  sum u8 x s8 exactly with VNNI and in int16-saturated pairs (`vpmaddubsw`) on AVX2",
        "  (the `-avx2` profiles; ORT's convs with one input and one output channel per group",
        "  run MLAS's depthwise kernels, exact on every CPU, its depthwise convs with a channel",
        "  multiplier are grouped GEMMs);",
        "  the x86 engine's conv and depthwise are oneDNN's with VNNI (keyed by the oneDNN",
        "  family above, `npquant.testing.cpu.onednn_int8_isa`; on an AMX CPU the test run caps",
        "  oneDNN at AVX512_CORE_VNNI) and fbgemm's on AVX2. TFLite's optimized kernels on",
        "  aarch64 round CONV_2D / FULLY_CONNECTED once (ruy) except on GEMV shapes, shift",
        "  left last in the 3x3 depthwise kernel and fuse DEQUANTIZE's multiply-add",
        "  (`tflite-optimized-aarch64`); ORT's QLinearAdd on aarch64 is MLAS's NEON fixed",
        "  point (QNNPACK's sequence, a float32 fallback outside its ranges:",
        "  `onnxruntime-aarch64`). npquant's own VNNI fast paths are property-tested",
        "  equal to the reference kernels, so npquant's results do not depend on the CPU.",
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".",
    ]
    if measured:
        lines += [
            "- **CPU columns**: the same rows on the same cases with the frameworks on emulated",
            f"  CPUs ({emulated_cases} cases per row; tools/emulated_cpu.py, set up by",
            "  tools/setup_emulation.sh), npquant under the profile claimed on that CPU where it",
            "  differs (named in the cell); — where the framework does not run there (no aarch64",
            "  CPU build of PyTorch on the package index). "
            + "; ".join(f"{EMULATED[c][0]}: {EMULATED[c][1]}"
                        + (f" (not run: {measured[c]['']})" if "" in measured[c] else "")
                        for c in measured) + ".",
        ]
    heads = "".join(f" {EMULATED[c][0]} |" for c in measured)
    lines += [
        "",
        "| op | framework | kernel path | npquant profile | claim | cases | agree |" + heads
        + " elements differing | max \\|diff\\| | explanation |",
        "|---|---|---|---|---|---:|---:|" + "---:|" * len(measured) + "---:|---:|---|",
    ]
    for cmp, t in rows:
        claim = "exact" if cmp.exact else "measured"
        if t is None:
            why = "not installed" if cmp.id not in installed else "not measured yet"
            lines.append(f"| {cmp.op} | {cmp.framework} | {cmp.path} | `{cmp.profile}` | {claim} "
                         f"| — | {why} |" + " — |" * len(measured)
                         + f" — | — | {cmp.explanation} |")
            continue
        declined = f" ({t.declined} declined)" if t.declined else ""
        cells = "".join(f" {_cpu_cell(cmp, m, bool(args.results))} |"
                        for m in measured.values())
        lines.append(
            f"| {cmp.op} | {cmp.framework} | {cmp.path} | `{cmp.profile}` | {claim} | "
            f"{t.cases}{declined} | {t.percent:.1f}% |{cells} "
            f"{t.elements_differ}/{t.elements} | {_fmt_diff(t)} | {cmp.explanation} |")
    unmodelled = [f"{EMULATED[cpu][0]} {row}: {why}" for cpu in measured
                  for row, why in CPU_UNMODELLED.get(cpu, {}).items()]
    if unmodelled:
        lines += ["", "Not modelled on an emulated CPU (rows exact natively): "
                  + "; ".join(unmodelled) + "."]
    if TELL_APART.is_file():
        lines += tell_apart_section(json.loads(TELL_APART.read_text()))
    lines += [
        "",
        "Not in the table: TFLite AVERAGE_POOL_2D on XNNPACK (int8 is not delegated; the",
        "builtin optimized kernel runs, row above), PyTorch pools, ORT QLinearConv with uint8",
        "weights, and per-channel TFLite QUANTIZE.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    bad = [cmp.id for cmp, t in rows if t is not None and cmp.exact and t.agree != t.cases]
    bad += [f"{cmp.id} on {cpu} ({cmp.profile})" for cpu, m in measured.items()
            for cmp, t in (v for k, v in m.items() if k) if cmp.exact and t.agree != t.cases]
    if bad:
        print("rows claimed exact that disagree: " + ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
