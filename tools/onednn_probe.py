"""Probe PyTorch's x86-engine conv (oneDNN) where npquant's profile ``pytorch-x86`` is decided.

Two measurements behind docs/framework_facts.md ("The x86 engine's conv", "oneDNN reads input
it should not"), on the CPU at hand (the figures there: AMD EPYC Zen 4, AVX-512 VNNI):

    python3 tools/onednn_probe.py shapes --cases 3000 --seed 1
    python3 tools/onednn_probe.py ties --cases 100 --seed 0 [--shape brdgmm_dw]

``shapes`` draws random depthwise convolutions (channel multiplier 1..3, kernels up to 4x4,
strides up to 3, dilations up to 2, padding) with small integers and unit scales, so the output
is the exact sum plus 128 unless the kernel reads the wrong input, and tallies the failures by
multiplier and output width / height. ``ties`` builds cases whose output is decided by the order
of oneDNN's float32 steps (a random accumulator and float bias where the candidate orders round
apart) and counts how often the engine agrees with each order.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from npquant.integer import conv2d  # noqa: E402
from npquant.interop.torch import run_torch_op  # noqa: E402
from npquant.requant import onednn_scales  # noqa: E402

f32 = np.float32


def torch_conv(x, w, p: dict) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run_torch_op("conv2d", [x], p, engine="x86").astype(int)


def shapes(cases: int, seed: int) -> None:
    """Random depthwise shapes against the exact sums (unit scales, output zero point 128)."""
    rng = np.random.default_rng(seed)
    tally: dict[str, list[int]] = {}
    for _ in range(cases):
        c, m = int(rng.integers(1, 11)), int(rng.integers(1, 4))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
        h = int(rng.integers(max(1, (kh - 1) * dh + 1 - 2 * ph), 11))
        wd = int(rng.integers(max(1, (kw - 1) * dw + 1 - 2 * pw), 11))
        zx = int(rng.integers(0, 256))
        x = rng.integers(max(0, zx - 6), min(255, zx + 6) + 1,
                         (int(rng.integers(1, 3)), c, h, wd)).astype(np.uint8)
        w = rng.integers(-3, 4, (c * m, 1, kh, kw)).astype(np.int8)
        geo = dict(stride=(sh, sw), dilation=(dh, dw), padding=(ph, pw), groups=c)
        got = torch_conv(x, w, dict(w=w, x_scale=1.0, x_zero_point=zx, w_scale=1.0, y_scale=1.0,
                                    y_zero_point=128, **geo))
        want = conv2d(x, w, None, x_zero_point=zx, out_zero_point=128, x_scale=1.0,
                      w_scale=1.0, out_scale=1.0, profile="pytorch-x86", out_dtype=np.uint8,
                      **geo).astype(int)
        oh, ow = got.shape[2:]
        key = (f"multiplier {'1' if m == 1 else '>1'}, "
               + ("output one pixel wide" if ow == 1 else "one pixel tall" if oh == 1
                  else "both sides > 1"))
        t = tally.setdefault(key, [0, 0])
        t[0] += 1
        t[1] += int(not np.array_equal(got, want))
    for key in sorted(tally):
        print(f"{key:<45} {tally[key][0]:5d} cases, {tally[key][1]:4d} wrong")


def orders() -> dict:
    """The candidate orders of oneDNN's float32 steps (float32 numpy arrays: one rounding each)."""
    def one_at_a_time(acc, src, wei, b, d, z):  # pytorch-x86
        return np.rint((((acc.astype(f32) * src) * wei + b) * d) + f32(z))

    def product_first(acc, src, wei, b, d, z):
        return np.rint(((acc.astype(f32) * f32(src * wei) + b) * d) + f32(z))

    def fused_zero_point(acc, src, wei, b, d, z):
        v = (acc.astype(f32) * src) * wei + b
        return np.rint((v.astype(np.float64) * np.float64(d) + z).astype(f32))

    def zero_point_after(acc, src, wei, b, d, z):
        return np.rint(((acc.astype(f32) * src) * wei + b) * d) + z

    return {"src, wei one at a time (pytorch-x86)": one_at_a_time,
            "f32(src wei) first": product_first, "fma(v, D, Z)": fused_zero_point,
            "zero point after rounding": zero_point_after}


# Shapes that oneDNN runs on its different int8 conv kernels (ONEDNN_VERBOSE=1 names them):
# (input NCHW, weights OIHW, groups, stride, dilation, padding)
SHAPES = {
    "brg_conv_fwd": ((1, 8, 2, 10), (4, 8, 2, 1), 1, (1, 1), (1, 1), (0, 0)),
    "brdgmm_dw": ((1, 8, 2, 10), (8, 1, 2, 1), 8, (1, 1), (1, 1), (0, 0)),
    "jit_int8": ((2, 3, 3, 7), (3, 1, 2, 4), 3, (1, 1), (1, 2), (0, 0)),
    "gemm": ((1, 2, 5, 2), (4, 1, 2, 2), 2, (2, 1), (2, 1), (1, 0)),
}


def ties(cases: int, seed: int, shape: str) -> None:
    """Near ties that tell the orders apart: how often the engine equals each, on every output.

    The input is ``Zx + k`` everywhere and one tap of each filter holds ``w`` (the others 0), so
    every output whose tap lies in the image has the accumulator ``k w`` (padded taps add 0)."""
    rng = np.random.default_rng(seed)
    ks, ws = np.arange(-128, 128).reshape(-1, 1), np.arange(-127, 128).reshape(1, -1)
    rules = orders()
    agree = dict.fromkeys(rules, 0)
    x_shape, w_shape, groups, stride, dilation, padding = SHAPES[shape]
    done = 0
    while done < cases:
        s_x, s_w = float(f32(rng.uniform(0.01, 2))), float(f32(rng.uniform(0.001, 0.5)))
        s_y, z_y = float(f32(rng.uniform(0.5, 80))), int(rng.choice([0, 1, 77, 128, 200]))
        b = int(rng.integers(-5000, 5000)) if rng.random() < 0.5 else 0
        bias = f32(b * np.float64(f32(f32(s_x) * f32(s_w))))  # the float bias torch holds
        src, wei, d = onednn_scales(s_x, s_w, s_y)
        outs = {k: np.clip(r(ks * ws, src, wei[0], bias, d, z_y), 0, 255) for k, r in rules.items()}
        stack = np.stack(list(outs.values()))
        apart = np.argwhere((stack != stack[0]).any(axis=0))
        if not len(apart):
            continue
        i, j = apart[rng.integers(len(apart))]
        z_x = 128
        x = np.full(x_shape, z_x + int(ks[i, 0]), np.uint8)
        w = np.zeros(w_shape, np.int8)
        w[:, 0, 0, 0] = int(ws[0, j])
        geo = dict(stride=stride, dilation=dilation, padding=padding, groups=groups)
        p = dict(w=w, x_scale=s_x, x_zero_point=z_x, w_scale=s_w, y_scale=s_y, y_zero_point=z_y,
                 **geo)
        if b:
            p["bias"] = np.full(w_shape[0], bias, np.float32)
        got = torch_conv(x, w, p)
        acc = conv2d(x, w, None, x_zero_point=z_x, out_zero_point=z_y, x_scale=s_x, w_scale=s_w,
                     out_scale=s_y, profile="pytorch-x86", out_dtype=np.uint8,
                     return_accumulators=True, **geo).acc
        done += 1
        for k, r in rules.items():
            agree[k] += np.array_equal(got, np.clip(r(acc, src, wei[0], bias, d, z_y), 0, 255))
    for k, v in agree.items():
        print(f"{shape}: {k:<40} {v}/{done}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["shapes", "ties"])
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="brg_conv_fwd",
                    help="ties: a shape that runs this oneDNN kernel")
    a = ap.parse_args()
    if a.what == "shapes":
        shapes(a.cases, a.seed)
    else:
        ties(a.cases, a.seed, a.shape)


if __name__ == "__main__":
    main()
