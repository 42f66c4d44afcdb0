"""``npquant ptq`` and ``npquant eval``: post-training quantization of a trained checkpoint and
evaluation of its float, fake-quantized and integer-only forms.

The library entry points are ``quantize_model`` (fold BatchNorm -> calibrate -> choose qparams
-> optional bias correction -> convert; returns every intermediate as a ``PTQResult``) and
``evaluate`` (accuracy, per-class precision/recall/F1 and argmax agreement of the chosen forms).

    npquant ptq runs/train --bits-w 4 --bits-a 8 --observer percentile --profile tflite
    npquant eval runs/train --mode integer --bits-w 8 --observer histogram
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npquant import nn, train
from npquant.convert import IntegerModel, convert
from npquant.metrics import per_class_report
from npquant.profiles import PROFILES, get_profile
from npquant.qparams import SCHEMES
from npquant.quant import QuantConfig, fold_batch_norm
from npquant.quant.bias_correction import correct_bias
from npquant.quant.ptq import Calibration, ModelQParams, calibrate, choose_qparams
from npquant.quant.registry import ACTIVATION_OBSERVERS, WEIGHT_OBSERVERS
from npquant.quant.simulate import FakeQuantModel

MODES = ("float", "fake-quant", "integer")


@dataclass
class PTQResult:
    """Everything one PTQ run made: the BN-folded float model, the model converted (folded and,
    with bias correction, corrected), the calibration, qparams, integer and fake-quant models."""

    folded: nn.Module
    model: nn.Module
    calibration: Calibration
    qparams: ModelQParams
    integer: IntegerModel
    fake_quant: FakeQuantModel
    config: QuantConfig
    profile: str
    meta: dict[str, Any] = field(default_factory=dict)


def quantize_model(float_model: nn.Module, calib_images: np.ndarray, *, profile: str = "tflite",
                   config: QuantConfig | None = None, observer: str = "minmax",
                   observer_options: dict[str, Any] | None = None, calib_batches: int = 16,
                   calib_batch_size: int = 64, seed: int = 0, bias_correction: bool = False,
                   calibration: Calibration | None = None, folded: nn.Module | None = None
                   ) -> PTQResult:
    """PTQ of ``float_model`` (module docstring). ``calibration``/``folded`` from an earlier
    run with the same observer can be passed to skip those steps (one calibration serves every
    bit width and profile)."""
    cfg = config or QuantConfig()
    input_shape = tuple(int(v) for v in calib_images.shape[1:])
    if folded is None:
        folded = fold_batch_norm(float_model, calib_images[:2])
    if calibration is None:
        calibration = calibrate(folded, calib_images, num_batches=calib_batches,
                                batch_size=calib_batch_size, seed=seed, observer=observer,
                                observer_options=observer_options)
    qp = choose_qparams(folded, calibration, profile, cfg)
    model = correct_bias(folded, calibration, qp, profile) if bias_correction else folded
    integer = convert(model, qp, profile, input_shape=input_shape)
    fake = FakeQuantModel(model, qp, profile, input_shape=input_shape)
    meta = {"profile": profile, "observer": calibration.observer, "config": cfg.to_dict(),
            "bias_correction": bool(bias_correction), "calib_batches": calibration.num_batches,
            "calib_batch_size": calibration.batch_size, "seed": calibration.seed}
    return PTQResult(folded, model, calibration, qp, integer, fake, cfg, profile, meta)


def predict(result: PTQResult, mode: str, x: np.ndarray, batch_size: int = 500,
            progress: Callable | None = None) -> np.ndarray:
    """Class predictions of ``mode`` ("float": the BN-folded float model, "fake-quant",
    "integer")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "integer":
        return result.integer.predict(x, batch_size, progress=progress)
    starts = range(0, len(x), batch_size)
    it = progress(starts, len(starts)) if progress is not None else starts
    outs = []
    for s in it:
        xb = x[s:s + batch_size]
        if mode == "float":
            with nn.no_grad():
                outs.append(result.folded(nn.Tensor(xb)).data.argmax(axis=1))
        else:
            outs.append(result.fake_quant.forward(xb).argmax(axis=1))
    return np.concatenate(outs) if outs else np.zeros(0, np.int64)


def evaluate(result: PTQResult, x: np.ndarray, y: np.ndarray, modes: Sequence[str] = MODES, *,
             num_classes: int = 10, batch_size: int = 500, progress: bool = False,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Accuracy and per-class precision/recall/F1 per mode, and the argmax agreement of each
    pair of modes (``"integer vs fake-quant"``...), on images ``x`` with labels ``y``."""
    preds: dict[str, np.ndarray] = {}
    out: dict[str, Any] = {"n": int(len(y)), "modes": {}}
    for mode in modes:
        t0 = time.perf_counter()
        preds[mode] = predict(result, mode, x, batch_size, _bar(mode) if progress else None)
        rep = per_class_report(y, preds[mode], num_classes)
        out["modes"][mode] = {"accuracy": rep["accuracy"],
                              "precision": rep["precision"].tolist(),
                              "recall": rep["recall"].tolist(), "f1": rep["f1"].tolist(),
                              "seconds": round(time.perf_counter() - t0, 2)}
        log(f"      {mode:<10} accuracy {rep['accuracy']:.4f} on {len(y)} images "
            f"({out['modes'][mode]['seconds']:.1f}s)")
    ms = list(modes)
    out["agreement"] = {f"{a} vs {b}": float(np.mean(preds[a] == preds[b]))
                        for i, a in enumerate(ms) for b in ms[i + 1:]}
    out["predictions"] = preds
    return out


def format_table(summary: dict[str, Any], per_class: bool = False) -> str:
    """The summary table: accuracy per mode, agreements, and optionally per-class P/R/F1."""
    lines = [f"  {'mode':<12} {'accuracy':>9}"]
    lines += [f"  {m:<12} {r['accuracy']:>9.4f}" for m, r in summary["modes"].items()]
    lines += [f"  argmax {k}: {v:.4f}" for k, v in summary["agreement"].items()]
    if per_class:
        for m, r in summary["modes"].items():
            lines.append(f"  {m}: class  precision  recall  f1")
            lines += [f"         {c:>5}  {p:9.4f}  {rc:6.4f}  {f:.4f}" for c, (p, rc, f) in
                      enumerate(zip(r["precision"], r["recall"], r["f1"], strict=True))]
    return "\n".join(lines)


def parse_override(text: str) -> tuple[str, dict[str, Any]]:
    """``"layer1.0.conv1:weight_bits=4,act_bits=8"`` -> ``("layer1.0.conv1", {...})``."""
    layer, sep, rest = text.partition(":")
    if not sep or not layer or not rest:
        raise ValueError(f"--override must look like LAYER:key=value[,key=value], got {text!r}")
    out: dict[str, Any] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--override item {item!r} must be key=value")
        if key.endswith("_bits"):
            try:
                out[key] = int(value)
            except ValueError:
                raise ValueError(f"--override {key} must be an int, got {value!r}") from None
        elif key == "per_channel":
            if value not in ("true", "false"):
                raise ValueError(f"--override per_channel must be true or false, got {value!r}")
            out[key] = value == "true"
        else:
            out[key] = value
    return layer, out


def add_ptq_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The PTQ options shared by ``ptq`` and ``eval``."""
    p.add_argument("checkpoint", help="a training output directory (checkpoint.npz/.json)")
    p.add_argument("--profile", default="tflite", choices=sorted(PROFILES))
    p.add_argument("--bits-w", type=int, default=8, help="weight bits (2..8 for convert)")
    p.add_argument("--bits-a", type=int, default=8, help="activation bits (2..16)")
    p.add_argument("--observer", default="minmax", choices=sorted(ACTIVATION_OBSERVERS))
    p.add_argument("--percentile", type=float, default=None,
                   help="the percentile of --observer percentile (default 99.99)")
    p.add_argument("--weight-observer", default="minmax", choices=WEIGHT_OBSERVERS)
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor")
    p.add_argument("--scheme", default=None, choices=SCHEMES,
                   help="default: the profile's (asymmetric; power_of_two for pow2)")
    p.add_argument("--override", action="append", default=[], metavar="LAYER:key=value,...",
                   help="per-layer weight_bits/act_bits/weight_observer/per_channel (repeatable)")
    p.add_argument("--bias-correction", action="store_true")
    p.add_argument("--calib-batches", type=int, default=16)
    p.add_argument("--calib-batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--per-class", action="store_true", help="print per-class P/R/F1")
    p.add_argument("--no-progress", action="store_true")
    return p


def _run(args: argparse.Namespace, modes: Sequence[str], out_dir: str | None) -> dict[str, Any]:
    get_profile(args.profile)
    overrides = dict(parse_override(o) for o in args.override)
    cfg = QuantConfig(weight_bits=args.bits_w, act_bits=args.bits_a, overrides=overrides,
                      scheme=args.scheme, weight_observer=args.weight_observer,
                      per_channel=not args.per_tensor)
    if cfg.weight_bits > 8 or any(o.get("weight_bits", 0) > 8 for o in overrides.values()):
        raise ValueError(f"--bits-w {cfg.weight_bits}: the integer kernels hold weights as "
                         "int8, so weights take 2..8 bits")
    options = {"percentile": args.percentile} if args.percentile is not None else None
    if options and args.observer != "percentile":
        raise ValueError("--percentile applies to --observer percentile only")
    t0 = time.perf_counter()
    print(f"[1/3] load {args.checkpoint}")
    model = train.load_trained_model(args.checkpoint)
    meta = json.loads((Path(args.checkpoint) / train.METADATA).read_text())
    dataset = meta["dataset"]
    x_train, _ = train.prepare(dataset, "train", args.data_dir, meta.get("limit_train"))
    x_test, y_test = train.prepare(dataset, "test", args.data_dir, args.limit_test)
    print(f"[2/3] PTQ ({args.profile}, W{cfg.weight_bits}/A{cfg.act_bits}, observer "
          f"{args.observer}, weights {cfg.weight_observer} "
          f"{'per tensor' if args.per_tensor else 'per channel'}"
          f"{', bias correction' if args.bias_correction else ''}): calibrate on "
          f"{args.calib_batches} batches of {args.calib_batch_size} {dataset} training images")
    res = quantize_model(model, x_train, profile=args.profile, config=cfg,
                         observer=args.observer, observer_options=options,
                         calib_batches=args.calib_batches,
                         calib_batch_size=args.calib_batch_size, seed=args.seed,
                         bias_correction=args.bias_correction)
    del x_train
    print(f"[3/3] evaluate {', '.join(modes)} on {len(y_test)} {dataset} test images")
    summary = evaluate(res, x_test, y_test, modes, progress=not args.no_progress)
    summary.pop("predictions")
    summary.update(checkpoint=str(args.checkpoint), dataset=dataset, model=meta["model"],
                   ptq=res.meta, seconds=round(time.perf_counter() - t0, 1))
    print(f"\nsummary ({meta['model']} on {dataset}, {args.profile}, "
          f"W{cfg.weight_bits}/A{cfg.act_bits}, {args.observer})")
    print(format_table(summary, args.per_class))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "qparams.json").write_text(json.dumps(res.qparams.to_dict(), indent=1) + "\n")
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"  wrote {out / 'qparams.json'} and {out / 'summary.json'}")
    return summary


def _bar(desc: str):
    def wrap(it, total):
        from tqdm import tqdm

        return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True)
    return wrap


def _guarded(run: Callable[[], Any]) -> int:
    try:
        run()
    except (ValueError, FileNotFoundError) as exc:
        print(f"npquant: error: {exc}")
        return 2
    return 0


def ptq_main(argv: Sequence[str] | None = None) -> int:
    """``npquant ptq CHECKPOINT [--bits-w B] [--bits-a B] [--observer O] [--profile P] ...``:
    quantize, evaluate float / fake-quant / integer-only, write ``--out`` (qparams, summary)."""
    p = argparse.ArgumentParser(prog="npquant ptq", description=ptq_main.__doc__.split(":")[0])
    add_ptq_arguments(p)
    p.add_argument("--out", default=None, help="write qparams.json and summary.json here")
    args = p.parse_args(argv)
    return _guarded(lambda: _run(args, MODES, args.out))


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``npquant eval CHECKPOINT --mode float|fake-quant|integer|all [PTQ options]``: accuracy
    (and per-class P/R/F1 with --per-class) of one form of the model."""
    p = argparse.ArgumentParser(prog="npquant eval", description=eval_main.__doc__.split(":")[0])
    add_ptq_arguments(p)
    p.add_argument("--mode", default="integer", choices=MODES + ("all",))
    args = p.parse_args(argv)
    modes = MODES if args.mode == "all" else (args.mode,)
    return _guarded(lambda: _run(args, modes, None))
