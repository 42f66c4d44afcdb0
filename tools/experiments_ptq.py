"""PTQ experiments on a trained checkpoint (docs/ptq.md): observers x bit widths, the bits table
with per-class precision/recall/F1, and power-of-two symmetric 8/16-bit.

Usage: python3 tools/experiments_ptq.py CHECKPOINT [--out runs/ptq_experiments.json]
       [--profile tflite-single-rounding] [--rival-profile tflite] [--limit-test N]
       [--fq-limit N] [--calib-batches 16] [--quick]

For every configuration: calibrate (one calibration per activation observer, reused for every
bit width), choose qparams, convert under ``--profile``, and measure the integer-only accuracy
on the test images, plus the argmax agreement of the integer model with its float64 fake-quant
simulation (``npquant.quant.simulate``) on the first ``--fq-limit`` test images and with the
float model. The same qparams are also converted under ``--rival-profile`` (default ``tflite``:
TFLite's reference kernels, whose double rounding a float simulation cannot reproduce; same
qparams method and quantize rules as ``tflite-single-rounding``) and its accuracy and agreement
reported beside them (``--rival-profile none`` skips it).
Everything is seeded: the same command gives the same numbers. The repository root is put first
on ``sys.path``, so the checkout is measured even when another copy of npquant is installed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from npquant import train  # noqa: E402
from npquant.metrics import per_class_report  # noqa: E402
from npquant.ptq_cli import predict, quantize_model  # noqa: E402
from npquant.quant import QuantConfig, fold_batch_norm  # noqa: E402
from npquant.quant.ptq import calibrate  # noqa: E402

OBSERVERS = ("minmax", "histogram", "percentile", "mse", "kl")
# (label, weight bits, activation bits)
BITS = (("W8A8", 8, 8), ("W4A8", 4, 8), ("W4A4", 4, 4), ("W3A3", 3, 3))


def run(args: argparse.Namespace) -> dict:
    t_all = time.perf_counter()
    meta = json.loads((pathlib.Path(args.checkpoint) / train.METADATA).read_text())
    model = train.load_trained_model(args.checkpoint)
    x_train, _ = train.prepare(meta["dataset"], "train", args.data_dir, meta.get("limit_train"))
    x_test, y_test = train.prepare(meta["dataset"], "test", args.data_dir, args.limit_test)
    folded = fold_batch_norm(model, x_train[:2])
    n_fq = min(args.fq_limit, len(y_test))
    results: dict = {"checkpoint": str(args.checkpoint), "model": meta["model"],
                     "dataset": meta["dataset"], "epochs": meta["epoch"],
                     "n_test": int(len(y_test)), "n_fake_quant": n_fq,
                     "calib_batches": args.calib_batches, "rows": []}
    first = None
    calibrations = {}

    def measure(tag: str, observer: str, profile: str, cfg: QuantConfig, per_class=False,
                bias_correction=False) -> dict:
        nonlocal first
        if observer not in calibrations:
            t0 = time.perf_counter()
            calibrations[observer] = calibrate(folded, x_train, num_batches=args.calib_batches,
                                               batch_size=64, seed=0, observer=observer)
            print(f"  calibrated {observer} in {time.perf_counter() - t0:.1f}s", flush=True)
        t0 = time.perf_counter()
        res = quantize_model(model, x_train, profile=profile, config=cfg,
                             calibration=calibrations[observer], folded=folded,
                             bias_correction=bias_correction)
        p_int = predict(res, "integer", x_test)
        p_fq = predict(res, "fake-quant", x_test[:n_fq])
        if first is None:
            first = predict(res, "float", x_test)
            rep = per_class_report(y_test, first, 10)
            results["float"] = {"accuracy": rep["accuracy"], "precision": rep["precision"].tolist(),
                                "recall": rep["recall"].tolist(), "f1": rep["f1"].tolist()}
            print(f"  float accuracy {rep['accuracy']:.4f}", flush=True)
        rep = per_class_report(y_test, p_int, 10)
        rival = None
        if args.rival_profile != "none" and profile == args.profile:
            # the same qparams (same method and quantize rules), requantized by the rival's rule
            alt = quantize_model(model, x_train, profile=args.rival_profile, config=cfg,
                                 calibration=calibrations[observer], folded=folded,
                                 bias_correction=bias_correction)
            p_alt = predict(alt, "integer", x_test)
            rival = {"profile": args.rival_profile, "accuracy": float(np.mean(p_alt == y_test)),
                     "agree_fake_quant": float(np.mean(p_alt[:n_fq] == p_fq))}
        row = {"table": tag, "observer": observer, "profile": profile, "config": cfg.to_dict(),
               "bias_correction": bias_correction, "accuracy": rep["accuracy"],
               "agree_fake_quant": float(np.mean(p_int[:n_fq] == p_fq)), "rival": rival,
               "agree_float": float(np.mean(p_int == first)),
               "seconds": round(time.perf_counter() - t0, 1)}
        if per_class:
            row.update(precision=rep["precision"].tolist(), recall=rep["recall"].tolist(),
                       f1=rep["f1"].tolist())
        results["rows"].append(row)
        print(f"  {tag:<9} {profile:<22} {observer:<10} W{cfg.weight_bits}A{cfg.act_bits} "
              f"wobs={cfg.weight_observer:<6} bc={int(bias_correction)} acc {rep['accuracy']:.4f} "
              f"agree fq {row['agree_fake_quant']:.4f} float {row['agree_float']:.4f} "
              f"({row['seconds']}s)", flush=True)
        return row

    observers = OBSERVERS[:3] if args.quick else OBSERVERS
    bits = BITS[:2] if args.quick else BITS
    prof = args.profile
    print(f"[1/4] observers x bits ({prof}; weights min/max per channel)", flush=True)
    for obs in observers:
        for _, wb, ab in bits:
            measure("observers", obs, prof, QuantConfig(weight_bits=wb, act_bits=ab))
    print("[2/4] weights: MSE clipping and bias correction at 4 and 3 bits", flush=True)
    best = {}
    for label, wb, ab in bits:
        rows = [r for r in results["rows"] if r["table"] == "observers"
                and r["config"]["weight_bits"] == wb and r["config"]["act_bits"] == ab]
        best[label] = max(rows, key=lambda r: r["accuracy"])["observer"]
        if wb < 8:
            cfg = QuantConfig(weight_bits=wb, act_bits=ab, weight_observer="mse")
            measure("weights", best[label], prof, cfg)
            measure("weights", best[label], prof, cfg, bias_correction=True)
    results["best_observer"] = best
    obs = best.get("W4A4", best["W8A8"])
    print(f"[3/4] bits table (observer {obs}, MSE weights below 8 bits)", flush=True)
    for wb, ab in ((2, 2), (4, 4), (8, 8), (8, 16)):
        measure("bits", obs, prof, QuantConfig(weight_bits=wb, act_bits=ab,
                                                   weight_observer="mse" if wb < 8 else "minmax"),
                per_class=True)
    print("[4/4] power-of-two symmetric (pow2 profile: S = 2^-n, requantization by shifts)",
          flush=True)
    for ab in (8, 16):
        for o in dict.fromkeys(("minmax", obs)):
            measure("pow2", o, "pow2", QuantConfig(weight_bits=8, act_bits=ab))
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    return results


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def format_markdown(r: dict) -> str:
    """The result tables of ``run`` as Markdown (docs/ptq.md)."""
    f = r["float"]["accuracy"]
    out = [f"{r['model']} on {r['dataset']} ({r['epochs']} epochs), {r['n_test']} test images; "
           f"float accuracy **{_pct(f)}%**. Agreement with fake-quant on the first "
           f"{r['n_fake_quant']} test images. Total {r['seconds']:.0f} s.", ""]
    rows = [x for x in r["rows"] if x["table"] == "observers"]
    labels = sorted({(x["config"]["weight_bits"], x["config"]["act_bits"]) for x in rows},
                    reverse=True)
    out += [f"Integer-only accuracy (%) by activation observer, {rows[0]['profile']} profile, "
            "min/max per-channel weights:", "",
            "| observer | " + " | ".join(f"W{w}A{a}" for w, a in labels) + " |",
            "|---|" + "---:|" * len(labels)]
    for obs in dict.fromkeys(x["observer"] for x in rows):
        cells = []
        for w, a in labels:
            x = next(x for x in rows if x["observer"] == obs
                     and (x["config"]["weight_bits"], x["config"]["act_bits"]) == (w, a))
            cells.append(_pct(x["accuracy"]))
        out.append(f"| {obs} | " + " | ".join(cells) + " |")
    rival = next((x["rival"]["profile"] for x in r["rows"] if x.get("rival")), None)
    out += ["", "Every row: integer-only accuracy, argmax agreement of the integer model with its "
            "float64 fake-quant simulation and with the float model"
            + (f"; then the same qparams converted under {rival}: accuracy and agreement with "
               "the same simulation" if rival else "") + ":", "",
            "| table | profile | observer | W/A | weights | bias corr. | accuracy | "
            "= fake-quant | = float |" + (f" {rival} acc. | {rival} = fake-quant |" if rival
                                         else ""),
            "|---|---|---|---|---|---|---:|---:|---:|" + ("---:|---:|" if rival else "")]
    for x in r["rows"]:
        c = x["config"]
        alt = x.get("rival")
        out.append(f"| {x['table']} | {x['profile']} | {x['observer']} | W{c['weight_bits']}"
                   f"A{c['act_bits']} | {c['weight_observer']} | "
                   f"{'yes' if x['bias_correction'] else 'no'} | {_pct(x['accuracy'])} | "
                   f"{_pct(x['agree_fake_quant'])} | {_pct(x['agree_float'])} |"
                   + ((f" {_pct(alt['accuracy'])} | {_pct(alt['agree_fake_quant'])} |"
                       if alt else " - | - |") if rival else ""))
    bits = [x for x in r["rows"] if x["table"] == "bits"]
    if bits:
        out += ["", "Per-class F1 (%) of the bits table (float first):", "",
                "| class | float | " + " | ".join(
                    f"W{x['config']['weight_bits']}A{x['config']['act_bits']}" for x in bits)
                + " |", "|---|---:|" + "---:|" * len(bits)]
        for k in range(10):
            out.append(f"| {k} | {_pct(r['float']['f1'][k])} | "
                       + " | ".join(_pct(x["f1"][k]) for x in bits) + " |")
        out += ["", "Per-class precision / recall (%) of the bits table:", "",
                "| class | " + " | ".join(
                    f"W{x['config']['weight_bits']}A{x['config']['act_bits']} P / R"
                    for x in bits) + " |", "|---|" + "---:|" * len(bits)]
        for k in range(10):
            out.append(f"| {k} | " + " | ".join(
                f"{_pct(x['precision'][k])} / {_pct(x['recall'][k])}" for x in bits) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--out", default="runs/ptq_experiments.json")
    p.add_argument("--profile", default="tflite-single-rounding",
                   help="profile of the tables (pow2 rows always use pow2)")
    p.add_argument("--rival-profile", default="tflite",
                   help="also convert the same qparams under this profile ('none': skip)")
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--fq-limit", type=int, default=2000,
                   help="test images on which the fake-quant agreement is measured")
    p.add_argument("--calib-batches", type=int, default=16)
    p.add_argument("--data-dir", default=None, help="dataset directory (default: per dataset)")
    p.add_argument("--quick", action="store_true", help="3 observers, 2 bit settings")
    p.add_argument("--markdown", default=None, help="also write the tables here")
    p.add_argument("--from-json", default=None, help="only format the tables of a saved run")
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(pathlib.Path(args.from_json).read_text())
        text = format_markdown(results)
        if args.markdown:
            pathlib.Path(args.markdown).write_text(text)
        print(text)
        return 0
    results = run(args)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out} ({results['seconds']}s)")
    if args.markdown:
        pathlib.Path(args.markdown).write_text(format_markdown(results))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
