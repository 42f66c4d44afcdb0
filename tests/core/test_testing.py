"""npquant.testing: the bit-exact assertion's messages and the strategies' validity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from npquant.fixedpoint import INT32_MAX
from npquant.testing import BitExactMismatch, assert_bit_exact
from npquant.testing import strategies as nst


def test_assert_bit_exact_passes_on_equal():
    assert_bit_exact(np.arange(5, dtype=np.int8), np.arange(5, dtype=np.int8))


def test_assert_bit_exact_names_first_divergence_and_off_by_one():
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int8)
    e = a.copy()
    e[1, 1] = 6
    e[1, 2] = 7
    with pytest.raises(BitExactMismatch, match=r"out\[1, 1\]=5, but should be 6 \[conv\]; "
                                               r"2 of 6 differ \(all by ±1\)") as info:
        assert_bit_exact(a, e, "conv")
    assert info.value.count == 2 and info.value.all_off_by_one


def test_assert_bit_exact_reports_max_diff_shape_and_dtype():
    with pytest.raises(BitExactMismatch, match=r"max \|diff\| = 185"):
        assert_bit_exact(np.array([0, 185]), np.array([0, 0]))
    with pytest.raises(BitExactMismatch, match=r"shape \(2,\), but should be \(3,\)"):
        assert_bit_exact(np.zeros(2, np.int8), np.zeros(3, np.int8))
    with pytest.raises(BitExactMismatch, match="dtype int16, but should be int8"):
        assert_bit_exact(np.zeros(2, np.int16), np.zeros(2, np.int8))


@given(nst.qparams(channels=3, bits=4, signed=False))
def test_qparams_strategy_is_valid(qp):
    assert qp.per_channel and qp.scale.shape == (3,)
    assert np.all((qp.zero_point >= 0) & (qp.zero_point <= 15))


@given(nst.conv_shapes())
def test_conv_shapes_are_consistent(shape):
    assert shape.in_channels % shape.groups == 0 and shape.out_channels % shape.groups == 0
    oh, ow = shape.output_hw
    assert oh >= 1 and ow >= 1


@given(nst.conv_shapes(depthwise=True))
def test_depthwise_shapes(shape):
    assert shape.groups == shape.in_channels


@given(nst.quantized_multipliers())
def test_multipliers_in_range(pair):
    m0, shift = pair
    assert 0 <= m0 <= INT32_MAX and -31 <= shift <= 0


@given(nst.int_tensors(np.uint8, (3, 4)))
def test_int_tensors_dtype(arr):
    assert arr.dtype == np.uint8 and arr.shape == (3, 4)


@pytest.mark.parametrize("call", [
    lambda: nst.scales(min_exponent=5, max_exponent=1),
    lambda: nst.scales(min_exponent=-200),
    lambda: nst.int_tensors(np.float32, (2,)),
    lambda: nst.gemm_shapes(max_dim=0),
], ids=["exponents reversed", "exponent below float32", "float dtype", "max_dim 0"])
def test_strategy_arguments_are_validated(call):
    with pytest.raises(ValueError):
        call()
