"""The main job, ``npquant pipeline``: train -> float accuracy -> PTQ -> integer-only accuracy per
profile -> golden data, with one summary (docs/pipeline.md).

Stages (each prints a one-line header ``[k/5] ...``):

1. train the float model with ``npquant.train.train`` (resumes a finished or interrupted run in
   ``out_dir/train``), Adam with a cosine schedule;
2. float test accuracy of the trained model;
3. fold BatchNorm into the convs and calibrate activation observers on ``calib_batches`` seeded
   batches of training images;
4. per profile: choose qparams, convert to the integer model, integer-only test accuracy, and
   the rate at which the profiles (and float) agree on the predicted class;
5. golden data of the first ``golden_batch`` test images under the first profile.

Results go to ``out_dir/summary.json`` (and ``out_dir/qparams/<profile>.json``,
``out_dir/golden/<profile>/``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from npquant import __version__, train
from npquant.convert import IntegerModel, convert
from npquant.data import DATASETS
from npquant.golden import write_golden
from npquant.models import list_models
from npquant.profiles import PROFILES, get_profile
from npquant.quant import fold_batch_norm
from npquant.quant.ptq import calibrate, choose_qparams

DEFAULT_PROFILES = ("tflite", "tflite-single-rounding", "onnxruntime", "pytorch-fbgemm", "pow2")
DEFAULT_EPOCHS = 8  # docs/pipeline.md: ~90% on FashionMNIST for the seed CNN (Adam, cosine)
STAGES = 5


def run_pipeline(model: str = "cnn", dataset: str = "fashion-mnist", epochs: int = DEFAULT_EPOCHS,
                 seed: int = 0, out_dir: str | Path = "runs/pipeline",
                 data_dir: str | Path | None = None,
                 profiles: Sequence[str] = DEFAULT_PROFILES, calib_batches: int = 16,
                 calib_batch_size: int = 64, limit_train: int | None = None,
                 limit_test: int | None = None, batch_size: int = 64,
                 schedule: str = "cosine", golden_batch: int = 8, eval_batch_size: int = 500,
                 progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the five stages (module docstring) and return the summary dict (also written to
    ``out_dir/summary.json``).

    ``profiles``: profile names (``npquant profiles``); the first one gets the golden data.
    ``limit_train``/``limit_test`` keep the first N examples (quick runs and tests).
    """
    if model not in list_models():
        raise ValueError(f"unknown model {model!r}; known models: {list_models()}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {sorted(DATASETS)}")
    profiles = list(profiles)
    if not profiles:
        raise ValueError("profiles must name at least one profile")
    for p in profiles:
        get_profile(p)  # unknown names fail here, before any training
    if len(set(profiles)) != len(profiles):
        raise ValueError(f"profiles has duplicates: {profiles}")
    for name, v in (("epochs", epochs), ("calib_batches", calib_batches),
                    ("golden_batch", golden_batch), ("eval_batch_size", eval_batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    # the dataset is read and normalized once; every stage below takes these arrays
    x_test, y_test = train.prepare(dataset, "test", data_dir, limit_test)
    _check_model_converts(model, x_test[:1])
    x_train, y_train = train.prepare(dataset, "train", data_dir, limit_train)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    def header(k: int, text: str) -> float:
        log(f"[{k}/{STAGES}] {text}")
        return time.perf_counter()

    # 1. train (or resume) ------------------------------------------------------------------
    t0 = header(1, f"train {model} on {dataset} for {epochs} epochs (seed {seed}, Adam, "
                   f"{schedule} schedule) -> {out / 'train'}")
    meta = train.train(model, dataset, epochs, seed, out / "train", batch_size=batch_size,
                       schedule=schedule, limit_train=limit_train, limit_test=limit_test,
                       progress=progress, log=log, data=((x_train, y_train), (x_test, y_test)))
    float_model = train.load_trained_model(out / "train")
    timings["train"] = time.perf_counter() - t0

    # 2. float accuracy ---------------------------------------------------------------------
    t0 = header(2, "float test accuracy")
    float_eval = train.evaluate(float_model, (x_test, y_test))
    folded = fold_batch_norm(float_model, x_test[:2])
    float_pred = _float_predictions(folded, x_test, eval_batch_size)
    log(f"      float accuracy {float_eval['accuracy']:.4f} on {len(y_test)} test images")
    timings["float_eval"] = time.perf_counter() - t0

    # 3. PTQ calibration --------------------------------------------------------------------
    t0 = header(3, f"PTQ: fold BatchNorm, calibrate observers on {calib_batches} batches of "
                   f"{calib_batch_size} training images (seed {seed})")
    cal = calibrate(folded, x_train, num_batches=calib_batches, batch_size=calib_batch_size,
                    seed=seed)
    timings["calibrate"] = time.perf_counter() - t0

    # 4. convert + integer accuracy ---------------------------------------------------------
    t0 = header(4, f"convert to integer-only models and evaluate: {', '.join(profiles)}")
    (out / "qparams").mkdir(exist_ok=True)
    int_models: dict[str, IntegerModel] = {}
    preds: dict[str, np.ndarray] = {}
    int_results: dict[str, dict[str, Any]] = {}
    files: list[str] = []
    input_shape = tuple(int(v) for v in x_test.shape[1:])
    for p in profiles:
        qp = choose_qparams(folded, cal, p)
        qpath = out / "qparams" / f"{p}.json"
        qpath.write_text(json.dumps(qp.to_dict(), indent=1) + "\n")
        files.append(str(qpath))
        im = convert(folded, qp, p, input_shape=input_shape)
        int_models[p] = im
        preds[p] = im.predict(x_test, eval_batch_size,
                              progress=_bar(f"int8 {p}") if progress else None)
        acc = float(np.mean(preds[p] == y_test))
        int_results[p] = {"test_accuracy": acc,
                          "agreement_with_float": float(np.mean(preds[p] == float_pred)),
                          "profile_version": get_profile(p).version}
        log(f"      {p:<24} int8 accuracy {acc:.4f}  (argmax agrees with float on "
            f"{int_results[p]['agreement_with_float']:.4f})")
    agreement = {f"{a} vs {b}": float(np.mean(preds[a] == preds[b]))
                 for i, a in enumerate(profiles) for b in profiles[i + 1:]}
    timings["integer_eval"] = time.perf_counter() - t0

    # 5. golden data ------------------------------------------------------------------------
    first = profiles[0]
    gdir = out / "golden" / first
    t0 = header(5, f"golden data: first {golden_batch} test images under {first} -> {gdir}")
    n = min(golden_batch, len(y_test))
    manifest = write_golden(int_models[first], x_test[:n], gdir, seed=seed, labels=y_test[:n],
                            overwrite=True,
                            extra={"model": model, "dataset": dataset, "epochs": epochs,
                                   "images": f"first {n} of the {dataset} test split"})
    golden_files = sorted(manifest["sha256"]) + ["manifest.json"]
    files += [str(gdir / f) for f in golden_files]
    timings["golden"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    summary = {
        "npquant_version": __version__, "model": model, "dataset": dataset, "epochs": epochs,
        "seed": seed, "schedule": schedule, "limit_train": limit_train, "limit_test": limit_test,
        "n_test": int(len(y_test)), "calib_batches": cal.num_batches,
        "calib_batch_size": calib_batch_size, "trained_epochs": meta.get("epoch"),
        "float": {"test_accuracy": float(float_eval["accuracy"]),
                  "test_loss": float(float_eval["loss"])},
        "int8": int_results, "agreement_between_profiles": agreement,
        "golden": {"dir": str(gdir), "profile": first, "images": n,
                   "files": len(golden_files)},
        "files_written": len(files) + 1, "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(format_summary(summary, out))
    return summary


def _check_model_converts(model: str, image: np.ndarray) -> None:
    """Refuse, before training, a model the converter cannot take (``check_convertible`` on the
    untrained model and the shape of one ``(1, C, H, W)`` image of the dataset)."""
    from npquant.convert import check_convertible
    from npquant.models import get_model

    net = get_model(model, **train._model_kwargs(model, image))
    try:
        check_convertible(net, tuple(image.shape[1:]))
    except ValueError as exc:
        raise ValueError(f"model {model!r} cannot be converted to an integer model, so the "
                         f"pipeline refuses it before training: {exc}") from None


def format_summary(summary: dict[str, Any], out: Path | str) -> str:
    """The final table: float accuracy, int8 accuracy per profile, files written."""
    rows = [("float32", summary["float"]["test_accuracy"], "-")]
    rows += [(f"int8 {p}", r["test_accuracy"], f"{r['agreement_with_float']:.4f}")
             for p, r in summary["int8"].items()]
    lines = ["", f"summary ({summary['model']} on {summary['dataset']}, {summary['n_test']} "
                 f"test images, seed {summary['seed']})",
             f"  {'model':<32} {'accuracy':>9} {'argmax = float':>15}"]
    lines += [f"  {name:<32} {acc:>9.4f} {agree:>15}" for name, acc, agree in rows]
    if summary["agreement_between_profiles"]:
        worst = min(summary["agreement_between_profiles"].items(), key=lambda kv: kv[1])
        lines.append(f"  lowest argmax agreement between profiles: {worst[0]} {worst[1]:.4f}")
    g = summary["golden"]
    lines.append(f"  golden data: {g['files']} files in {g['dir']} ({g['profile']}, "
                 f"{g['images']} images)")
    lines.append(f"  files written: {summary['files_written']} "
                 f"(summary: {Path(out) / 'summary.json'}); "
                 f"total {summary['timings_s']['total']:.0f}s")
    return "\n".join(lines)


def _float_predictions(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    from npquant import nn

    model.eval()
    with nn.no_grad():
        return np.concatenate([model(nn.Tensor(x[s:s + batch_size])).data.argmax(axis=1)
                               for s in range(0, len(x), batch_size)])


def _bar(desc: str):
    def wrap(it, total):
        from tqdm import tqdm

        return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True)
    return wrap


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``npquant pipeline`` (pass an existing sub-parser to fill it)."""
    p = parser or argparse.ArgumentParser(
        prog="npquant pipeline",
        description="Train, quantize (PTQ), run the integer-only model per profile, write golden "
                    "data.")
    p.add_argument("--model", default="cnn", choices=list_models())
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/pipeline", help="output directory")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: per dataset)")
    p.add_argument("--profile", action="append", choices=sorted(PROFILES), dest="profiles",
                   help="a profile to evaluate (repeatable; the first gets the golden data); "
                        f"default: {' '.join(DEFAULT_PROFILES)}")
    p.add_argument("--calib-batches", type=int, default=16)
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``npquant pipeline [--model cnn] [--epochs N] [--seed S] [--out DIR] [--data-dir D]
    [--profile P ...] [--limit-train N] [--limit-test N] [--no-progress]``."""
    args = build_parser().parse_args(argv)
    run_pipeline(args.model, args.dataset, args.epochs, args.seed, args.out,
                 data_dir=args.data_dir, profiles=args.profiles or DEFAULT_PROFILES,
                 calib_batches=args.calib_batches, limit_train=args.limit_train,
                 limit_test=args.limit_test, progress=not args.no_progress)
    return 0


if __name__ == "__main__":  # through the CLI: bad input is one line and exit code 2
    import sys

    from npquant import cli

    raise SystemExit(cli.main(["pipeline", *sys.argv[1:]]))
