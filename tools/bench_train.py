"""Benchmark: one training epoch and test-set inference of the seed CNN and CNN_BN, npquant vs
PyTorch, interleaved step by step in one process.

Both run the same model (same initial weights, same batch order, Adam lr 1e-3, float32) on
FashionMNIST; PyTorch uses ``torch.set_num_threads(threads)``. The two trainings advance in
lockstep — one npquant step, then the same step in PyTorch, each timed alone — so that a busy
neighbour on a shared machine slows both alike; the epoch time is the sum of the step times,
also shown as the median step time times the number of steps (robust to bursts of load).
Inference (bs 1000) alternates the same way, best of ``--repeat``. Prints the wall times and
the npquant/PyTorch ratio (< 1: npquant is faster).

    python3 tools/bench_train.py                       # full epoch (60000 images), batch 64
    python3 tools/bench_train.py --limit 6400 --profile  # a tenth, plus a cProfile of npquant
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))  # bench_model's torch twin

from npquant import nn  # noqa: E402
from npquant.data import batches  # noqa: E402
from npquant.models import get_model  # noqa: E402
from npquant.train import prepare  # noqa: E402


def torch_twin(torch, ours: nn.Module, example: np.ndarray):
    """The same model in PyTorch with npquant's current weights (``bench_model``'s builder)."""
    from bench_model import torch_float_model

    from npquant.quant.chain import trace_graph

    return torch_float_model(torch, trace_graph(ours, example))


def npquant_stepper(model, x, y):
    """One Adam step on the batch ``idx`` per call; returns the loss."""
    opt = nn.Adam(model.parameters(), 1e-3)
    model.train()

    def step(idx):
        loss = nn.cross_entropy(model(nn.Tensor(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.data)
    return step


def torch_stepper(torch, model, x, y):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step(idx):
        it = torch.from_numpy(idx)
        loss = torch.nn.functional.cross_entropy(model(xt[it]), yt[it])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def infer_npquant(model, x, bs):
    model.eval()
    with nn.no_grad():
        for s in range(0, len(x), bs):
            model(nn.Tensor(x[s:s + bs]))


def infer_torch(torch, model, x, bs):
    model.eval()
    with torch.no_grad():
        for s in range(0, len(x), bs):
            model(torch.from_numpy(x[s:s + bs]))


def timed(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def bench_model(name, torch, x, y, xt, order, repeat, prof):
    """(train npquant s, train torch s, infer npquant s, infer torch s, losses) for one model."""
    ours = get_model(name, seed=0)
    ref = torch_twin(torch, ours, x[:1])
    # warm-up on copies: numba compilation and BLAS/torch first-call costs are not timed
    warm = get_model(name, seed=0)
    for step in (npquant_stepper(warm, x, y), torch_stepper(torch, torch_twin(torch, warm, x[:1]),
                                                            x, y)):
        for idx in order[:2]:
            step(idx)
    step_n, step_t = npquant_stepper(ours, x, y), torch_stepper(torch, ref, x, y)
    times_n, times_t = [], []
    for idx in order:
        if prof:
            prof.enable()
        dt, loss_n = timed(step_n, idx)
        if prof:
            prof.disable()
        times_n.append(dt)
        dt, loss_t = timed(step_t, idx)
        times_t.append(dt)
    i_n = i_t = float("inf")
    for _ in range(repeat):
        i_n = min(i_n, timed(infer_npquant, ours, xt, 1000)[0])
        i_t = min(i_t, timed(infer_torch, torch, ref, xt, 1000)[0])
    return times_n, times_t, i_n, i_t, loss_n, loss_t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cnn,cnn_bn")
    p.add_argument("--limit", type=int, default=None, help="training images (default: all)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--repeat", type=int, default=3, help="inference rounds (best is kept)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--profile", action="store_true", help="cProfile the npquant steps")
    args = p.parse_args(argv)
    import torch
    from bench_model import cpu_name

    torch.set_num_threads(args.threads)
    x, y = prepare("fashion-mnist", "train", args.data_dir, args.limit)
    xt, _ = prepare("fashion-mnist", "test", args.data_dir)
    order = list(batches(len(y), args.batch_size, rng=np.random.default_rng(0)))
    prof = cProfile.Profile() if args.profile else None
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, torch threads {args.threads}, "
          f"numpy {np.__version__}")
    print(f"{'model':8s} {'stage':36s} {'npquant s':>10s} {'torch s':>10s} {'ratio':>7s}")
    for name in args.models.split(","):
        times_n, times_t, i_n, i_t, loss_n, loss_t = bench_model(name, torch, x, y, xt, order,
                                                                 args.repeat, prof)
        t_n, t_t = sum(times_n), sum(times_t)
        # the median step x steps: an epoch without the bursts a shared machine adds
        m_n, m_t = (float(np.median(t)) * len(t) for t in (times_n, times_t))
        for stage, a, b in ((f"train epoch ({len(y)} img, bs {args.batch_size})", t_n, t_t),
                            ("  (median step x steps)", m_n, m_t),
                            (f"inference ({len(xt)} img, bs 1000)", i_n, i_t)):
            print(f"{name:8s} {stage:36s} {a:10.2f} {b:10.2f} {a / b:7.2f}")
        print(f"{name:8s} train {len(y) / t_n:.0f} img/s vs torch {len(y) / t_t:.0f}; inference "
              f"{len(xt) / i_n:.0f} vs {len(xt) / i_t:.0f} img/s; last-batch loss "
              f"{loss_n:.4f} vs {loss_t:.4f}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(14)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
