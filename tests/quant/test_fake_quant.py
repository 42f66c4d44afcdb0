"""Fake quantization: the forward is the integer model's quantize/dequantize bit for bit, and the
STE, PACT and LSQ gradients are the exact gradients of their surrogates (float64 finite
differences): the STE surrogate replaces ``round(u)`` by ``u + c`` with ``c = round(u) - u`` held
at its value at the point; PACT's replaces the quantizer by the identity (its paper, eq. 3)."""

from __future__ import annotations

import numpy as np
import pytest

from npquant import nn
from npquant.fixedpoint import Ties
from npquant.profiles import PROFILES, QuantizeMethod, QuantizeRule, ZeroPointOrder, get_profile
from npquant.qparams import QParams, dequantize, from_range, quantize, quantize_unclamped
from npquant.quant.fake_quant import (
    LSQ,
    PACT,
    FakeQuantize,
    code_range,
    fake_quantize,
    fake_quantize_learnable,
    pact,
    pact_qparams,
)

TFLITE_RULE = get_profile("tflite").quantize
EPS = 1e-6


def codes_away_from_edges(rng, shape, scale, zp, qmin, qmax):
    """x = S (k - Z + u) with |u| <= 0.4 and k never qmin or qmax, so that no element sits on a
    clamp kink (where finite differences of the surrogate are one-sided)."""
    k = rng.integers(qmin + 1, qmax, shape)  # strictly inside...
    outside = rng.random(shape) < 0.25  # ...except a quarter, 1..3 codes beyond either end
    beyond = np.where(rng.random(shape) < 0.5, qmin - rng.integers(1, 4, shape),
                      qmax + rng.integers(1, 4, shape))
    k = np.where(outside, beyond, k)
    u = rng.uniform(-0.4, 0.4, shape)
    return np.asarray(scale, dtype=np.float64) * (k - np.asarray(zp) + u)


def ste_surrogate(x, scale, zp, resid, qmin, qmax):
    """S (clamp(x/S + c + Z, qmin, qmax) - Z) with the rounding residual c frozen."""
    return scale * (np.clip(x / scale + resid + zp, qmin, qmax) - zp)


# -- forward: the integer model's codes -------------------------------------------------------
@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_forward_is_dequantize_of_quantize(profile, bits):
    prof = get_profile(profile)
    rng = np.random.default_rng(bits)
    x = (rng.standard_normal((3, 4, 5, 5)) * 3).astype(np.float32)
    x[0, 0, 0, :3] = [np.float32(2.5), -7.5, 0.0]  # ties for some scales
    per_tensor = from_range(-2.0, 5.0, bits=bits, method=prof.qparams_method)
    per_channel = from_range(-np.arange(1, 5.0), np.arange(1, 5.0), bits=bits, axis=1,
                             scheme="symmetric", narrow_range=prof.narrow_range_weights,
                             method=prof.qparams_method)
    for qp in (per_tensor, per_channel):
        rule = prof.quantize_rule(qp.per_channel)
        got = fake_quantize(nn.Tensor(x), qp, rule).data
        want = dequantize(quantize(x, qp, rule=rule), qp)
        assert got.dtype == np.float32
        assert np.array_equal(got, want), f"{profile} {qp}"


def test_quantize_unclamped_is_quantize_before_saturation():
    qp = QParams(0.5, 3, bits=4)
    x = np.array([-100.0, -5.75, -5.25, 0.0, 1.25, 2.0, 100.0], dtype=np.float32)
    v = quantize_unclamped(x, qp, rule=TFLITE_RULE)
    assert v.tolist() == [-197.0, -9.0, -8.0, 3.0, 6.0, 7.0, 203.0]  # ties away: -11.5 -> -12
    assert np.array_equal(np.clip(v, -8, 7).astype(np.int8), quantize(x, qp, rule=TFLITE_RULE))


# -- STE -------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits,axis", [(4, None), (8, None), (3, 0), (8, 1)])
def test_ste_gradient_matches_finite_differences(bits, axis):
    rng = np.random.default_rng(bits)
    qmin, qmax = code_range(bits, True)
    if axis is None:
        qp = QParams(0.37, qmin + 2, bits=bits)
    else:
        n = 3
        qp = QParams(rng.uniform(0.1, 1.0, n), np.zeros(n, dtype=int), bits=bits, axis=axis)
    s, z = qp.broadcast(3)
    s, z = s.astype(np.float64), z.astype(np.float64)
    x = codes_away_from_edges(rng, (3, 3, 4), s, z, qmin, qmax)
    g = rng.standard_normal(x.shape)
    t = nn.Tensor(x, requires_grad=True)
    y = fake_quantize(t, qp, TFLITE_RULE)
    y.backward(g)
    resid = quantize_unclamped(x, qp, rule=TFLITE_RULE) - z - x / s
    fd = (ste_surrogate(x + EPS, s, z, resid, qmin, qmax)
          - ste_surrogate(x - EPS, s, z, resid, qmin, qmax)) / (2 * EPS)
    np.testing.assert_allclose(t.grad, g * fd, rtol=1e-6, atol=1e-8)
    assert 0 < np.mean(t.grad == 0) < 1, "the case must have clamped and unclamped elements"


def test_ste_mask_includes_the_range_ends():
    """dy/dx = 1 where round(x/S) + Z is qmin or qmax (in range), 0 one code beyond (PyTorch)."""
    qp = QParams(1.0, 0, bits=4)
    x = nn.Tensor(np.array([-8.0, -9.0, 7.0, 8.0, 7.4, 7.6]), requires_grad=True)
    fake_quantize(x, qp, TFLITE_RULE).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]


# -- LSQ -------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("bits,signed,zp", [(4, True, 0), (8, True, -100), (4, False, 3)])
def test_lsq_gradients_match_finite_differences(axis, bits, signed, zp):
    rng = np.random.default_rng(bits + (axis or 0))
    qmin, qmax = code_range(bits, signed)
    shape = (3, 5, 4)
    # float32 scales, as QParams stores them, so the forward and the surrogate share S
    if axis is None:
        s0, z0 = np.array(np.float32(0.23), dtype=np.float64), np.array(float(zp))
    else:
        s0 = rng.uniform(0.1, 0.5, 3).astype(np.float32).astype(np.float64)
        z0 = np.full(3, float(zp))
    sb = s0.reshape(-1, 1, 1) if axis is not None else s0
    zb = z0.reshape(-1, 1, 1) if axis is not None else z0
    x = codes_away_from_edges(rng, shape, sb, zb, qmin, qmax)
    g = rng.standard_normal(shape)
    gf = 0.37  # any grad_factor scales dS and dZ

    def run(xv, sv, zv):
        xt, st, zt = (nn.Tensor(np.array(a, dtype=np.float64), requires_grad=True)
                      for a in (xv, sv, zv))
        y = fake_quantize_learnable(xt, st, zt, bits=bits, signed=signed, axis=axis,
                                    rule=TFLITE_RULE, grad_factor=gf)
        y.backward(g)
        return y.data, xt.grad, st.grad, zt.grad

    y, dx, ds, dz = run(x, s0, z0)
    qp = QParams(s0, z0.astype(int), bits=bits, signed=signed, axis=axis)
    resid = quantize_unclamped(x, qp, rule=TFLITE_RULE) - zb - x / sb  # round(x/S) - x/S
    assert np.array_equal(y, qp.broadcast(3)[0] * (np.clip(resid + x / sb + zb, qmin, qmax) - zb))

    def loss(sv, zv):
        svb = sv.reshape(-1, 1, 1) if axis is not None else sv
        zvb = zv.reshape(-1, 1, 1) if axis is not None else zv
        return g * ste_surrogate(x, svb, zvb, resid, qmin, qmax)

    def reduce(a):
        return a.sum() if axis is None else a.sum(axis=(1, 2))

    fd_s = np.zeros_like(s0, dtype=np.float64)
    fd_z = np.zeros_like(s0, dtype=np.float64)
    for i in np.ndindex(s0.shape):
        e = np.zeros_like(s0, dtype=np.float64)
        e[i] = EPS
        fd_s[i] = reduce(loss(s0 + e, z0) - loss(s0 - e, z0))[i] / (2 * EPS)
        fd_z[i] = reduce(loss(s0, z0 + e) - loss(s0, z0 - e))[i] / (2 * EPS)
    np.testing.assert_allclose(ds, gf * fd_s, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dz, gf * fd_z, rtol=1e-6, atol=1e-8)
    fd_x = (ste_surrogate(x + EPS, sb, zb, resid, qmin, qmax)
            - ste_surrogate(x - EPS, sb, zb, resid, qmin, qmax)) / (2 * EPS)
    np.testing.assert_allclose(dx, g * fd_x, rtol=1e-6, atol=1e-8)


def test_lsq_scale_gradient_by_region():
    """dy/dS: round(x/S) - x/S inside, qmin - Z below, qmax - Z above (Esser et al., eq. 3)."""
    x = nn.Tensor(np.array([0.3, -20.0, 20.0]))
    s = nn.Tensor(np.array(1.0), requires_grad=True)
    z = nn.Tensor(np.array(2.0))
    fake_quantize_learnable(x, s, z, bits=4, rule=TFLITE_RULE).backward(np.ones(3))
    assert s.grad == pytest.approx((0 - 0.3) + (-8 - 2) + (7 - 2))


def test_lsq_module_grad_factor_is_one_over_sqrt_n_qp():
    q = LSQ(bits=4, scheme="asymmetric", rule=TFLITE_RULE)
    q.observe(np.linspace(-1, 3, 100))
    q.start()
    assert int(q.fixed_zero_point) == -4  # [-1, 3] on 16 codes: Z = round(-8 + 1 / (4/15))
    n, qp = 3 * 8 * 8, 7 - (-4)
    assert q.grad_factor((2, 3, 8, 8)) == pytest.approx(1 / np.sqrt(n * qp))


# -- PACT ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pact_gradients_match_finite_differences(bits):
    rng = np.random.default_rng(bits)
    alpha0 = 2.3
    x = rng.uniform(-1.0, 4.0, (4, 6))
    x[np.abs(x) < 1e-2] = 0.5
    x[np.abs(x - alpha0) < 1e-2] = 1.0
    g = rng.standard_normal(x.shape)
    xt = nn.Tensor(x, requires_grad=True)
    at = nn.Tensor(np.array(alpha0), requires_grad=True)
    y = pact(xt, at, bits=bits, rule=TFLITE_RULE)
    y.backward(g)

    def surrogate(xv, a):  # the quantizer passed straight through: clip(x, 0, alpha)
        return np.clip(xv, 0.0, a)

    fd_x = (surrogate(x + EPS, alpha0) - surrogate(x - EPS, alpha0)) / (2 * EPS)
    fd_a = ((g * surrogate(x, alpha0 + EPS)).sum()
            - (g * surrogate(x, alpha0 - EPS)).sum()) / (2 * EPS)
    np.testing.assert_allclose(xt.grad, g * fd_x, rtol=1e-6, atol=1e-8)
    assert at.grad == pytest.approx(fd_a, rel=1e-6)
    # forward: the fake quantization with S = alpha / (2^b - 1), Z = qmin
    qp = pact_qparams(alpha0, bits)
    assert np.array_equal(y.data, fake_quantize(nn.Tensor(x), qp, TFLITE_RULE).data)
    assert y.data.max() == pytest.approx(alpha0, rel=1e-6) and y.data.min() == 0.0


# -- modules ---------------------------------------------------------------------------------
def test_fake_quantize_ema_range_and_state_dict_round_trip():
    fq = FakeQuantize(bits=8, rule=TFLITE_RULE, observer="ema", averaging_constant=0.25)
    fq.train()
    fq(nn.Tensor(np.array([-1.0, 3.0])))
    fq(nn.Tensor(np.array([-3.0, 7.0])))
    assert float(fq.min_val) == -1.0 + 0.25 * (-3.0 + 1.0)
    assert float(fq.max_val) == 3.0 + 0.25 * (7.0 - 3.0)
    fq.eval()  # evaluation does not move the range
    fq(nn.Tensor(np.array([-50.0, 50.0])))
    assert float(fq.max_val) == 4.0
    other = FakeQuantize(bits=8, rule=TFLITE_RULE)
    other.load_state_dict(fq.state_dict())
    assert repr(other.qparams()) == repr(fq.qparams())
    fq.train()
    fq.observer_enabled = False  # frozen
    fq(nn.Tensor(np.array([-50.0, 50.0])))
    assert float(fq.max_val) == 4.0


def test_pact_starts_from_the_observed_max():
    p = PACT(bits=4, rule=TFLITE_RULE)
    p.eval()
    out = p(nn.Tensor(np.array([0.0, 1.5, 4.5])))  # calibration: identity, observes
    assert out.data.tolist() == [0.0, 1.5, 4.5]
    p.start()
    assert float(p.alpha.data) == 4.5
    assert float(p.qparams().scale) == np.float32(4.5 / 15)


def test_unobserved_quantizer_names_itself():
    fq = FakeQuantize(bits=8, rule=TFLITE_RULE, name="conv9").eval()  # eval: no observing
    with pytest.raises(ValueError, match="conv9.*no data observed"):
        fq(nn.Tensor(np.ones(3)))


BAD = {
    "bits 1": (lambda: FakeQuantize(bits=1, rule=TFLITE_RULE), ValueError, "bits"),
    "bits 17": (lambda: FakeQuantize(bits=17, rule=TFLITE_RULE), ValueError, "bits"),
    "scheme": (lambda: FakeQuantize(scheme="log", rule=TFLITE_RULE), ValueError, "scheme"),
    "observer": (lambda: FakeQuantize(observer="kl", rule=TFLITE_RULE), ValueError, "observer"),
    "rule": (lambda: FakeQuantize(rule="tflite"), TypeError, "rule"),
    "lsq pow2": (lambda: LSQ(scheme="power_of_two", rule=TFLITE_RULE), ValueError,
                 "power_of_two"),
    "fq qparams": (lambda: fake_quantize(nn.Tensor(np.ones(2)), (1.0, 0), TFLITE_RULE),
                   TypeError, "qparams"),
    "lsq grad_factor": (lambda: fake_quantize_learnable(
        nn.Tensor(np.ones(2)), nn.Tensor(np.array(1.0)), nn.Tensor(np.array(0.0)), bits=8,
        rule=TFLITE_RULE, grad_factor=0.0), ValueError, "grad_factor"),
    "lsq axis": (lambda: fake_quantize_learnable(
        nn.Tensor(np.ones((2, 2))), nn.Tensor(np.ones(2)), nn.Tensor(np.zeros(2)), bits=8,
        rule=TFLITE_RULE), ValueError, "axis"),
    "pact alpha shape": (lambda: pact(nn.Tensor(np.ones(2)), nn.Tensor(np.ones(2)), bits=4,
                                      rule=TFLITE_RULE), ValueError, "alpha"),
    "nan": (lambda: fake_quantize(nn.Tensor(np.array([np.nan])), QParams(1.0, 0),
                                  TFLITE_RULE), ValueError, "NaN"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_input_raises_naming_it(case):
    fn, exc, words = case
    with pytest.raises(exc, match=words):
        fn()


def test_a_custom_rule_is_honoured():
    """Ties: 2.5 rounds to 3 (away) or 2 (even) by the rule the caller passes."""
    even = QuantizeRule(QuantizeMethod.DIVIDE, "float32", Ties.EVEN, ZeroPointOrder.AFTER_ROUNDING)
    qp = QParams(1.0, 0)
    x = nn.Tensor(np.array([2.5], dtype=np.float32))
    assert fake_quantize(x, qp, TFLITE_RULE).data.tolist() == [3.0]
    assert fake_quantize(x, qp, even).data.tolist() == [2.0]
