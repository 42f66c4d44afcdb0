"""BatchNorm folding: the folded model computes the same function (float64, tight tolerance)."""

from __future__ import annotations

import numpy as np
import pytest

from npquant import nn
from npquant.models import get_model
from npquant.quant import fold_batch_norm, fold_bn_params


def _randomize_bn(model: nn.Module, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean = rng.normal(size=c)
            m.running_var = rng.uniform(0.2, 3.0, c)
            m.weight.data = rng.normal(size=c)
            m.bias.data = rng.normal(size=c)


@pytest.mark.parametrize("seed", [0, 1])
def test_folded_cnn_bn_gives_the_same_outputs(seed):
    model = get_model("cnn_bn", seed=seed, dtype=np.float64)
    _randomize_bn(model, seed)
    model.eval()
    folded = fold_batch_norm(model)
    x = np.random.default_rng(seed).normal(size=(4, 1, 28, 28))
    with nn.no_grad():
        want, got = model(nn.Tensor(x)).data, folded(nn.Tensor(x)).data
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    names = [n for n, _ in folded.named_children()]
    assert names == [n for n, _ in model.named_children()]  # order kept
    assert isinstance(folded.bn1, nn.Identity) and isinstance(model.bn1, nn.BatchNorm2d)
    assert not np.array_equal(folded.conv1.weight.data, model.conv1.weight.data)


def test_fold_params_formula_and_conv_without_bias():
    rng = np.random.default_rng(3)
    conv = nn.Conv2d(2, 3, 3, bias=False, rng=0, dtype=np.float64)
    bn = nn.BatchNorm2d(3, eps=1e-3, dtype=np.float64)
    bn.running_mean, bn.running_var = rng.normal(size=3), rng.uniform(0.5, 2, 3)
    bn.weight.data, bn.bias.data = rng.normal(size=3), rng.normal(size=3)
    model = nn.Sequential(conv, bn).eval()
    folded = fold_batch_norm(model)
    x = rng.normal(size=(2, 2, 6, 6))
    with nn.no_grad():
        np.testing.assert_allclose(folded(nn.Tensor(x)).data, model(nn.Tensor(x)).data,
                                   rtol=1e-12, atol=1e-12)
    a = bn.weight.data / np.sqrt(bn.running_var + 1e-3)
    np.testing.assert_allclose(folded[0].bias.data, -bn.running_mean * a + bn.bias.data,
                               rtol=1e-15)
    w, b = fold_bn_params(conv.weight.data, None, bn.weight.data, bn.bias.data,
                          bn.running_mean, bn.running_var, 1e-3)
    np.testing.assert_array_equal(w, folded[0].weight.data)


def test_fold_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        fold_bn_params(np.ones((3, 1, 1, 1)), None, np.ones(2), np.ones(3), np.ones(3),
                       np.ones(3), 1e-5)
