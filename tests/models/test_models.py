"""Model zoo: shapes, registry, and ResNet forward/backward against the same net in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

from npquant import nn
from npquant.models import get_model, list_models


@pytest.mark.parametrize("name, kw, x_shape, flat", [
    ("cnn", {}, (2, 1, 28, 28), 1000),
    ("cnn_bn", {}, (2, 1, 28, 28), 1000),
    ("cnn", {"in_channels": 3, "input_size": 32}, (2, 3, 32, 32), 1440),
    ("cnn_bn", {"in_channels": 3, "input_size": 32}, (2, 3, 32, 32), 1440),
])
def test_cnn_shapes(name, kw, x_shape, flat):
    m = get_model(name, **kw)
    rec = nn.record_activations(m, np.zeros(x_shape, np.float32), names=["flatten", "fc"])
    assert rec["flatten"][1].shape == (2, flat)
    assert m.fc.weight.shape == (10, flat) and rec["fc"][1].shape == (2, 10)
    assert (m.conv1.out_channels, m.conv2.in_channels, m.conv1.kernel_size) == (40, 40, (3, 3))
    assert hasattr(m, "bn1") == (name == "cnn_bn")


@pytest.mark.parametrize("name, x_shape", [("resnet20", (2, 3, 32, 32)),
                                           ("resnet_small", (2, 1, 28, 28))])
def test_resnet_shapes_and_structure(name, x_shape):
    m = get_model(name)
    assert m(np.zeros(x_shape, np.float32)).shape == (2, 10)
    blocks = [n for n, mod in m.named_modules() if type(mod).__name__ == "BasicBlock"]
    assert len(blocks) == (9 if name == "resnet20" else 3)
    convs = [mod for _, mod in m.named_modules() if isinstance(mod, nn.Conv2d)]
    assert all(c.bias is None for c in convs)  # BN follows every conv
    widths = (16, 32, 64) if name == "resnet20" else (8, 16, 32)
    assert [m.get_submodule(f"layer{i}.0.conv1").out_channels for i in (1, 2, 3)] == list(widths)


def test_registry():
    assert list_models() == ["cnn", "cnn_bn", "resnet20", "resnet_small"]
    a, b = get_model("resnet_small", seed=7), get_model("resnet_small", seed=7)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])


def assert_close(ours, ref, stage):
    """float64 agreement with PyTorch to rtol = atol = 1e-10 (tests/nn/nn_helpers.py)."""
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10, err_msg=stage)


def _torch_resnet(torch, blocks, widths, in_ch):
    tn = torch.nn

    class Block(tn.Module):
        def __init__(self, i, o, s):
            super().__init__()
            self.conv1, self.bn1 = tn.Conv2d(i, o, 3, s, 1, bias=False), tn.BatchNorm2d(o)
            self.conv2, self.bn2 = tn.Conv2d(o, o, 3, 1, 1, bias=False), tn.BatchNorm2d(o)
            self.shortcut = (tn.Sequential(tn.Conv2d(i, o, 1, s, bias=False), tn.BatchNorm2d(o))
                             if s != 1 or i != o else tn.Identity())

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + self.shortcut(x))

    class Net(tn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = tn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False), \
                tn.BatchNorm2d(widths[0])
            i = widths[0]
            for s, (n, w) in enumerate(zip(blocks, widths, strict=True)):
                layer = []
                for j in range(n):
                    layer.append(Block(i, w, 2 if s > 0 and j == 0 else 1))
                    i = w
                setattr(self, f"layer{s + 1}", tn.Sequential(*layer))
            self.fc = tn.Linear(i, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(x.mean(dim=(2, 3), keepdim=True), 1))

    return Net().double()


@pytest.mark.oracle
@pytest.mark.parametrize("name, blocks, widths, x_shape", [
    ("resnet20", (3, 3, 3), (16, 32, 64), (2, 3, 32, 32)),
    ("resnet_small", (1, 1, 1), (8, 16, 32), (3, 1, 28, 28)),
])
def test_resnet_matches_torch_train_and_eval(name, blocks, widths, x_shape):
    torch = require("torch")
    ours = get_model(name, seed=0).astype(np.float64)
    ref = _torch_resnet(torch, blocks, widths, x_shape[1])
    assert sum(p.size for p in (q.data for q in ours.parameters())) == \
        sum(p.numel() for p in ref.parameters())
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal(x_shape)
    target = np.arange(x_shape[0]) % 10
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(ref, mode)()
        ours.zero_grad()
        ref.zero_grad()
        lo = nn.cross_entropy(ours(nn.Tensor(x)), target)
        lt = torch.nn.functional.cross_entropy(ref(torch.tensor(x)), torch.tensor(target))
        assert_close(lo.data, lt.detach().numpy(), f"{mode}: forward (loss)")
        lo.backward()
        lt.backward()
        tparams = dict(ref.named_parameters())
        for pname, p in ours.named_parameters():
            assert_close(p.grad, tparams[pname].grad.numpy(), f"{mode}: grad of {pname}")
        tbuf = dict(ref.named_buffers())
        for bname, b in ours.named_buffers():
            assert_close(b, tbuf[bname].numpy(), f"{mode}: buffer {bname}")


def test_residual_add_is_observable_with_both_inputs():
    m = get_model("resnet_small", seed=2)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    rec = nn.record_activations(m, x, names=["layer2.0.add", "layer2.0.bn2",
                                             "layer2.0.shortcut", "layer2.0.relu2"])
    (a, b), out = rec["layer2.0.add"]
    np.testing.assert_array_equal(a, rec["layer2.0.bn2"][1])
    np.testing.assert_array_equal(b, rec["layer2.0.shortcut"][1])
    np.testing.assert_array_equal(out, a + b)
    np.testing.assert_array_equal(rec["layer2.0.relu2"][1], np.maximum(out, 0))
