"""Benchmark: one training epoch and test-set inference of the seed CNN, npquant vs PyTorch.

Both run the same model (same initial weights, same batch order, Adam lr 1e-3, float32) on
FashionMNIST in one process; PyTorch uses ``torch.set_num_threads(threads)``. Prints a table
of wall times and the npquant/PyTorch ratio.

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

from npquant import nn  # noqa: E402
from npquant.data import batches  # noqa: E402
from npquant.models import get_model  # noqa: E402
from npquant.train import prepare  # noqa: E402


def torch_cnn(torch, ours: nn.Module):
    """The same CNN in PyTorch with npquant's initial weights."""
    tn = torch.nn
    ref = tn.Sequential(tn.Conv2d(1, 40, 3), tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(40, 40, 3),
                        tn.ReLU(), tn.MaxPool2d(2), tn.Flatten(), tn.Linear(1000, 10))
    with torch.no_grad():
        for (_, p), (_, tp) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
            tp.copy_(torch.from_numpy(p.data))
    return ref


def epoch_npquant(model, x, y, order_batches):
    opt = nn.Adam(model.parameters(), 1e-3)
    model.train()
    for idx in order_batches:
        loss = nn.cross_entropy(model(nn.Tensor(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.data)


def epoch_torch(torch, model, x, y, order_batches):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for idx in order_batches:
        it = torch.from_numpy(idx)
        loss = torch.nn.functional.cross_entropy(model(xt[it]), yt[it])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=None, help="training images (default: all)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--profile", action="store_true", help="cProfile the npquant epoch")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    x, y = prepare("fashion-mnist", "train", args.data_dir, args.limit)
    xt, _ = prepare("fashion-mnist", "test", args.data_dir)
    order = list(batches(len(y), args.batch_size, rng=np.random.default_rng(0)))
    ours = get_model("cnn", seed=0)
    ref = torch_cnn(torch, ours)
    # warm-up: numba compilation and BLAS/torch first-call costs are not part of an epoch
    epoch_npquant(get_model("cnn", seed=0), x, y, order[:2])
    epoch_torch(torch, torch_cnn(torch, ours), x, y, order[:2])

    rows = []
    prof = cProfile.Profile() if args.profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    loss_n = epoch_npquant(ours, x, y, order)
    if prof:
        prof.disable()
    t_n = time.perf_counter() - t
    t = time.perf_counter()
    loss_t = epoch_torch(torch, ref, x, y, order)
    t_t = time.perf_counter() - t
    rows.append((f"train epoch ({len(y)} img, bs {args.batch_size})", t_n, t_t))
    t = time.perf_counter()
    infer_npquant(ours, xt, 1000)
    i_n = time.perf_counter() - t
    t = time.perf_counter()
    infer_torch(torch, ref, xt, 1000)
    i_t = time.perf_counter() - t
    rows.append((f"inference ({len(xt)} img, bs 1000)", i_n, i_t))

    print(f"torch {torch.__version__}, torch threads {args.threads}, numpy {np.__version__}")
    print(f"{'stage':40s} {'npquant s':>10s} {'torch s':>10s} {'ratio':>7s}")
    for name, a, b in rows:
        print(f"{name:40s} {a:10.2f} {b:10.2f} {a / b:7.2f}")
    print(f"train throughput: npquant {len(y) / t_n:.0f} img/s, torch {len(y) / t_t:.0f} img/s; "
          f"inference: npquant {len(xt) / i_n:.0f} img/s, torch {len(xt) / i_t:.0f} img/s")
    print(f"last-batch loss: npquant {loss_n:.4f}, torch {loss_t:.4f}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
