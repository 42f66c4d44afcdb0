"""Modules: PyTorch-default init, named traversal, state dicts, hooks, modes, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import require

from npquant import nn
from npquant.models import get_model


def test_conv_init_bounds_match_pytorch_rule():
    conv = nn.Conv2d(8, 16, 3, rng=0)
    bound = 1 / math.sqrt(8 * 9)  # Kaiming-uniform a=sqrt(5) -> 1/sqrt(fan_in)
    assert conv.weight.dtype == np.float32 and conv.weight.shape == (16, 8, 3, 3)
    assert np.abs(conv.weight.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.95 * bound  # the whole range is used
    assert np.abs(conv.bias.data).max() <= bound
    # variance of U(-b, b) is b^2/3
    assert abs(conv.weight.data.var() - bound**2 / 3) < 0.1 * bound**2 / 3


def test_init_is_seeded():
    a, b, c = (nn.Linear(5, 3, rng=s).weight.data for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_depthwise_attributes_are_introspectable():
    conv = nn.Conv2d(6, 12, 3, stride=2, padding=1, dilation=1, groups=6, bias=False)
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((2, 2), (1, 1), (1, 1), 6)
    assert conv.weight.shape == (12, 1, 3, 3) and conv.bias is None
    assert [n for n, _ in conv.named_parameters()] == ["weight"]


def test_named_modules_in_call_order():
    names = [n for n, _ in get_model("cnn_bn").named_modules()]
    assert names == ["", "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2",
                     "flatten", "fc"]
    resnet = get_model("resnet20")
    assert isinstance(resnet.get_submodule("layer2.0.shortcut.0"), nn.Conv2d)
    assert isinstance(resnet.get_submodule("layer1.0.shortcut"), nn.Identity)


def test_state_dict_roundtrip_and_copy_semantics():
    m = get_model("cnn_bn", seed=3)
    sd = m.state_dict()
    assert {"bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"} <= set(sd)
    sd["conv1.weight"][...] = 0  # a copy: the model is untouched
    assert np.abs(m.conv1.weight.data).sum() > 0
    m2 = get_model("cnn_bn", seed=4)
    m2.load_state_dict(m.state_dict())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)


def test_load_state_dict_errors():
    m = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"weight has shape \(2, 4\) in the state dict but "
                                         r"\(2, 3\) in the model"):
        m.load_state_dict({"weight": np.zeros((2, 4)), "bias": np.zeros(2)})
    with pytest.raises(ValueError, match=r"missing keys \['bias'\], unexpected keys \['b'\]"):
        m.load_state_dict({"weight": np.zeros((2, 3)), "b": np.zeros(2)})


def test_state_dict_keys_match_pytorch_resnet_block():
    torch = require("torch")
    from npquant.models.resnet import BasicBlock

    ours = BasicBlock(4, 8, 2, rng=np.random.default_rng(0))
    ref = torch.nn.Module()
    ref.conv1, ref.bn1 = torch.nn.Conv2d(4, 8, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(8)
    ref.conv2, ref.bn2 = torch.nn.Conv2d(8, 8, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(8)
    ref.shortcut = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 1, 2, bias=False),
                                       torch.nn.BatchNorm2d(8))
    assert set(ours.state_dict()) == set(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert ours.state_dict()[k].shape == tuple(v.shape), k


def test_forward_hook_sees_input_and_output_and_can_be_removed():
    m = get_model("cnn")
    seen = []
    handle = m.conv2.register_forward_hook(lambda mod, ins, out: seen.append((ins[0].shape,
                                                                              out.shape)))
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    m(x)
    assert seen == [((2, 40, 13, 13), (2, 40, 11, 11))]
    handle.remove()
    m(x)
    assert len(seen) == 1


def test_hook_return_value_replaces_output():
    relu = nn.ReLU()
    relu.register_forward_hook(lambda mod, ins, out: nn.Tensor(out.data * 0 + 7))
    np.testing.assert_array_equal(relu(np.ones(3)).data, [7, 7, 7])


def test_record_activations_chains_layers():
    m = get_model("cnn", seed=1)
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    rec = nn.record_activations(m, x)
    assert list(rec)[-1] == ""  # the root finishes last
    np.testing.assert_array_equal(rec["relu1"][0][0], rec["conv1"][1])
    np.testing.assert_array_equal(rec["fc"][0][0], rec["flatten"][1])
    assert rec["fc"][1].shape == (3, 10)
    assert not m.conv1._forward_hooks  # hooks removed


def test_train_eval_modes_change_batchnorm_and_dropout():
    m = nn.Sequential(nn.BatchNorm2d(2), nn.Dropout(0.5, rng=0))
    x = np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32) + 5
    y_train = m(x).data
    assert int(m[0].num_batches_tracked) == 1
    assert (y_train == 0).any()  # dropout zeroed something
    m.eval()
    assert not m[0].training and not m[1].training
    y_eval = m(x).data
    # eval: running mean is 0.1 * batch mean (one update from 0), so outputs stay near x
    assert (y_eval != 0).all() and int(m[0].num_batches_tracked) == 1


def test_astype_float64():
    m = get_model("cnn_bn").astype(np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m.bn1.running_var.dtype == np.float64
    assert m.bn1.num_batches_tracked.dtype == np.int64


BAD_CALLS = {
    "conv_wrong_channels": (lambda: nn.Conv2d(3, 4, 3)(np.zeros((1, 2, 8, 8), np.float32)),
                            ValueError, r"expected input \(N, 3, H, W\), got shape \(1, 2, 8, 8\)"),
    "conv_3d_input": (lambda: nn.Conv2d(3, 4, 3)(np.zeros((3, 8, 8), np.float32)), ValueError,
                      r"got shape \(3, 8, 8\)"),
    "conv_too_small": (lambda: nn.Conv2d(1, 1, 5)(np.zeros((1, 1, 3, 3), np.float32)),
                       ValueError, "too small for kernel"),
    "conv_bad_groups": (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "groups=2 must divide"),
    "conv_bad_stride": (lambda: nn.Conv2d(3, 4, 3, stride=1.5), TypeError, "stride must be"),
    "conv_dtype_mismatch": (lambda: nn.Conv2d(1, 1, 1)(np.zeros((1, 1, 2, 2))), TypeError,
                            "input dtype float64 != weight dtype float32"),
    "linear_shape": (lambda: nn.Linear(4, 2)(np.zeros((3, 5), np.float32)), ValueError,
                     r"input shape \(3, 5\) does not match weight shape \(2, 4\)"),
    "bn_channels": (lambda: nn.BatchNorm2d(3)(np.zeros((2, 4, 2, 2), np.float32)), ValueError,
                    r"expected input \(N, 3, H, W\), got shape \(2, 4, 2, 2\)"),
    "bn_single_value": (lambda: nn.BatchNorm2d(1)(np.zeros((1, 1, 1, 1), np.float32)),
                        ValueError, "more than 1 value per channel"),
    "pool_too_small": (lambda: nn.MaxPool2d(3)(np.zeros((1, 1, 2, 2))), ValueError,
                       "smaller than kernel"),
    "add_shapes": (lambda: nn.Add()(np.zeros((1, 2)), np.zeros((2, 1))), ValueError,
                   r"\(1, 2\) vs \(2, 1\)"),
    "ce_nan": (lambda: nn.cross_entropy(nn.Tensor(np.array([[0.0, np.nan]])), np.array([0])),
               ValueError, r"contains NaN or inf \(first at index \(0, 1\)"),
    "ce_target_range": (lambda: nn.cross_entropy(nn.Tensor(np.zeros((2, 3))), np.array([0, 3])),
                        ValueError, r"must be in \[0, 3\)"),
    "ce_target_shape": (lambda: nn.cross_entropy(nn.Tensor(np.zeros((2, 3))), np.array([0])),
                        ValueError, r"target shape \(1,\) does not match logits shape \(2, 3\)"),
    "ce_float_target": (lambda: nn.cross_entropy(nn.Tensor(np.zeros((2, 3))), np.zeros(2)),
                        TypeError, "integer class indices"),
    "mse_shapes": (lambda: nn.mse_loss(nn.Tensor(np.zeros((2, 3))), np.zeros((3, 2))),
                   ValueError, r"pred \(2, 3\) vs target \(3, 2\)"),
    "mse_inf": (lambda: nn.mse_loss(nn.Tensor(np.array([np.inf])), np.zeros(1)), ValueError,
                "mse_loss pred contains NaN or inf"),
    "dropout_p": (lambda: nn.Dropout(1.0), ValueError, r"p=1.0 must be in \[0, 1\)"),
    "adaptive_size": (lambda: nn.AdaptiveAvgPool2d(2), ValueError, "output_size 1 only"),
    "unknown_model": (lambda: get_model("vgg"), ValueError, "unknown model 'vgg'; known models"),
    "sequential_item": (lambda: nn.Sequential(nn.ReLU(), 3), TypeError, "item 1 must be a Module"),
}


@pytest.mark.parametrize("case", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_input_raises_clear_error(case):
    call, exc, match = case
    with pytest.raises(exc, match=match):
        call()
