"""Quantization parameters: range -> (S, Z), quantize/dequantize round trips, validation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import require
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from npquant.fixedpoint import Ties
from npquant.profiles import PROFILES, QuantizeMethod, QuantizeRule, ZeroPointOrder
from npquant.qparams import (
    QParams,
    _fma_to_float32,
    dequantize,
    from_range,
    quantize,
    quantize_reference,
)

QUANTIZE_RULES = {name: p.quantize for name, p in PROFILES.items()}
finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)


def test_tflite_nudging_known_values():
    qp = from_range(-1.0, 2.0, bits=8, signed=False)  # S = 3/255, Z = 0 - (-1)/S = 85
    assert np.float32(qp.scale) == np.float32(3.0 / 255.0)
    assert int(qp.zero_point) == 85
    assert int(from_range(-1.0, 2.0, bits=8, signed=True).zero_point) == -43
    # a range that excludes 0 is widened: [0.5, 2] -> [0, 2], so Z = qmin
    qp = from_range(0.5, 2.0, bits=8, signed=True)
    assert int(qp.zero_point) == -128 and np.float32(qp.scale) == np.float32(2.0 / 255.0)


def test_symmetric_and_power_of_two_known_values():
    qp = from_range(-0.5, 1.27, scheme="symmetric", narrow_range=True)
    assert (qp.qmin, qp.qmax, int(qp.zero_point)) == (-127, 127, 0)
    assert np.float32(qp.scale) == np.float32(1.27 / 127)
    qp = from_range(-3.0, 1.0, scheme="power_of_two")
    assert float(qp.scale) == 2.0**-5  # 3 / 2^-5 = 96 <= 127 < 3 / 2^-6 = 192
    qp = from_range(-0.3, 0.2, scheme="symmetric", method="pytorch", signed=False)
    assert int(qp.zero_point) == 128


def test_degenerate_range_keeps_zero_exact():
    for method in ("tflite", "pytorch"):
        qp = from_range(0.0, 0.0, method=method)
        assert float(qp.scale) > 0
        q = quantize(np.zeros(3, np.float32), qp, rule=QUANTIZE_RULES["tflite"])
        assert np.array_equal(dequantize(q, qp), np.zeros(3, np.float32))


@pytest.mark.parametrize("profile", sorted(QUANTIZE_RULES))
@settings(max_examples=150)
@given(a=finite, b=finite, method=st.sampled_from(["tflite", "pytorch"]),
       bits=st.integers(2, 16), signed=st.booleans(), data=st.data())
def test_round_trip_within_half_a_step(profile, a, b, method, bits, signed, data):
    lo, hi = min(a, b), max(a, b)
    assume(hi - lo > 1e-3)
    qp = from_range(lo, hi, bits=bits, signed=signed, method=method)
    s = float(qp.scale)
    z = int(qp.zero_point)
    # the representable range after nudging
    rlo, rhi = s * (qp.qmin - z), s * (qp.qmax - z)
    # float32 bounds inside [rlo, rhi]
    flo = float(np.nextafter(np.float32(rlo), np.float32(np.inf)))
    fhi = float(np.nextafter(np.float32(rhi), np.float32(-np.inf)))
    xs = np.array(data.draw(st.lists(st.floats(flo, fhi, width=32), min_size=1, max_size=20)),
                  dtype=np.float32)
    rule = QUANTIZE_RULES[profile]
    q = quantize(xs, qp, rule=rule)
    assert q.dtype == qp.dtype
    back = dequantize(q, qp).astype(np.float64)
    # |x - S(q - Z)| <= S/2 in exact arithmetic; float32 x/S and f32(S(q-Z)) each add at most
    # one float32 rounding (relative 2^-24) of values bounded by max(|x|, |rlo|, |rhi|)
    bound = s / 2 + 4 * 2.0**-24 * max(abs(rlo), abs(rhi), float(np.max(np.abs(xs))))
    assert np.all(np.abs(back - xs) <= bound)
    # real 0 is exact
    assert int(quantize(np.float32(0.0), qp, rule=rule)) == z
    assert float(dequantize(np.array(z), qp)) == 0.0


def test_per_channel_quantize_uses_each_channel_scale():
    w = np.array([[1.0, -1.0], [10.0, -10.0]], dtype=np.float32)
    qp = from_range(w.min(axis=1), w.max(axis=1), scheme="symmetric", narrow_range=True, axis=0)
    q = quantize(w, qp, rule=QUANTIZE_RULES["tflite"])
    assert np.array_equal(q, [[127, -127], [127, -127]])
    assert np.allclose(dequantize(q, qp), w, rtol=0, atol=1e-6)


def test_infinities_saturate_and_nan_raises():
    qp = from_range(-1.0, 1.0)
    q = quantize(np.array([np.inf, -np.inf, 1e30], np.float32), qp, rule=QUANTIZE_RULES["tflite"])
    assert q.tolist() == [127, -128, 127]
    with pytest.raises(ValueError, match="NaN at index"):
        quantize(np.array([0.0, np.nan], np.float32), qp, rule=QUANTIZE_RULES["tflite"])


def test_quantize_rules_differ_where_they_should():
    qp = QParams(0.5, 0)
    x = np.array([0.25, -0.25, 0.75, -0.75], dtype=np.float32)  # x / S = +-0.5, +-1.5: ties
    away = quantize(x, qp, rule=QUANTIZE_RULES["tflite"])
    even = quantize(x, qp, rule=QUANTIZE_RULES["onnxruntime"])
    up = quantize(x, qp, rule=QUANTIZE_RULES["pow2"])
    assert away.tolist() == [1, -1, 2, -2]
    assert even.tolist() == [0, 0, 2, -2]
    assert up.tolist() == [1, 0, 2, -1]


def _round_to_float32_exact(value: Fraction) -> float:
    """The float32 nearest to an exact rational (ties to even), by comparing neighbours exactly."""
    guess = np.float32(float(value))
    cands = {guess, np.nextafter(guess, np.float32(np.inf)),
             np.nextafter(guess, np.float32(-np.inf))}
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - value),
                                     int(np.array(c).view(np.int32)) & 1))
    return float(best)


@given(x=st.floats(-1e6, 1e6, width=32), s=st.floats(2.0**-20, 1024.0, width=32),
       z=st.integers(-128, 255))
def test_fma_to_float32_is_one_rounding(x, s, z):
    inv = np.float32(1.0) / np.float32(s)
    exact = Fraction(float(x)) * Fraction(float(inv)) + z
    got = _fma_to_float32(np.array([x], np.float32), np.array([inv], np.float32),
                          np.array([float(z)]))
    assert float(got[0]) == _round_to_float32_exact(exact)


RULE_VARIANTS = [QuantizeRule(m, prec, ties, zp) for m in QuantizeMethod
                 for prec in ("float32", "float64") for ties in Ties for zp in ZeroPointOrder
                 if m is QuantizeMethod.MULTIPLY_RECIPROCAL
                 or zp is not ZeroPointOrder.BEFORE_ROUNDING_FMA]  # fma has no dividing form


@pytest.mark.parametrize("rule", RULE_VARIANTS, ids=lambda r: r.describe())
@settings(max_examples=8)
@given(s=st.floats(2.0**-20, 1024.0, width=32), data=st.data())
def test_fast_per_tensor_quantize_equals_numpy_steps(rule, s, data):
    """``quantize`` of per-tensor qparams runs one parallel pass (npquant.integer.fast.quantize);
    it equals the whole-array numpy steps (``quantize_reference``) bit for bit, for every
    method, precision, tie rule and zero-point order, at the edges: ties ``(k + 1/2) S``, the
    float32 neighbours of ties, +-0, subnormals, the largest floats and infinities."""
    bits, signed = data.draw(st.sampled_from([(8, True), (8, False), (4, True), (16, False)]))
    qmin, qmax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    qp = QParams(s, data.draw(st.integers(qmin, qmax)), bits=bits, signed=signed)
    k = np.arange(-40, 40, dtype=np.float32) + np.float32(0.5)
    ties = (k - np.float32(qp.zero_point)) * np.float32(s)
    edges = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-39, 3.4028235e38, -3.4028235e38, np.inf,
                      -np.inf], dtype=np.float32)
    drawn = np.array(data.draw(st.lists(st.floats(width=32, allow_nan=False), max_size=50)),
                     dtype=np.float32)
    x = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)),
                        np.nextafter(ties, np.float32(-np.inf)), edges, drawn])
    got, want = quantize(x, qp, rule=rule), quantize_reference(x, qp, rule=rule)
    assert got.dtype == want.dtype
    if not np.array_equal(got, want):
        i = int(np.argwhere(got != want)[0][0])
        raise AssertionError(f"quantize({x[i]!r}) = {got[i]}, numpy steps {want[i]} [{qp}, "
                             f"{rule.describe()}]")


def test_pytorch_method_matches_torch_observer():
    torch = require("torch")
    from torch.ao.quantization.observer import MinMaxObserver

    rng = np.random.default_rng(0)
    for _ in range(200):
        lo, hi = np.sort(rng.normal(0, rng.choice([1e-3, 1.0, 100.0]), size=2)).astype(np.float32)
        for dtype, signed in ((torch.quint8, False), (torch.qint8, True)):
            for qscheme, scheme in ((torch.per_tensor_affine, "asymmetric"),
                                    (torch.per_tensor_symmetric, "symmetric")):
                obs = MinMaxObserver(dtype=dtype, qscheme=qscheme)
                obs(torch.tensor([lo, hi]))
                scale, zp = obs.calculate_qparams()
                qp = from_range(lo, hi, signed=signed, scheme=scheme, method="pytorch")
                assert np.float32(qp.scale) == np.float32(scale.item()), (lo, hi, dtype, qscheme)
                assert int(qp.zero_point) == int(zp.item()), (lo, hi, dtype, qscheme)


BAD = [
    ("scale 0", lambda: QParams(0.0, 0), ValueError, "scale must be finite and > 0"),
    ("scale negative", lambda: QParams(-1.0, 0), ValueError, "scale"),
    ("scale nan", lambda: QParams(float("nan"), 0), ValueError, "scale"),
    ("scale inf", lambda: QParams(float("inf"), 0), ValueError, "scale"),
    ("scale underflows float32", lambda: QParams(1e-50, 0), ValueError, "float32"),
    ("zp out of range", lambda: QParams(1.0, 128), ValueError, r"outside \[-128, 127\]"),
    ("zp uint8 negative", lambda: QParams(1.0, -1, signed=False), ValueError, "outside"),
    ("zp fractional", lambda: QParams(1.0, 0.5), TypeError, "zero_point must be integer"),
    ("bits 1", lambda: QParams(1.0, 0, bits=1), ValueError, "bits must be an int in 2..16"),
    ("bits 17", lambda: QParams(1.0, 0, bits=17), ValueError, "bits must be an int in 2..16"),
    ("bits 4.0", lambda: QParams(1.0, 0, bits=4.0), ValueError, "bits must be an int in 2..16"),
    ("narrow unsigned", lambda: QParams(1.0, 0, signed=False, narrow_range=True), ValueError,
     "signed types only"),
    ("per-tensor with arrays", lambda: QParams([1.0, 2.0], [0, 0]), ValueError, "axis="),
    ("per-channel shapes", lambda: QParams([1.0, 2.0], [0, 0, 0], axis=0), ValueError, "1-D"),
    ("range nan", lambda: from_range(float("nan"), 1.0), ValueError, "NaN"),
    ("range inf", lambda: from_range(-1.0, float("inf")), ValueError, "finite"),
    ("range reversed", lambda: from_range(1.0, -1.0), ValueError, "rmin > rmax"),
    ("bad scheme", lambda: from_range(-1.0, 1.0, scheme="log"), ValueError, "scheme"),
    ("bad method", lambda: from_range(-1.0, 1.0, method="caffe"), ValueError, "caffe"),
    ("quantize ints", lambda: quantize(np.array([1, 2]), QParams(1.0, 0),
                                       rule=QUANTIZE_RULES["tflite"]), TypeError, "float"),
    ("dequantize floats", lambda: dequantize(np.array([1.0]), QParams(1.0, 0)), TypeError,
     "integer"),
    ("dequantize out of range", lambda: dequantize(np.array([300]), QParams(1.0, 0)), ValueError,
     "outside"),
    ("bad precision", lambda: quantize(np.ones(1, np.float32), QParams(1.0, 0), rule=QuantizeRule(
        QuantizeMethod.DIVIDE, "float16", Ties.EVEN, ZeroPointOrder.AFTER_ROUNDING)),
     ValueError, "precision"),
    ("fma with divide", lambda: QuantizeRule(QuantizeMethod.DIVIDE, "float32", Ties.EVEN,
                                             ZeroPointOrder.BEFORE_ROUNDING_FMA),
     ValueError, "before_rounding_fma needs the multiply method"),
]


@pytest.mark.parametrize("call, exc, match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_qparams_is_immutable():
    qp = QParams(1.0, 0)
    with pytest.raises(AttributeError, match="immutable"):
        qp.bits = 4


def test_subnormal_scale_is_refused():
    with pytest.raises(ValueError, match="normal float32"):
        QParams(1e-45, 0)
    assert float(QParams(float(np.finfo(np.float32).tiny), 0).scale) > 0


def test_per_channel_length_must_match_the_axis():
    """3 scales on a tensor with 2 channels on the axis: an error, not a (3, 2) broadcast."""
    from npquant.profiles import get_profile

    q = QParams([0.1, 0.2, 0.3], 0, axis=1)
    rule = get_profile("tflite").quantize_rule(True)
    with pytest.raises(ValueError, match="3 scales but the tensor of shape \\(1, 2\\)"):
        quantize(np.ones((1, 2), np.float32), q, rule=rule)
    with pytest.raises(ValueError, match="3 scales"):
        dequantize(np.ones((1, 2), np.int8), q)
    assert quantize(np.ones((2, 3), np.float32), q, rule=rule).shape == (2, 3)
