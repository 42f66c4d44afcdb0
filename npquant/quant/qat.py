"""Quantization-aware training: fine-tune a float checkpoint with fake quantization, resumably,
then convert to the same ``IntegerModel`` the PTQ path produces (``npquant qat``).

``run_qat(float_dir, out_dir, ...)``:

1. load the float model of a ``npquant train`` run (its checkpoint metadata names the model);
2. ``prepare_qat`` (npquant.quant.qat_model: fake quant on weights, biases and activations,
   BatchNorm folded in training) and ``calibrate_qat`` on ``calib_batches`` seeded batches;
3. train ``epochs`` epochs (Adam or SGD, cosine schedule, the batch order of ``npquant.train``:
   epoch ``e`` shuffles with ``default_rng([seed, e])``); observers stop updating after
   ``freeze_observers_after`` epochs and BatchNorm statistics freeze after ``freeze_bn_after``
   (fractions of an epoch allowed); a checkpoint is written after every epoch and a second call
   with the same arguments resumes from it;
4. export the folded float chain and the learned ``ModelQParams``, ``convert`` under the
   profile, and measure: fake-quant and integer-only test accuracy, the rate at which their
   predictions agree, and, per layer on ``compare_images`` test images, the rate at which the
   integer model's codes equal the fake-quant codes ``rint(y / S) + Z``.

Results: ``out_dir/summary.json``, ``out_dir/qparams.json``, the checkpoint files.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from npquant import __version__, nn, train
from npquant.convert import IntegerModel, convert
from npquant.profiles import PROFILES, get_profile
from npquant.quant.ptq import QuantConfig
from npquant.quant.qat_model import (
    ACT_QUANT,
    WEIGHT_QUANT,
    QATModel,
    calibrate_qat,
    prepare_qat,
)

OPTIMIZERS = ("adam", "sgd")


def _check_fraction(name: str, v: float | None, epochs: int) -> float:
    if v is None:
        return epochs / 2
    if not (isinstance(v, (int, float)) and not isinstance(v, bool)) or not 0 <= v:
        raise ValueError(f"{name} must be a number of epochs >= 0, got {v!r}")
    return float(v)


def run_qat(float_dir: str | Path, out_dir: str | Path, *, model: str | None = None,
            profile: str = "tflite", weight_bits: int = 8, act_bits: int = 8,
            config: QuantConfig | None = None, weight_quant: str = "minmax",
            act_quant: str = "ema", epochs: int = 1, lr: float = 1e-4,
            optimizer: str = "adam", batch_size: int = 64, seed: int = 0,
            calib_batches: int = 16, freeze_observers_after: float | None = None,
            freeze_bn_after: float | None = None, averaging_constant: float = 0.01,
            data_dir: str | Path | None = None, limit_train: int | None = None,
            limit_test: int | None = None, compare_images: int = 100,
            eval_batch_size: int = 500, resume: bool = True, progress: bool = True,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """QAT of the float model in ``float_dir`` (module docstring); returns the summary dict.

    ``model``, if given, must be the model the float checkpoint was trained as (a ValueError
    otherwise). Bit widths: ``config`` (a ``QuantConfig``) or ``weight_bits``/``act_bits``;
    weights wider than 8 bits are refused before training (the integer kernels hold int8).
    Freeze points default to half of ``epochs``.
    """
    float_dir, out = Path(float_dir), Path(out_dir)
    if not (float_dir / train.METADATA).is_file():
        raise ValueError(f"float_dir={str(float_dir)!r} has no {train.METADATA}: pass the --out "
                         "directory of an `npquant train` run")
    state, _, fmeta = train.load_checkpoint(float_dir)
    if model is not None and model != fmeta["model"]:
        raise ValueError(f"model={model!r} but the checkpoint in {float_dir} is of model "
                         f"{fmeta['model']!r}")
    prof = get_profile(profile)
    cfg = config if config is not None else QuantConfig(weight_bits, act_bits)
    if not isinstance(cfg, QuantConfig):
        raise TypeError(f"config must be a QuantConfig, got {type(cfg).__name__}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size),
                    ("calib_batches", calib_batches), ("compare_images", compare_images)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be > 0, got {lr!r}")
    f_obs = _check_fraction("freeze_observers_after", freeze_observers_after, epochs)
    f_bn = _check_fraction("freeze_bn_after", freeze_bn_after, epochs)
    dataset = fmeta["dataset"]
    float_model = train.load_trained_model(float_dir)
    qat = prepare_qat(float_model, prof, cfg, weight_quant=weight_quant, act_quant=act_quant,
                      averaging_constant=averaging_constant)
    names = [layer.layer_name for layer in qat.qat_layers()]
    too_wide = {n: cfg.bits(n)[0] for n in names if cfg.bits(n)[0] > 8}
    if too_wide:
        raise ValueError(f"weight bits {too_wide} > 8: the integer kernels hold weights as int8, "
                         "so convert would refuse this model; use weight_bits <= 8")
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    x_train, y_train = train.prepare(dataset, "train", data_dir, limit_train)
    x_test, y_test = train.prepare(dataset, "test", data_dir, limit_test)
    settings = {"float_checkpoint_sha256": fmeta["sha256"], "model": fmeta["model"],
                "dataset": dataset, "profile": prof.name, "profile_version": prof.version,
                "config": cfg.to_dict(), "weight_quant": weight_quant, "act_quant": act_quant,
                "lr": float(lr), "optimizer": optimizer, "batch_size": batch_size, "seed": seed,
                "calib_batches": calib_batches, "freeze_observers_after": f_obs,
                "freeze_bn_after": f_bn, "averaging_constant": averaging_constant,
                "limit_train": limit_train, "limit_test": limit_test}
    opt = (nn.Adam(qat.parameters(), lr) if optimizer == "adam"
           else nn.SGD(qat.parameters(), lr, momentum=0.9, nesterov=True))
    sched = nn.CosineLR(lr, epochs)
    history: list[dict[str, Any]] = []
    start = 0
    if resume and (out / train.METADATA).is_file():
        qstate, opt_state, meta = train.load_checkpoint(out)
        differs = {k: (meta.get("settings", {}).get(k), v) for k, v in settings.items()
                   if meta.get("settings", {}).get(k) != v}
        if differs:
            raise ValueError(f"{out}: QAT checkpoint was made with other settings "
                             f"(key: (checkpoint, now)) {differs}; use another --out or "
                             "resume=False")
        qat.set_fake_quant(True)
        qat.load_state_dict(qstate)
        opt.load_state_dict(opt_state)
        start, history = meta["epoch"], meta["history"]
        log(f"resuming QAT in {out} after epoch {start}")
    else:
        used = calibrate_qat(qat, x_train, num_batches=calib_batches, batch_size=batch_size,
                             seed=seed)
        log(f"calibrated activation ranges on {used} batches of {batch_size} training images")

    n_batches = -(-len(y_train) // batch_size)
    obs_step, bn_step = round(f_obs * n_batches), round(f_bn * n_batches)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        opt.lr = sched.lr_at(epoch)

        def freeze_when_due(i: int, first_step: int = epoch * n_batches) -> None:
            if first_step + i >= obs_step:
                qat.freeze_observers()
            if first_step + i >= bn_step:
                qat.freeze_bn()

        fit = train.fit_epoch(qat, opt, x_train, y_train, batch_size=batch_size, rng=rng,
                              desc=f"qat epoch {epoch + 1}/{epochs}", progress=progress,
                              before_step=freeze_when_due)
        train_time = time.perf_counter() - t0
        test = train.evaluate(qat, (x_test, y_test), batch_size=eval_batch_size)
        history.append({"epoch": epoch + 1, "lr": opt.lr, **fit, "test_loss": test["loss"],
                        "fake_quant_test_accuracy": test["accuracy"],
                        "train_seconds": round(train_time, 1)})
        meta = {"settings": settings, "epoch": epoch + 1, "epochs": epochs, "history": history,
                "npquant_version": __version__}
        train.save_checkpoint(out, qat, opt, meta)
        log(f"qat epoch {epoch + 1}/{epochs} lr {opt.lr:.3g} train_loss {fit['train_loss']:.4f} "
            f"train_acc {fit['train_accuracy']:.4f} fake-quant test_acc {test['accuracy']:.4f} "
            f"({train_time:.1f}s train; checkpoint written)")
    if epochs > 0:  # the final state is that of a fully frozen model
        qat.freeze_observers()
        qat.freeze_bn()

    result = evaluate_qat(qat, x_test, y_test, compare_images=compare_images,
                          batch_size=eval_batch_size, progress=progress)
    (out / "qparams.json").write_text(json.dumps(result.pop("qparams"), indent=1) + "\n")
    summary = {"npquant_version": __version__, **settings, "epochs": epochs,
               "float_test_accuracy": fmeta.get("test_accuracy"), "history": history,
               **result, "seconds": round(time.perf_counter() - t_all, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"QAT {fmeta['model']} W{cfg.weight_bits}A{cfg.act_bits} {prof.name}: fake-quant "
        f"{result['fake_quant_accuracy']:.4f}, integer-only {result['integer_accuracy']:.4f}, "
        f"predictions agree on {result['prediction_agreement']:.4f} of {result['n_test']}")
    return summary


def to_integer_model(qat: QATModel, input_shape: tuple[int, int, int]) -> IntegerModel:
    """``convert(export_float_chain(), to_model_qparams(), profile)``: the integer-only model of
    the QAT model as it stands (BatchNorm folded with the running statistics); ``input_shape`` is
    one image's ``(C, H, W)``."""
    return convert(qat.export_float_chain(), qat.to_model_qparams(), qat.profile,
                   input_shape=tuple(int(v) for v in input_shape))


def load_qat(float_dir: str | Path, qat_dir: str | Path,
             profile: str | None = None) -> QATModel:
    """The QAT model saved by ``run_qat`` in ``qat_dir`` (fully frozen, eval mode), rebuilt on the
    float model of ``float_dir``. ``profile`` may name another profile with the same qparams
    method and quantize rules (e.g. "tflite" for a "tflite-single-rounding" run), to convert the
    same learned model under its arithmetic; otherwise a ValueError."""
    state, _, meta = train.load_checkpoint(qat_dir)
    st = meta["settings"]
    _, _, fmeta = train.load_checkpoint(float_dir)
    if fmeta["sha256"] != st["float_checkpoint_sha256"]:
        raise ValueError(f"{qat_dir} was trained from another float checkpoint than {float_dir}")
    prof = get_profile(profile or st["profile"])
    base = get_profile(st["profile"])
    if (prof.qparams_method, prof.quantize, prof.quantize_per_channel,
            prof.narrow_range_weights) != (base.qparams_method, base.quantize,
                                           base.quantize_per_channel, base.narrow_range_weights):
        raise ValueError(f"profile {prof.name!r} chooses or rounds qparams differently from "
                         f"{base.name!r}, which {qat_dir} was trained for")
    c = st["config"]
    cfg = QuantConfig(c["weight_bits"], c["act_bits"], c["overrides"])
    qat = prepare_qat(train.load_trained_model(float_dir), prof, cfg,
                      weight_quant=st["weight_quant"], act_quant=st["act_quant"],
                      averaging_constant=st["averaging_constant"])
    qat.set_fake_quant(True)
    qat.load_state_dict(state)
    qat.freeze_observers()
    qat.freeze_bn()
    return qat.eval()


def evaluate_qat(qat: QATModel, x: np.ndarray, y: np.ndarray, *, compare_images: int = 100,
                 batch_size: int = 500, progress: bool = False) -> dict[str, Any]:
    """Fake-quant and integer-only accuracy on ``(x, y)``, their prediction agreement, and the
    per-layer code agreement on the first ``compare_images`` images (``compare_layers``)."""
    im = to_integer_model(qat, x.shape[1:])
    was = qat.training
    qat.eval()
    with nn.no_grad():
        fq_pred = np.concatenate([qat(nn.Tensor(x[s:s + batch_size])).data.argmax(axis=1)
                                  for s in range(0, len(x), batch_size)])
    qat.train(was)
    int_pred = im.predict(x, batch_size)
    layers = compare_layers(qat, im, x[:compare_images])
    return {"fake_quant_accuracy": float(np.mean(fq_pred == y)),
            "integer_accuracy": float(np.mean(int_pred == y)),
            "prediction_agreement": float(np.mean(fq_pred == int_pred)), "n_test": int(len(y)),
            "layers": layers, "qparams": im.qparams.to_dict()}


def compare_layers(qat: QATModel, im: IntegerModel, x: np.ndarray) -> list[dict[str, Any]]:
    """Per integer op (QUANTIZE, CONV_2D, MAX_POOL_2D, FLATTEN, FULLY_CONNECTED): the fraction
    of output codes equal to the fake-quant codes and the largest difference."""
    fake = qat.trace(x)
    _, trace = im.run(x, return_trace=True)
    rows = []
    for e in trace:
        if e.name not in fake:
            continue
        got, want = e.output.astype(np.int64), fake[e.name].reshape(e.output.shape)
        rows.append({"name": e.name, "op": e.op, "equal": float(np.mean(got == want)),
                     "max_abs_diff": int(np.abs(got - want).max()), "n": int(got.size)})
    return rows


# -- command line ---------------------------------------------------------------------------
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``npquant qat``."""
    p = parser or argparse.ArgumentParser(
        prog="npquant qat",
        description="Quantization-aware training from a float checkpoint (resumable), then "
                    "conversion to the integer-only model.")
    p.add_argument("--float", dest="float_dir", required=True,
                   help="the --out directory of an `npquant train` run")
    p.add_argument("--out", required=True, help="output directory (checkpoint, summary.json)")
    p.add_argument("--model", default=None, help="expected model name (checked)")
    p.add_argument("--profile", default="tflite", choices=sorted(PROFILES))
    p.add_argument("--weight-bits", type=int, default=8)
    p.add_argument("--act-bits", type=int, default=8)
    p.add_argument("--weight-quant", default="minmax", choices=WEIGHT_QUANT)
    p.add_argument("--act-quant", default="ema", choices=ACT_QUANT)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calib-batches", type=int, default=16)
    p.add_argument("--freeze-observers-after", type=float, default=None,
                   help="epochs (default: half of --epochs)")
    p.add_argument("--freeze-bn-after", type=float, default=None,
                   help="epochs of BatchNorm folded with batch statistics (default: half of "
                        "--epochs); 0 folds with the running statistics from the start, the "
                        "better choice for a short fine-tune of a converged model at low bits "
                        "(docs/experiments.md, section 5)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``npquant qat --float DIR --out DIR [--weight-bits B] [--act-bits B] ...``. Bad values
    raise ValueError naming them; ``npquant`` prints them as one line and exits 2."""
    args = build_parser().parse_args(argv)
    run_qat(args.float_dir, args.out, model=args.model, profile=args.profile,
            weight_bits=args.weight_bits, act_bits=args.act_bits,
            weight_quant=args.weight_quant, act_quant=args.act_quant, epochs=args.epochs,
            lr=args.lr, optimizer=args.optimizer, batch_size=args.batch_size,
            seed=args.seed, calib_batches=args.calib_batches,
            freeze_observers_after=args.freeze_observers_after,
            freeze_bn_after=args.freeze_bn_after, data_dir=args.data_dir,
            limit_train=args.limit_train, limit_test=args.limit_test,
            resume=not args.no_resume, progress=not args.no_progress)
    return 0


if __name__ == "__main__":  # through the CLI: bad input is one line and exit code 2
    import sys

    from npquant import cli

    raise SystemExit(cli.main(["qat", *sys.argv[1:]]))
