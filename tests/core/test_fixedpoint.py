"""Fixed-point primitives against exact Python-int references, on edges and hypothesis draws."""

from __future__ import annotations

import exact_ref as ref
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npquant import fixedpoint as fp

EDGES = ref.int32_edges()
int32s = st.one_of(st.integers(ref.INT32_MIN, ref.INT32_MAX), st.sampled_from(EDGES))
TIES = ["up", "away", "even"]


def assert_equal_to_reference(actual, expected, what: str) -> None:
    """np.array_equal, with the first divergence named."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if not np.array_equal(actual, expected):
        bad = np.argwhere(actual != expected)[0]
        i = tuple(int(k) for k in bad)
        raise AssertionError(f"{what}: out{list(i)}={actual[i]}, but should be {expected[i]}")


# ---- facts from gemmlowp / TFLite, typed in -------------------------------------------------

def test_srdhm_known_values():
    assert fp.saturating_rounding_doubling_high_mul(ref.INT32_MIN, ref.INT32_MIN) == ref.INT32_MAX
    assert fp.saturating_rounding_doubling_high_mul(ref.INT32_MIN, ref.INT32_MAX) == -ref.INT32_MAX
    assert fp.saturating_rounding_doubling_high_mul(2**30, 2**30) == 2**29
    # -0.5 rounds up to 0 and +0.5 up to 1: SRDHM's ties go toward +inf
    assert fp.saturating_rounding_doubling_high_mul(-1, 2**30) == 0
    assert fp.saturating_rounding_doubling_high_mul(1, 2**30) == 1


def test_rounding_divide_by_pot_known_values():
    assert fp.rounding_divide_by_pot(-5, 1) == -3
    assert fp.rounding_divide_by_pot(5, 1) == 3
    assert fp.rounding_divide_by_pot(-4, 1) == -2
    assert fp.rounding_divide_by_pot(-6, 2) == -2  # -1.5 -> -2
    assert fp.rounding_divide_by_pot(ref.INT32_MIN, 31) == -1
    assert fp.rounding_divide_by_pot(ref.INT32_MAX, 31) == 1
    assert fp.rounding_divide_by_pot(7, 0) == 7


@pytest.mark.parametrize("m, expected", [
    (0.5, (2**30, 0)),
    (1.0, (2**30, 1)),
    (0.0, (0, 0)),
    (0.25, (2**30, -1)),
    (0.75, (3 * 2**29, 0)),
    (1.0 - 2.0**-40, (2**30, 1)),  # q * 2^31 rounds to 2^31: carry into the shift
    (2.0**-33, (0, 0)),  # shift -32 < -31 flushes to zero
    (2.0**-32, (2**30, -31)),  # the smallest multiplier that survives
    (2.0**30, (2**30, 31)),
], ids=lambda v: repr(v))
def test_quantize_multiplier_known_values(m, expected):
    assert fp.quantize_multiplier(m) == expected
    assert ref.quantize_multiplier(m) == expected


def test_quantize_multiplier_single_rounding_saturates_large_shift():
    assert fp.quantize_multiplier_single_rounding(2.0**30) == (ref.INT32_MAX, 30)
    assert fp.quantize_multiplier_single_rounding(2.0**29) == (2**30, 30)


def test_double_and_single_rounding_differ_on_a_negative_tie():
    # x * M = -2.5 after SRDHM keeps -2.5 exactly: double rounding gives -3 (away), one
    # rounding with ties up gives -2.
    x, m0, shift = -5, 2**30, 0  # M = 0.5
    assert fp.multiply_by_quantized_multiplier(x, m0, shift) == -2  # SRDHM(-2.5) ties up
    assert fp.multiply_by_quantized_multiplier(-5, 2**30, -1) == -1  # SRDHM -2, /2 away: -1
    assert fp.multiply_by_quantized_multiplier(-3, 2**30, -1) == -1  # SRDHM -1, -0.5 away: -1
    assert fp.double_rounding_multiply(-3, 2**30, -1, final_ties="up") == 0
    assert fp.single_rounding_multiply(-3, 2**30, -1) == -1  # -0.75 -> -1
    assert fp.single_rounding_multiply(-2, 2**30, -1) == 0  # -0.5 ties up -> 0


# ---- exhaustive edges and hypothesis against the references ----------------------------------

def test_srdhm_on_edge_grid():
    a = np.array(EDGES, dtype=np.int64)
    grid_a, grid_b = np.meshgrid(a, a[::7])
    got = fp.saturating_rounding_doubling_high_mul(grid_a, grid_b)
    expected = [[ref.srdhm(int(x), int(y)) for x, y in zip(ra, rb, strict=True)]
                for ra, rb in zip(grid_a, grid_b, strict=True)]
    assert_equal_to_reference(got, expected, "SRDHM")


@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=50))
def test_srdhm_matches_reference(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    got = fp.saturating_rounding_doubling_high_mul(a, b)
    assert_equal_to_reference(got, [ref.srdhm(x, y) for x, y in pairs], "SRDHM")
    scalar = [fp.saturating_rounding_doubling_high_mul_scalar(x, y) for x, y in pairs]
    assert_equal_to_reference(got, scalar, "SRDHM vectorized vs scalar")


@given(int32s, st.integers(0, 31))
def test_rounding_divide_by_pot_matches_reference(x, e):
    assert fp.rounding_divide_by_pot(x, e) == ref.rounding_divide_by_pot(x, e)
    assert fp.rounding_divide_by_pot_scalar(x, e) == ref.rounding_divide_by_pot(x, e)


@pytest.mark.parametrize("ties", TIES)
@given(x=st.one_of(st.integers(-(2**61), 2**61), int32s), e=st.integers(0, 62))
def test_rounding_shift_right_matches_reference(ties, x, e):
    assert fp.rounding_shift_right(x, e, ties=ties) == ref.rounding_shift_right(x, e, ties)


@pytest.mark.parametrize("ties", TIES)
def test_rounding_shift_right_on_every_tie(ties):
    # every exact tie x = (2k + 1) 2^(e-1), both signs, for all exponents
    xs, es = [], []
    for e in range(1, 62):
        for k in (-3, -2, -1, 0, 1, 2):
            xs.append((2 * k + 1) * 2 ** (e - 1))
            es.append(e)
    got = fp.rounding_shift_right(np.array(xs), np.array(es), ties=ties)
    expected = [ref.rounding_shift_right(x, e, ties) for x, e in zip(xs, es, strict=True)]
    assert_equal_to_reference(got, expected, f"ties {ties}")


multipliers = st.one_of(st.integers(0, ref.INT32_MAX),
                        st.sampled_from([0, 1, 2**30, 2**30 + 1, ref.INT32_MAX, ref.INT32_MAX - 1]))


@pytest.mark.parametrize("final_ties", ["away", "up"])
@given(x=int32s, m0=multipliers, shift=st.integers(-31, 31))
def test_double_rounding_matches_reference(final_ties, x, m0, shift):
    if not ref.INT32_MIN <= x * 2 ** max(shift, 0) <= ref.INT32_MAX:
        with pytest.raises(ValueError, match="leaves int32"):
            fp.double_rounding_multiply(x, m0, shift, final_ties=final_ties)
        return
    got = fp.double_rounding_multiply(x, m0, shift, final_ties=final_ties)
    assert got == ref.double_rounding(x, m0, shift, final_ties)
    assert fp.double_rounding_multiply_scalar(
        x, m0, shift, fp.Ties(final_ties).code) == ref.double_rounding(x, m0, shift, final_ties)


@given(x=int32s, m0=multipliers, shift=st.integers(-31, 30))
def test_single_rounding_matches_reference(x, m0, shift):
    expected = ref.single_rounding(x, m0, shift)
    if not ref.INT32_MIN <= expected <= ref.INT32_MAX:
        with pytest.raises(ValueError, match="leaves int32"):
            fp.single_rounding_multiply(x, m0, shift)
        return
    assert fp.single_rounding_multiply(x, m0, shift) == expected


def test_requantization_edges_shift_0_and_31():
    for x in EDGES:
        for m0 in (2**30, ref.INT32_MAX):
            assert fp.multiply_by_quantized_multiplier(x, m0, 0) == ref.double_rounding(
                x, m0, 0, "away")
            assert fp.multiply_by_quantized_multiplier(x, m0, -31) == ref.double_rounding(
                x, m0, -31, "away")
            assert fp.single_rounding_multiply(x, m0, -31) == ref.single_rounding(x, m0, -31)


positive_reals = st.floats(min_value=2.0**-40, max_value=2.0**30, allow_nan=False,
                           allow_infinity=False)


@given(positive_reals)
def test_quantize_multiplier_matches_reference(m):
    m0, shift = fp.quantize_multiplier(m)
    assert (m0, shift) == ref.quantize_multiplier(m)
    if m0:
        assert 2**30 <= m0 < 2**31
        # |M0 2^shift / 2^31 - M| <= half a unit of M0
        assert abs(m0 * 2.0**shift / 2.0**31 - m) <= 2.0 ** (shift - 32) * (1 + 1e-12)


@pytest.mark.parametrize("ties", TIES)
@given(x=int32s, m=st.floats(min_value=1e-9, max_value=4.0, allow_nan=False))
def test_float32_multiply_matches_numpy_float32(ties, x, m):
    from fractions import Fraction
    product = np.float32(x) * np.float32(m)  # IEEE float32 multiply, correctly rounded
    expected = ref.round_fraction(Fraction(float(product)), ties)
    got = fp.float_multiply(x, m, precision="float32", ties=ties)
    assert int(got) == expected


@pytest.mark.parametrize("ties", TIES)
@given(x=int32s, m=st.floats(min_value=1e-9, max_value=4.0, allow_nan=False))
def test_float64_multiply_matches_reference(ties, x, m):
    from fractions import Fraction
    expected = ref.round_fraction(Fraction(float(x) * m), ties)
    assert int(fp.float_multiply(x, m, precision="float64", ties=ties)) == expected


def test_round_float_is_exact_near_one_half():
    # floor(|v| + 0.5) would give 1 here; the exact rule gives 0
    v = 0.49999999999999994
    assert fp.round_float_scalar(v, fp.TIES_AWAY) == 0.0
    assert fp.round_float_scalar(-v, fp.TIES_AWAY) == 0.0
    assert fp.round_float_scalar(-2.5, fp.TIES_AWAY) == -3.0
    assert fp.round_float_scalar(-2.5, fp.TIES_UP) == -2.0
    assert fp.round_float_scalar(-2.5, fp.TIES_EVEN) == -2.0


@pytest.mark.parametrize("bits", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("signed", [True, False])
def test_saturate(bits, signed):
    qmin, qmax = fp.int_range(bits, signed)
    assert (qmin, qmax) == ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed
                            else (0, 2**bits - 1))
    x = np.array([qmin - 1, qmin, qmax, qmax + 1, -(2**40), 2**40])
    assert np.array_equal(fp.saturate(x, bits, signed), [qmin, qmin, qmax, qmax, qmin, qmax])
    assert fp.saturate_scalar(qmax + 5, qmin, qmax) == qmax


def test_power_of_two_shift():
    assert fp.power_of_two_shift(2.0**-7) == 7
    assert fp.power_of_two_shift(1.0) == 0
    with pytest.raises(ValueError, match="not a power of two"):
        fp.power_of_two_shift(0.3)


# ---- bad input: one table ----------------------------------------------------------------------

BAD_CALLS = [
    ("srdhm float", lambda: fp.saturating_rounding_doubling_high_mul(1.5, 2), TypeError, "integer"),
    ("srdhm beyond int32", lambda: fp.saturating_rounding_doubling_high_mul(2**31, 1), ValueError,
     "int32"),
    ("rdbp exponent 32", lambda: fp.rounding_divide_by_pot(1, 32), ValueError, "exponent"),
    ("rdbp exponent -1", lambda: fp.rounding_divide_by_pot(1, -1), ValueError, "exponent"),
    ("shift 32", lambda: fp.multiply_by_quantized_multiplier(1, 2**30, 32), ValueError, "shift"),
    ("single shift 31", lambda: fp.single_rounding_multiply(1, 2**30, 31), ValueError, "shift"),
    ("single negative m0", lambda: fp.single_rounding_multiply(1, -5, 0), ValueError, ">= 0"),
    ("left shift overflow", lambda: fp.multiply_by_quantized_multiplier(2**30, 2**30, 2),
     ValueError, "leaves int32"),
    ("qm negative", lambda: fp.quantize_multiplier(-0.5), ValueError, "finite and >= 0"),
    ("qm nan", lambda: fp.quantize_multiplier(float("nan")), ValueError, "finite"),
    ("qm inf", lambda: fp.quantize_multiplier(float("inf")), ValueError, "finite"),
    ("qm string", lambda: fp.quantize_multiplier("x"), TypeError, "real number"),
    ("float mult 0", lambda: fp.float_multiply(1, 0.0, precision="float32", ties="even"),
     ValueError, "> 0"),
    ("float precision", lambda: fp.float_multiply(1, 1.0, precision="float16", ties="even"),
     ValueError, "float16"),
    ("bad ties", lambda: fp.rounding_shift_right(1, 1, ties="down"), ValueError, "down"),
    ("bits 1", lambda: fp.int_range(1, True), ValueError, "bits"),
    ("bits 33", lambda: fp.int_range(33, True), ValueError, "bits"),
    ("bool x", lambda: fp.rounding_divide_by_pot(np.array([True]), 1), TypeError, "integer"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
