"""Optimizers against torch.optim (float64, several steps) and schedules against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import require
from nn_helpers import assert_close

from npquant import nn

SGD_CASES = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "momentum_dampening": {"momentum": 0.9, "dampening": 0.3},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "weight_decay": {"weight_decay": 0.05},
    "all": {"momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
}
ADAM_CASES = {
    "adam": ("Adam", {}), "adam_l2": ("Adam", {"weight_decay": 0.1}),
    "adam_betas": ("Adam", {"betas": (0.5, 0.9), "eps": 1e-6}),
    "adamw": ("AdamW", {}), "adamw_wd": ("AdamW", {"weight_decay": 0.2}),
}


def _run_steps(torch, make_ours, make_ref, steps=4):
    """Same start values and same gradients each step; compare parameters after every step
    and the optimizer state after a state_dict round trip."""
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours_p = [nn.Parameter(a.copy()) for a in start]
    ref_p = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    ours, ref = make_ours(ours_p), make_ref(ref_p)
    for step in range(steps):
        grads = [rng.standard_normal(a.shape) for a in start]
        for p, tp, g in zip(ours_p, ref_p, grads, strict=True):
            p.grad, tp.grad = g.copy(), torch.tensor(g.copy())
        ours.step()
        ref.step()
        for i, (p, tp) in enumerate(zip(ours_p, ref_p, strict=True)):
            assert_close(p.data, tp.detach().numpy(), f"step {step}: param {i}")
    # state survives a round trip through plain arrays
    again = make_ours(ours_p)
    again.load_state_dict({k: np.array(v) for k, v in ours.state_dict().items()})
    g = [rng.standard_normal(a.shape) for a in start]
    before = [p.data.copy() for p in ours_p]
    for p, gg in zip(ours_p, g, strict=True):
        p.grad = gg
    ours.step()
    after_ours = [p.data.copy() for p in ours_p]
    for p, b, gg in zip(ours_p, before, g, strict=True):
        p.data, p.grad = b.copy(), gg
    again.step()
    for i, (p, a) in enumerate(zip(ours_p, after_ours, strict=True)):
        np.testing.assert_array_equal(p.data, a, err_msg=f"resumed step: param {i}")


@pytest.mark.oracle
@pytest.mark.parametrize("kw", SGD_CASES.values(), ids=SGD_CASES.keys())
def test_sgd_matches_torch(kw):
    torch = require("torch")
    _run_steps(torch, lambda ps: nn.SGD(ps, lr=0.1, **kw),
               lambda ps: torch.optim.SGD(ps, lr=0.1, **kw))


@pytest.mark.oracle
@pytest.mark.parametrize("case", ADAM_CASES.values(), ids=ADAM_CASES.keys())
def test_adam_matches_torch(case):
    torch = require("torch")
    name, kw = case
    _run_steps(torch, lambda ps: getattr(nn, name)(ps, lr=0.01, **kw),
               lambda ps: getattr(torch.optim, name)(ps, lr=0.01, foreach=False, **kw))


def test_optimizer_skips_parameters_without_grad():
    p, q = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    p.grad = np.ones(2)
    nn.SGD([p, q], lr=0.5).step()
    np.testing.assert_array_equal(p.data, [0.5, 0.5])
    np.testing.assert_array_equal(q.data, [1.0, 1.0])


@pytest.mark.parametrize("call, match", [
    (lambda: nn.SGD([], lr=0.1), "empty parameter list"),
    (lambda: nn.SGD([nn.Parameter(np.ones(1))], lr=-1.0), "lr=-1.0 must be"),
    (lambda: nn.SGD([nn.Parameter(np.ones(1))], lr=0.1, nesterov=True), "Nesterov"),
    (lambda: nn.Adam([nn.Parameter(np.ones(1))], betas=(1.0, 0.9)), "betas"),
], ids=["empty", "negative_lr", "nesterov_without_momentum", "beta_one"])
def test_optimizer_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_schedules_closed_forms():
    assert [nn.StepLR(1.0, 2, 0.5).lr_at(e) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    cos = nn.CosineLR(1.0, 4, eta_min=0.2)
    assert cos.lr_at(0) == 1.0 and cos.lr_at(4) == pytest.approx(0.2) and cos.lr_at(9) == 0.2
    assert cos.lr_at(2) == pytest.approx(0.2 + 0.8 * (1 + math.cos(math.pi / 2)) / 2)
    warm = nn.WarmupLR(nn.StepLR(0.3, 1, 0.1), warmup=2)
    assert [round(warm.lr_at(e), 12) for e in range(4)] == [0.1, 0.2, 0.3, 0.03]


def test_cosine_matches_torch_scheduler():
    torch = require("torch")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=0.01)
    ours = nn.CosineLR(0.4, 5, eta_min=0.01)
    for epoch in range(5):
        assert ours.lr_at(epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), epoch
        opt.step()
        sched.step()
