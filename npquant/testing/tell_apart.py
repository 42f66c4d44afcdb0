"""Cases that tell profiles apart: a row of the oracle table agreeing with its profile says
little unless the same kind of case would have caught the other profiles of its framework.

For a comparison (one op on one framework kernel path, claimed by profile ``P``) and each
*rival* — every other profile of the same framework (``rivals``: the same name before the first
``-``: ``tflite``, ``tflite-optimized``, ``tflite-xnnpack``, ...) — ``tell_apart`` looks for cases
on which npquant under ``P`` and under the rival give different integers, then runs the
framework on them:

1. search (npquant only, cheap): up to ``draws`` hypothesis cases of the row's strategy, plus,
   for element-wise ADD, cases that hold every pair of input values at once (``add_grid_cases``:
   the two profiles' ADD rules may differ on a few value pairs of a scale triple, which random
   tensors of a few dozen elements rarely hold); keep up to ``keep`` cases per rival on which
   the two differ;
2. confirm (the framework): run the framework on the kept cases and count those where it equals
   ``P`` (told apart in ``P``'s favour) and those where it equals the rival.

So for every pair of profiles that differ on an op, the row gives a case set on which they
differ and says which one the framework sides with; a rival never found different computes the
op as ``P`` does on those draws. ``profile_differences`` names the rule fields in which two
profiles differ, so a pair that differs but that no row tells apart is visible
(``tools/fidelity.py --tell-apart``; docs/fidelity.md, "Profiles told apart").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from npquant.profiles import PROFILES
from npquant.testing.oracles import (
    ACT,
    Case,
    Comparison,
    Declined,
    npquant_under,
    run_cases,
)
from npquant.testing.strategies import scales, zero_points

_NOT_RULES = ("name", "version", "description")


def family(profile: str) -> str:
    """The framework a profile belongs to: its name before the first ``-``."""
    return profile.split("-", 1)[0]


def rivals(profile: str) -> list[str]:
    """The other profiles of ``profile``'s framework, sorted."""
    return [p for p in sorted(PROFILES) if p != profile and family(p) == family(profile)]


def profile_differences(a: str, b: str) -> list[str]:
    """The rule fields in which profiles ``a`` and ``b`` differ (empty: the same integers)."""
    pa, pb = PROFILES[a], PROFILES[b]
    return [f.name for f in dataclasses.fields(pa)
            if f.name not in _NOT_RULES and getattr(pa, f.name) != getattr(pb, f.name)]


def _grid(dtype) -> tuple[np.ndarray, np.ndarray]:
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1).astype(dtype)
    return (np.repeat(values, values.size).reshape(values.size, values.size),
            np.tile(values, values.size).reshape(values.size, values.size))


_GRIDS = {np.dtype(t): _grid(t) for t in (np.int8, np.uint8)}


@st.composite
def add_grid_cases(draw, dtype=np.int8) -> Case:
    """ADD of every pair of input values at once (a 256 x 256 tensor of each input's values
    against the other's), random float32 scales (the output's 1/8..8 times the larger input's)
    and zero points over the whole range. TFLite's reference and optimized ADD, for one, differ
    on one value pair in roughly one scale triple of 250 (their inputs are rescaled at 2^20
    times the output's resolution, so an input rounding moves the output only at a boundary)."""
    signed = np.iinfo(dtype).min < 0
    za, zb, zy = (draw(zero_points(bits=8, signed=signed)) for _ in range(3))
    sa = float(draw(scales(min_exponent=-20, max_exponent=2)))
    sb = sa * 2.0 ** draw(st.floats(-6, 6))
    sy = max(sa, sb) * 2.0 ** draw(st.floats(-3, 3))
    sa, sb, sy = (float(np.float32(v)) for v in (sa, sb, sy))
    a, b = _GRIDS[np.dtype(dtype)]
    act = draw(st.sampled_from(list(ACT)))
    return Case(kind="add", x=a, x_scale=sa, x_zp=za, b=b, b_scale=sb, b_zp=zb, y_scale=sy,
                y_zp=zy, activation=act)


def _is_add(cmp: Comparison) -> bool:
    return cmp.op.startswith(("ADD", "QLinearAdd", "add"))


@dataclass
class TellApart:
    """One row against one rival profile.

    ``draws``: cases searched; ``found``: cases kept on which npquant under the row's profile
    and under the rival differ; of those run on the framework, ``sides_with_profile`` equal the
    row's profile and ``sides_with_rival`` the rival; ``declined``: cases the framework declined
    (XNNPACK); ``refused``: draws npquant refused under the rival (an error); ``first``: the
    first case told apart in the profile's favour.
    """

    draws: int = 0
    found: int = 0
    sides_with_profile: int = 0
    sides_with_rival: int = 0
    declined: int = 0
    refused: int = 0
    first: str = ""


class _Enough(Exception):
    """Every rival has ``keep`` cases: stop drawing."""


def tell_apart(cmp: Comparison, *, draws: int = 2000, grid_draws: int = 4000, keep: int = 10,
               seed: int = 0, against: list[str] | None = None) -> dict[str, TellApart]:
    """``{rival: TellApart}`` for each rival of ``cmp.profile`` (or each profile of
    ``against``): search ``draws`` cases of the row's strategy (and, for element-wise ADD,
    ``grid_draws`` of ``add_grid_cases``), then confirm on the framework (module docstring)."""
    others = rivals(cmp.profile) if against is None else list(against)
    sides = {r: npquant_under(cmp, r) for r in others}
    out = {r: TellApart() for r in others}
    kept: dict[str, list[tuple[Case, np.ndarray, np.ndarray]]] = {r: [] for r in others}

    def visit(case: Case) -> None:
        mine = None
        for r, side in sides.items():
            if len(kept[r]) >= keep:
                continue
            if mine is None:
                try:
                    mine = np.asarray(cmp.run_npquant(case))
                except (ValueError, TypeError):  # outside what the row's profile takes
                    return
            out[r].draws += 1
            try:
                theirs = np.asarray(side(case))
            except (ValueError, TypeError):
                out[r].refused += 1
                continue
            if theirs.shape != mine.shape or not np.array_equal(theirs, mine):
                kept[r].append((case, mine, theirs))
        if all(len(v) >= keep for v in kept.values()):
            raise _Enough

    strategies = [(cmp.cases(), draws)]
    if _is_add(cmp) and grid_draws:
        dtype = np.uint8 if "uint8" in cmp.op or "quint8" in cmp.op else np.int8
        strategies.append((add_grid_cases(dtype), grid_draws))
    for strategy, n in strategies:
        try:
            run_cases(strategy, n, seed, visit)
        except _Enough:
            break
    want_of: dict[int, np.ndarray | None] = {}
    for r, cases in kept.items():
        out[r].found = len(cases)
        for case, mine, theirs in cases:
            if id(case) not in want_of:
                try:
                    want_of[id(case)] = np.asarray(cmp.run_framework(case))
                except Declined:
                    want_of[id(case)] = None
            want = want_of[id(case)]
            if want is None:
                out[r].declined += 1
            elif mine.shape == want.shape and np.array_equal(mine, want):
                out[r].sides_with_profile += 1
                out[r].first = out[r].first or repr(case)
            elif theirs.shape == want.shape and np.array_equal(theirs, want):
                out[r].sides_with_rival += 1
    return out
