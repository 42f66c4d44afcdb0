"""The seed experiment (Quantization-DNNs): PTQ vs QAT of the CNN with and without BatchNorm at
2, 4, 6, 8 and 16 bits on FashionMNIST, every cell from the integer-only model.

    python3 tools/experiments.py --out runs/experiments            # the full run (long)
    python3 tools/experiments.py --limit-train 512 --limit-test 256 --float-epochs 1 ...  # quick

For each model (``cnn``, ``cnn_bn``): train the float model (``npquant.train``, resumable), then
per bit width ``b``:

* PTQ: fold BatchNorm, calibrate min/max observers (16 batches of 64 training images),
  ``choose_qparams`` with ``QuantConfig(weight_bits, act_bits)``, ``convert``, integer accuracy;
* QAT: ``npquant.quant.qat.run_qat`` from the float checkpoint with the same bit widths, then
  ``convert`` and integer accuracy (and the fake-quant/integer prediction agreement). BatchNorm
  is folded with its running statistics from the first step (``--freeze-bn-after 0``): the float
  model has converged, and folding with each batch's statistics moves the folded weights, and so
  their 2-bit codes, from batch to batch (docs/experiments.md: 61% against 72% at 2 bits).

Bit widths: ``b`` bits for weights and activations (every layer and the model input), except
16, which is W8A16: the integer kernels hold weights as int8. Every finished cell is written to
``out/results.json`` at once, so an interrupted run continues where it stopped. ``--doc`` writes
the markdown table (and ``--plot`` a PNG, if matplotlib is installed).
"""

from __future__ import annotations

import argparse
import fractions
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from npquant import train
from npquant.convert import IntegerModel, convert
from npquant.quant import fold_batch_norm
from npquant.quant.ptq import QuantConfig, calibrate, choose_qparams
from npquant.quant.qat import evaluate_qat, load_qat, run_qat, to_integer_model

BITS = (2, 4, 6, 8, 16)
MODELS = ("cnn", "cnn_bn")
ROW = {("cnn", "ptq"): "cnn_PTQ", ("cnn", "qat"): "cnn_QAT", ("cnn_bn", "ptq"): "cnnBN_PTQ",
       ("cnn_bn", "qat"): "cnnBN_QAT"}
# The seed README's FashionMNIST table (accuracy %, 4/6/8 bits; float CNN 90%, CNN_BN 90%).
SEED = {"cnn_PTQ": {4: 71, 6: 88, 8: 90}, "cnn_QAT": {4: 81, 6: 90, 8: 91},
        "cnnBN_PTQ": {4: 52, 6: 63, 8: 59}, "cnnBN_QAT": {4: 62, 6: 71, 8: 84}}


def quant_config(bits: int) -> QuantConfig:
    """``b`` bits everywhere; 16 is W8A16 (int8 weights in the integer kernels)."""
    return QuantConfig(weight_bits=min(bits, 8), act_bits=bits)


def qat_methods(bits: int) -> tuple[str, str]:
    """(weight_quant, act_quant): LSQ steps at 2 and 4 bits, observed ranges above."""
    return ("lsq", "lsq") if bits <= 4 else ("minmax", "ema")


def ptq_model(float_dir: Path, bits: int, profile: str, x_train, input_shape,
              seed: int) -> IntegerModel:
    """The integer-only model of the PTQ cell at ``bits`` (module docstring)."""
    folded = fold_batch_norm(train.load_trained_model(float_dir))
    cal = calibrate(folded, x_train, num_batches=16, batch_size=64, seed=seed)
    qp = choose_qparams(folded, cal, profile, quant_config(bits))
    return convert(folded, qp, profile, input_shape=tuple(input_shape))


def ptq_cell(float_dir: Path, bits: int, profile: str, x_train, x_test, y_test,
             seed: int) -> dict[str, Any]:
    """Integer-only accuracy of PTQ at ``bits`` (module docstring)."""
    t0 = time.perf_counter()
    im = ptq_model(float_dir, bits, profile, x_train, x_test.shape[1:], seed)
    acc = float(np.mean(im.predict(x_test) == y_test))
    return {"integer_accuracy": acc, "seconds": round(time.perf_counter() - t0, 1)}


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test of two classifiers on the same images: of the ``n = n_a + n_b``
    images exactly one of them gets right (``n_a``: only a, ``n_b``: only b), the count ``n_a``
    is Binomial(n, 1/2) if both are equally accurate, so the two-sided p-value is
    ``p = min(1, 2 sum_{k <= min(n_a, n_b)} C(n, k) / 2^n)`` (exact integer arithmetic)."""
    a_right, b_right = np.asarray(a_right, bool), np.asarray(b_right, bool)
    if a_right.shape != b_right.shape:
        raise ValueError(f"a_right and b_right must have one shape, got {a_right.shape} and "
                         f"{b_right.shape}")
    n_a = int(np.sum(a_right & ~b_right))
    n_b = int(np.sum(b_right & ~a_right))
    n = n_a + n_b
    tail = sum(math.comb(n, k) for k in range(min(n_a, n_b) + 1))
    p = min(1.0, float(fractions.Fraction(2 * tail, 2**n)))
    return {"only_a": n_a, "only_b": n_b, "p_value": p}


def paired(out: Path, bits, *, profile: str, seed: int, data_dir=None, limit_train=None,
           limit_test=None) -> dict[str, Any]:
    """CNN_BN against CNN on the same test images, per method and bit width: the accuracy
    difference (points) and McNemar's exact test of the per-image outcomes (``mcnemar``; ``a``
    is CNN_BN). The cells' integer models are rebuilt: PTQ from the float checkpoints, QAT from
    the QAT checkpoints."""
    x_train, _ = train.prepare("fashion-mnist", "train", data_dir, limit_train)
    x_test, y_test = train.prepare("fashion-mnist", "test", data_dir, limit_test)
    rows = {}
    for b in bits:
        for kind in ("ptq", "qat"):
            right = {}
            for model in MODELS:
                float_dir = out / model / "float"
                if kind == "ptq":
                    im = ptq_model(float_dir, b, profile, x_train, x_test.shape[1:], seed)
                else:
                    im = to_integer_model(load_qat(float_dir, out / model / f"qat{b}"),
                                          x_test.shape[1:])
                right[model] = im.predict(x_test) == y_test
            test = mcnemar(right["cnn_bn"], right["cnn"])
            diff = 100 * float(np.mean(right["cnn_bn"]) - np.mean(right["cnn"]))
            rows[f"{kind}/{b}"] = {"bn_minus_cnn_points": round(diff, 2), **test}
    return rows


def run(out: Path, *, models=MODELS, bits=BITS, profile: str = "tflite-single-rounding",
        float_epochs: int = 15, qat_epochs: int = 1, qat_lr: float = 1e-4,
        qat_optimizer: str = "adam", freeze_bn_after: float = 0.0, seed: int = 0,
        data_dir=None, limit_train=None, limit_test=None, progress: bool = False,
        log=print) -> dict[str, Any]:
    """Run (or continue) every cell; returns the results dict (also in ``out/results.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    settings = {"profile": profile, "float_epochs": float_epochs, "qat_epochs": qat_epochs,
                "qat_lr": qat_lr, "qat_optimizer": qat_optimizer,
                "freeze_bn_after": freeze_bn_after, "seed": seed,
                "limit_train": limit_train, "limit_test": limit_test}
    if results.get("settings", settings) != settings:
        raise ValueError(f"{path} holds results of other settings {results['settings']}; "
                         f"now {settings}: use another --out")
    results["settings"] = settings
    results.setdefault("cells", {})
    results.setdefault("float", {})

    def save() -> None:
        # Merge with what is on disk, so that two runs (e.g. --models cnn and --models cnn_bn
        # at once) each add their cells; written to a temporary file and renamed.
        disk = json.loads(path.read_text()) if path.is_file() else {}
        for key in ("cells", "float"):
            disk.setdefault(key, {}).update(results[key])
            results[key] = disk[key]
        disk["settings"] = settings
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(disk, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)

    x_train, _ = train.prepare("fashion-mnist", "train", data_dir, limit_train)
    x_test, y_test = train.prepare("fashion-mnist", "test", data_dir, limit_test)
    for model in models:
        float_dir = out / model / "float"
        t0 = time.perf_counter()
        meta = train.train(model, "fashion-mnist", float_epochs, seed, float_dir,
                           data_dir=data_dir, schedule="cosine", limit_train=limit_train,
                           limit_test=limit_test, progress=progress, log=log)
        results["float"][model] = {"test_accuracy": meta["test_accuracy"],
                                   "epochs": meta["epoch"]}
        log(f"{model}: float test accuracy {meta['test_accuracy']:.4f} "
            f"({time.perf_counter() - t0:.0f}s)")
        save()
        for b in bits:
            key = f"{ROW[(model, 'ptq')]}/{b}"
            if key not in results["cells"]:
                results["cells"][key] = ptq_cell(float_dir, b, profile, x_train, x_test, y_test,
                                                 seed)
                save()
            log(f"{key}: {results['cells'][key]}")
            key = f"{ROW[(model, 'qat')]}/{b}"
            if key not in results["cells"]:
                wq, aq = qat_methods(b)
                s = run_qat(float_dir, out / model / f"qat{b}", profile=profile,
                            config=quant_config(b), weight_quant=wq, act_quant=aq,
                            epochs=qat_epochs, lr=qat_lr, optimizer=qat_optimizer,
                            freeze_bn_after=freeze_bn_after, seed=seed,
                            data_dir=data_dir, limit_train=limit_train,
                            limit_test=limit_test, progress=progress, log=log)
                results["cells"][key] = {
                    "integer_accuracy": s["integer_accuracy"],
                    "fake_quant_accuracy": s["fake_quant_accuracy"],
                    "prediction_agreement": s["prediction_agreement"],
                    "layers_equal": {r["name"]: r["equal"] for r in s["layers"]},
                    "weight_quant": wq, "act_quant": aq, "seconds": s["seconds"]}
                save()
            log(f"{key}: integer {results['cells'][key]['integer_accuracy']:.4f}")
    return results


def double_rounding(out: Path, model: str, bits: int, data_dir=None, limit_test=None,
                    compare_images: int = 100) -> dict[str, Any]:
    """The QAT model of a cell converted under ``tflite`` (TFLite's reference kernels: double
    rounding) instead of ``tflite-single-rounding`` (same qparams and quantize rules): integer
    accuracy, agreement with the fake-quant predictions, per-layer code agreement."""
    x_test, y_test = train.prepare("fashion-mnist", "test", data_dir, limit_test)
    qat = load_qat(out / model / "float", out / model / f"qat{bits}", profile="tflite")
    r = evaluate_qat(qat, x_test, y_test, compare_images=compare_images)
    return {"integer_accuracy": r["integer_accuracy"],
            "prediction_agreement": r["prediction_agreement"],
            "layers_equal": {row["name"]: row["equal"] for row in r["layers"]},
            "layers_max_abs_diff": {row["name"]: row["max_abs_diff"] for row in r["layers"]}}


def render(results: dict[str, Any], command: str) -> str:
    """The markdown table: ours (integer-only) with the seed's number in parentheses."""
    bits = sorted({int(k.split("/")[1]) for k in results["cells"]})
    head = "| model | " + " | ".join(("W8A16" if b == 16 else f"{b} bits") for b in bits) + " |"
    lines = [head, "|---|" + "---|" * len(bits)]
    for row in ("cnn_PTQ", "cnn_QAT", "cnnBN_PTQ", "cnnBN_QAT"):
        cells = []
        for b in bits:
            c = results["cells"].get(f"{row}/{b}")
            seed = SEED[row].get(b)
            text = "-" if c is None else f"{100 * c['integer_accuracy']:.2f}%"
            cells.append(text + (f" ({seed}%)" if seed is not None else ""))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    if results.get("paired"):
        lines += ["", "CNN_BN minus CNN on the same test images (points; images only CNN_BN / "
                  "only CNN gets right; McNemar's exact two-sided p):", "", head,
                  "|---|" + "---|" * len(bits)]
        for kind in ("ptq", "qat"):
            cells = []
            for b in bits:
                c = results["paired"].get(f"{kind}/{b}")
                cells.append("-" if c is None else
                             f"{c['bn_minus_cnn_points']:+.2f} ({c['only_a']}/{c['only_b']}, "
                             f"p={c['p_value']:.2g})")
            lines.append(f"| {kind.upper()} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nCommand: `{command}`\n"


def plot(results: dict[str, Any], path: Path) -> bool:
    """Accuracy vs bits, one line per row and the seed's numbers dashed; False if matplotlib
    is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in ("cnn_PTQ", "cnn_QAT", "cnnBN_PTQ", "cnnBN_QAT"):
        pts = sorted((int(k.split("/")[1]), 100 * v["integer_accuracy"])
                     for k, v in results["cells"].items() if k.startswith(row + "/"))
        if pts:
            line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=row)
            seed = sorted(SEED[row].items())
            ax.plot([b for b, _ in seed], [a for _, a in seed], marker="x", linestyle="--",
                    color=line.get_color(), alpha=0.6, label=f"{row} (seed)")
    ax.set_xlabel("bits (16: W8A16)")
    ax.set_ylabel("integer-only test accuracy (%)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/experiments")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--bits", nargs="+", type=int, default=list(BITS))
    p.add_argument("--profile", default="tflite-single-rounding")
    p.add_argument("--float-epochs", type=int, default=15)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--qat-optimizer", default="adam", choices=("adam", "sgd"))
    p.add_argument("--freeze-bn-after", type=float, default=0.0,
                   help="QAT epochs of BatchNorm folded with batch statistics before its running "
                        "statistics are used and frozen (default 0: frozen from the start)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--double-rounding", action="store_true",
                   help="also convert every finished QAT cell under tflite (double rounding) and "
                        "store its accuracy and code agreement in results.json")
    p.add_argument("--paired", action="store_true",
                   help="compare CNN_BN with CNN image by image in every finished cell "
                        "(McNemar's exact test) and store it in results.json")
    p.add_argument("--doc", default=None, help="write the markdown table here")
    p.add_argument("--plot", default=None, help="write the PNG plot here (needs matplotlib)")
    args = p.parse_args(argv)
    results = run(Path(args.out), models=args.models, bits=args.bits, profile=args.profile,
                  float_epochs=args.float_epochs, qat_epochs=args.qat_epochs,
                  qat_lr=args.qat_lr, qat_optimizer=args.qat_optimizer,
                  freeze_bn_after=args.freeze_bn_after, seed=args.seed,
                  data_dir=args.data_dir, limit_train=args.limit_train,
                  limit_test=args.limit_test)
    if args.double_rounding:
        for key in sorted(results["cells"]):
            row, b = key.split("/")
            if "QAT" not in row:
                continue
            model = "cnn_bn" if row.startswith("cnnBN") else "cnn"
            results.setdefault("tflite_double_rounding", {})[key] = double_rounding(
                Path(args.out), model, int(b), args.data_dir, args.limit_test)
            print(key, results["tflite_double_rounding"][key])
        path = Path(args.out) / "results.json"
        disk = json.loads(path.read_text())
        disk["tflite_double_rounding"] = results["tflite_double_rounding"]
        path.write_text(json.dumps(disk, indent=1, sort_keys=True) + "\n")
    if args.paired:
        both = sorted({int(k.split("/")[1]) for k in results["cells"]
                       if all(f"{ROW[(m, kind)]}/{k.split('/')[1]}" in results["cells"]
                              for m in MODELS for kind in ("ptq", "qat"))})
        results["paired"] = paired(Path(args.out), both, profile=args.profile, seed=args.seed,
                                   data_dir=args.data_dir, limit_train=args.limit_train,
                                   limit_test=args.limit_test)
        path = Path(args.out) / "results.json"
        disk = json.loads(path.read_text())
        disk["paired"] = results["paired"]
        path.write_text(json.dumps(disk, indent=1, sort_keys=True) + "\n")
    table = render(results, "python3 tools/experiments.py " + " ".join(argv or sys.argv[1:]))
    print(table)
    if args.doc:
        Path(args.doc).write_text(table)
    if args.plot and not plot(results, Path(args.plot)):
        print("matplotlib is not installed: no plot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
