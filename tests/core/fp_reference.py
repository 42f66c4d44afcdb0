"""Obviously-right reference definitions in Python ints and Fractions (arbitrary precision).

Each is written from the real-number meaning of the primitive, not from its implementation:
``round(p / q)`` with a named tie rule, evaluated exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def round_fraction(value: Fraction, ties: str) -> int:
    """Round an exact rational to an integer; ties 'up' (+inf), 'away' (from 0) or 'even'."""
    floor = math.floor(value)
    rest = value - floor
    if rest > Fraction(1, 2):
        return floor + 1
    if rest < Fraction(1, 2):
        return floor
    if ties == "up":
        return floor + 1
    if ties == "away":
        return floor + 1 if value > 0 else floor
    if ties == "even":
        return floor if floor % 2 == 0 else floor + 1
    raise ValueError(ties)


def srdhm(a: int, b: int) -> int:
    """round(a*b / 2^31), ties up, saturated to int32 (only INT32_MIN^2 saturates)."""
    return min(round_fraction(Fraction(a * b, 2**31), "up"), INT32_MAX)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """round(x / 2^exponent), ties away from zero."""
    return round_fraction(Fraction(x, 2**exponent), "away")


def rounding_shift_right(x: int, exponent: int, ties: str) -> int:
    """round(x / 2^exponent) with the tie rule."""
    return round_fraction(Fraction(x) / Fraction(2) ** exponent, ties)


def double_rounding(x: int, m0: int, shift: int, final_ties: str) -> int:
    """round_final(round_up(x 2^left m0 / 2^31) / 2^right): the two roundings, written out."""
    left, right = max(shift, 0), max(-shift, 0)
    high = srdhm(x * 2**left, m0)
    return round_fraction(Fraction(high, 2**right), final_ties)


def single_rounding(x: int, m0: int, shift: int) -> int:
    """round_up(x m0 2^shift / 2^31): one rounding of the exact product."""
    return round_fraction(Fraction(x * m0 * 2**shift, 2**31) if shift >= 0
                          else Fraction(x * m0, 2 ** (31 - shift)), "up")


def quantize_multiplier(m: float) -> tuple[int, int]:
    """(M0, shift) with M = M0 2^shift / 2^31, M0 = round_away(M 2^(31-shift)) in [2^30, 2^31]."""
    exact = Fraction(m)
    if exact == 0:
        return 0, 0
    shift = 0
    while exact / Fraction(2) ** shift >= 1:
        shift += 1
    while exact / Fraction(2) ** shift < Fraction(1, 2):
        shift -= 1
    m0 = round_fraction(exact * Fraction(2) ** (31 - shift), "away")
    if m0 == 2**31:
        m0, shift = 2**30, shift + 1
    if shift < -31:
        return 0, 0
    return m0, shift


def int32_edges() -> list[int]:
    """gemmlowp's edge set: +-2^i + d for d in -2..2, and the int32 limits +-0..2."""
    vals = set()
    for i in range(32):
        for d in range(-2, 3):
            for v in (2**i + d, -(2**i) + d):
                if INT32_MIN <= v <= INT32_MAX:
                    vals.add(v)
    for d in range(3):
        vals.update((INT32_MIN + d, INT32_MAX - d))
    vals.update((0, 1, -1))
    return sorted(vals)
