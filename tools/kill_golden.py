"""kill -9 at random moments of a large golden export, N times: after each kill the directory must
be the complete old export or the complete new one, and ``verify_golden`` must pass.

Usage: python3 tools/kill_golden.py [--kills 20] [--images 32] [--seed 0] [--dir DIR]

The parent builds the untrained seed CNN (1x28x28) calibrated on seeded noise; each round forks
a child process that rewrites ``DIR`` with ``overwrite=True``, recording a different ``seed`` in
its manifest so old and new are told apart. The parent times one complete export (a child left
to finish), then for each round sleeps a random fraction (0..1.5) of that time and sends the
child SIGKILL. It prints one line per kill and a JSON summary
on the last line; exit status 1 if any round found a mixed, missing or unverifiable directory.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def build_model(images: int):
    """The untrained seed CNN, calibrated on seeded noise, as a tflite integer model."""
    import numpy as np

    from npquant.convert import convert
    from npquant.models import get_model
    from npquant.quant.ptq import calibrate, choose_qparams

    model = get_model("cnn", seed=0).eval()
    x = np.random.default_rng(0).normal(size=(images, 1, 28, 28)).astype(np.float32)
    cal = calibrate(model, x, num_batches=1, batch_size=images)
    im = convert(model, choose_qparams(model, cal, "tflite"), "tflite", input_shape=(1, 28, 28))
    return im, x


def run_child(im, x, out: pathlib.Path, seed: int, kill_after: float | None):
    """Fork a child that exports with ``seed``; SIGKILL it after ``kill_after`` seconds (None:
    let it finish). Returns (exit status, seconds)."""
    from npquant.golden import write_golden

    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: export, then leave without running the parent's cleanups
        try:
            write_golden(im, x, out, seed=seed, overwrite=True)
        finally:
            os._exit(0)
    if kill_after is not None:
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - t0


def campaign(kills: int, images: int, seed: int, out: pathlib.Path) -> dict:
    import numpy as np

    from npquant.golden import verify_golden

    rng = np.random.default_rng(seed)
    im, x = build_model(images)
    code, export_s = run_child(im, x, out, 1000, None)
    if code != 0:
        raise SystemExit(f"the first export failed with exit code {code}")
    current = 1000
    outcomes = {"old": 0, "new": 0, "bad": 0}
    for i in range(kills):
        new = 1001 + i
        delay = float(rng.uniform(0, 1.5 * export_s))
        code, _ = run_child(im, x, out, new, delay)
        problems = verify_golden(out)
        seed_now = json.loads((out / "manifest.json").read_text())["seed"] \
            if (out / "manifest.json").is_file() else None
        state = ("bad" if problems or seed_now not in (current, new)
                 else "new" if seed_now == new else "old")
        outcomes[state] += 1
        print(f"kill {i + 1:2d} after {delay:.2f} s (exit {code}): {state}"
              + (f" {problems[:3]}" if problems else ""), flush=True)
        if state == "new":
            current = new
    debris = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))
    return {"kills": kills, "images": images, "export_s": round(export_s, 2), **outcomes,
            "debris_after": debris}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=None, help="export directory (default: a temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(args.dir) if args.dir else pathlib.Path(tmp) / "golden"
        summary = campaign(args.kills, args.images, args.seed, out)
    print(json.dumps(summary))
    return 1 if summary["bad"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
