"""Why KL calibration hurts a ResNet: per-tensor min/max vs KL ranges, and the integer-only
accuracy with KL replaced by min/max on some tensors (docs/ptq.md, section 4).

Usage: python3 tools/kl_ranges.py CHECKPOINT [--limit-test 2000]
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from npquant import train  # noqa: E402
from npquant.convert import convert  # noqa: E402
from npquant.quant import calibrate, choose_qparams, fold_batch_norm  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--limit-test", type=int, default=2000)
    args = p.parse_args(argv)
    meta = json.loads((pathlib.Path(args.checkpoint) / train.METADATA).read_text())
    model = train.load_trained_model(args.checkpoint)
    x_train, _ = train.prepare(meta["dataset"], "train")
    x, y = train.prepare(meta["dataset"], "test", None, args.limit_test)
    folded = fold_batch_norm(model, x_train[:2])
    kl = calibrate(folded, x_train, num_batches=16, observer="kl")
    mm = calibrate(folded, x_train, num_batches=16, observer="minmax")
    print(f"{'tensor':<22} {'min/max range':>18} {'KL range':>18} levels")
    for name, obs in kl.observers.items():
        lo, hi = obs.clip_range()
        ref = mm.observers[name]
        print(f"{name:<22} [{float(ref.min_val):7.3f}, {float(ref.max_val):7.3f}] "
              f"[{float(lo):7.3f}, {float(hi):7.3f}] {obs.levels()}")

    def accuracy(cal) -> float:
        qp = choose_qparams(folded, cal, "tflite")
        im = convert(folded, qp, "tflite", input_shape=tuple(x.shape[1:]))
        return float(np.mean(im.predict(x) == y))

    def mixed(use_minmax) -> object:
        cal = copy.copy(kl)
        cal.observers = {k: (mm.observers[k] if use_minmax(k) else v)
                         for k, v in kl.observers.items()}
        return cal

    signed = {k for k, o in mm.observers.items() if float(o.min_val) < 0}
    print(f"W8A8 integer-only accuracy on {len(y)} test images (tflite):")
    rows = [("min/max everywhere", mm), ("KL everywhere", kl),
            ("KL, min/max for the input", mixed(lambda k: k == "input")),
            ("KL on non-negative tensors only", mixed(lambda k: k in signed)),
            ("KL on two-sided tensors only", mixed(lambda k: k not in signed))]
    for label, cal in rows:
        print(f"  {label:<36} {accuracy(cal):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
