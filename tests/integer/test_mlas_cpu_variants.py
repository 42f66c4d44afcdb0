"""The per-CPU rules of the ONNX Runtime profiles, natively: ``onnxruntime-avx2``'s depthwise
accumulator (MLAS's depthwise kernels sum exactly where its GEMMs pair ``vpmaddubsw``) and
``onnxruntime-aarch64``'s QLinearAdd (``npquant.integer.mlas_neon``: MLAS's NEON fixed point and
its float32 fallback). Fast kernels against the reference, and each rule against the one it
replaces on a case where they differ. The profiles against the real frameworks on those CPUs:
tests/oracles/test_emulated_avx2.py and test_emulated_aarch64.py."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from npquant import integer
from npquant.integer import reference
from npquant.integer.mlas import round_f32
from npquant.integer.mlas_neon import neon_add, neon_add_one, neon_add_parameters
from npquant.profiles import AddScheme, Ties, get_profile

F32 = np.float32
AVX2 = get_profile("onnxruntime-avx2")
ARM = get_profile("onnxruntime-aarch64")


# ----------------------------------------------------------------------------- depthwise, AVX2
def _conv(x, w, groups, profile):
    return integer.conv2d(x, w, None, groups=groups, x_zero_point=0, out_zero_point=0,
                          x_scale=1.0, w_scale=1.0, out_scale=1024.0, profile=profile,
                          out_dtype=np.uint8, return_accumulators=True)


def test_one_channel_per_group_sums_exactly_a_multiplier_pairs_taps():
    """x = 255, w = 127 on two taps: 64770 exactly, 32767 in a saturated vpmaddubsw pair."""
    x = np.full((1, 2, 1, 2), 255, np.uint8)
    one = np.full((2, 1, 1, 2), 127, np.int8)  # groups of one input and one output channel
    two = np.full((4, 1, 1, 2), 127, np.int8)  # channel multiplier 2: a grouped GEMM
    assert AVX2.depthwise_accumulator is not None
    assert not AVX2.depthwise_accumulator.pair_saturation and AVX2.accumulator.pair_saturation
    assert np.all(_conv(x, one, 2, AVX2).acc == 64770)
    assert np.all(_conv(x, two, 2, AVX2).acc == 32767)
    assert np.all(_conv(x[:, :1], one[:1], 1, AVX2).acc == 64770)  # a 1-in 1-out conv too
    # the rule it replaces (pairs everywhere), and fbgemm's depthwise, pair the taps
    assert np.all(_conv(x, one, 2, replace(AVX2, depthwise_accumulator=None)).acc == 32767)
    assert np.all(_conv(x, one, 2, "pytorch-fbgemm-avx2").acc == 32767)
    # an explicit accumulator argument still overrides the profile's
    assert np.all(integer.depthwise_conv2d(
        x, one, None, x_zero_point=0, out_zero_point=0, x_scale=1.0, w_scale=1.0,
        out_scale=1024.0, profile=AVX2, accumulator=AVX2.accumulator,
        return_accumulators=True).acc == 32767)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_avx2_depthwise_fast_equals_reference(data):
    c = data.draw(st.integers(1, 3))
    m = data.draw(st.integers(1, 2))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 256, (1, c, 4, 4)).astype(np.uint8)
    w = rng.integers(-128, 128, (c * m, 1, kh, kw)).astype(np.int8)
    kw_args = dict(x_zero_point=int(rng.integers(0, 256)), out_zero_point=3, x_scale=0.02,
                   w_scale=0.01, out_scale=8.0, profile=AVX2, out_dtype=np.uint8,
                   padding=data.draw(st.sampled_from([0, 1])), return_accumulators=True)
    fast = integer.depthwise_conv2d(x, w, None, **kw_args)
    kw_args.pop("return_accumulators")
    ref = reference.depthwise_conv2d(x, w, None, **kw_args)
    assert np.array_equal(fast.acc, ref.acc) and np.array_equal(fast.out, ref.out)


# ----------------------------------------------------------------------------- QLinearAdd, ARM
def test_the_aarch64_profile_is_the_qnnpack_sequence_inside_mlas_ranges():
    assert ARM.add_scheme is AddScheme.MLAS_NEON and ARM.add.ties is Ties.AWAY
    # r_a = 1/2, r_b = 3/8: e = -1, n = 22, m = 2^21 and 3 2^19
    assert neon_add_parameters(1.0, 0.75, 2.0) == (2**21, 3 * 2**19, 22)
    a, b = np.array([1, -1, 3], np.int8), np.array([0, 0, 0], np.int8)
    kw = dict(a_scale=1.0, a_zero_point=0, b_scale=0.75, b_zero_point=0, out_scale=2.0,
              out_zero_point=0)
    # a / 2 on the ties 1/2, -1/2, 3/2: away from zero here, to even on the x86 float sequence
    assert integer.add(a, b, profile=ARM, **kw).tolist() == [1, -1, 2]
    assert integer.add(a, b, profile="onnxruntime", **kw).tolist() == [0, 0, 2]


def test_mlas_falls_back_to_floats_outside_its_ranges():
    assert neon_add_parameters(300.0, 1.0, 1.0) is None  # r >= 2^8
    assert neon_add_parameters(2.0**-15, 1.0, 1.0) is None  # r < 2^-14
    assert neon_add_parameters(2.0**-12, 2.0**-12, 1.0) is None  # n = 33 > 31
    # r_a 2^22 = 2^22 - 1/4 and 2^22 - 1/2 (a tie, to even) round to 2^22, which the
    # multiplier check refuses; 2^22 - 1 passes
    assert neon_add_parameters(float(F32(1 - 2**-24)), 0.3, 1.0) is None
    assert neon_add_parameters(float(F32(1 - 2**-23)), 0.3, 1.0) is None
    assert neon_add_parameters(float(F32(1 - 2**-22)), 0.3, 1.0) is not None


def _fallback_by_hand(qa, qb, sa, za, sb, zb, sc, zc, lo, hi) -> int:
    """MlasQLinearAddKernelRawHelper with S_a's product fused, in Fractions."""
    fr = Fraction
    sa, sb, sc = (fr(float(F32(s))) for s in (sa, sb, sc))
    vb = fr(float(round_f32(sb * (qb - zb))))
    v = fr(float(round_f32(fr(float(round_f32(sa * (qa - za) + vb))) / sc)))
    v = min(max(v, fr(lo - zc)), fr(hi - zc))
    return int(np.rint(round_f32(v + zc)))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_neon_add_equals_its_plain_definitions(data):
    """The vectorized ``neon_add`` against ``neon_add_one`` (the reference kernel's loop) and,
    on the fallback, against the helper by hand; scales over the ranges MLAS accepts and
    beyond them."""
    signed = data.draw(st.booleans())
    lo, hi = (-128, 127) if signed else (0, 255)
    n = data.draw(st.integers(1, 12))
    qa = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)))
    qb = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)))
    za, zb, zc = (data.draw(st.integers(lo, hi)) for _ in range(3))
    sc = float(F32(2.0 ** data.draw(st.floats(-10, 0))))
    sa, sb = (float(F32(sc * 2.0 ** data.draw(st.floats(-17, 9)))) for _ in range(2))
    kw = dict(a_scale=sa, a_zero_point=za, b_scale=sb, b_zero_point=zb, out_scale=sc,
              out_zero_point=zc, qmin=lo, qmax=hi)
    y, acc = neon_add(qa, qb, **kw)
    one = [neon_add_one(int(a), int(b), **kw) for a, b in zip(qa, qb, strict=True)]
    assert acc.tolist() == [o[0] for o in one] and y.tolist() == [o[1] for o in one]
    if neon_add_parameters(sa, sb, sc) is None:
        want = [min(max(_fallback_by_hand(int(a), int(b), sa, za, sb, zb, sc, zc, lo, hi), lo),
                    hi) for a, b in zip(qa, qb, strict=True)]
        assert y.tolist() == want


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_aarch64_add_fast_equals_reference(data):
    dt = data.draw(st.sampled_from([np.int8, np.uint8]))
    lo, hi = (-128, 127) if dt == np.int8 else (0, 255)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a = rng.integers(lo, hi + 1, (2, 5)).astype(dt)
    b = rng.integers(lo, hi + 1, data.draw(st.sampled_from([(2, 5), (1,)]))).astype(dt)
    sc = float(F32(2.0 ** data.draw(st.floats(-8, 0))))
    kw = dict(a_scale=float(F32(sc * 2.0 ** data.draw(st.floats(-16, 9)))),
              b_scale=float(F32(sc * 2.0 ** data.draw(st.floats(-16, 9)))), out_scale=sc,
              a_zero_point=int(rng.integers(lo, hi + 1)),
              b_zero_point=int(rng.integers(lo, hi + 1)),
              out_zero_point=int(rng.integers(lo, hi + 1)), profile=ARM,
              activation=data.draw(st.sampled_from([None, "relu"])))
    fast = integer.add(a, b, return_accumulators=True, **kw)
    ref = reference.add(a, b, **kw)
    assert np.array_equal(fast.out, ref.out) and np.array_equal(fast.acc, ref.acc)
