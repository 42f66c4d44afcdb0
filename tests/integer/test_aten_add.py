"""PyTorch's quantized add (npquant.integer.aten_add, AddScheme.ATEN): blocks of 64 elements
with fma dequantization and the zero point after the rounding, a scalar tail with it before."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import int_arrays, zero_points

from npquant.integer import add, reference


@pytest.mark.parametrize("n", [31, 63, 64, 65, 96, 128, 129, 200])
def test_ties_show_the_blocks_and_the_tail(n):
    """a = 2, b = 3, S_a = S_b = 1/2, S_y = 1, Z_y = 1: every output is the tie 2.5 plus Z. The
    blocks round first (rne(2.5) + 1 = 3), the tail after adding Z (rne(3.5) = 4); PyTorch 2.13
    gives the first 64 floor(n / 64) elements 3 and the rest 4 (docs/framework_facts.md)."""
    a, b = np.full((1, n), 2, np.uint8), np.full((1, n), 3, np.uint8)
    kw = dict(a_scale=0.5, a_zero_point=0, b_scale=0.5, b_zero_point=0, out_scale=1.0,
              out_zero_point=1, profile="pytorch-fbgemm")
    want = np.where(np.arange(n) < 64 * (n // 64), 3, 4).reshape(1, n)
    assert np.array_equal(add(a, b, **kw), want)
    assert np.array_equal(reference.add(a, b, **kw).out, want)


def test_refuses_broadcasts():
    with pytest.raises(ValueError, match="one shape"):
        add(np.zeros((2, 3), np.uint8), np.zeros((1, 3), np.uint8), a_scale=0.1, a_zero_point=0,
            b_scale=0.1, b_zero_point=0, out_scale=0.2, out_zero_point=0,
            profile="pytorch-fbgemm")


scales = st.sampled_from([0.5, 0.02, 0.1, 1 / 64, 0.0473, 0.0031, 3.0517578e-05, 7.1])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dt=st.sampled_from([np.uint8, np.int8]))
def test_fast_equals_reference(data, dt):
    """The vectorized model equals the element-by-element exact-rational definition."""
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 150)))
    a, b = data.draw(int_arrays(dt, shape)), data.draw(int_arrays(dt, shape))
    kw = dict(a_scale=data.draw(scales), a_zero_point=data.draw(zero_points(dt)),
              b_scale=data.draw(scales), b_zero_point=data.draw(zero_points(dt)),
              out_scale=data.draw(scales), out_zero_point=data.draw(zero_points(dt)),
              profile=data.draw(st.sampled_from(["pytorch-fbgemm", "pytorch-fbgemm-avx2"])),
              activation=data.draw(st.sampled_from([None, "relu"])))
    fast = add(a, b, return_accumulators=True, **kw)
    ref = reference.add(a, b, **kw)
    assert np.array_equal(fast.out, ref.out) and np.array_equal(fast.acc, ref.acc)
