"""The golden-data commands: ``npquant golden``, ``npquant verify`` and ``npquant compare``.

``npquant golden SOURCE OUT [--images N] [--profile P] [--formats npy,npz,hex,bin,h] [--force]``
    writes the golden data of the first N test images through SOURCE (a training or pipeline
    directory, or a model name at its seeded initialization) under profile P, atomically.
``npquant verify DIR``
    checks the manifest's checksum, every file's sha256, stale files, the formats against each
    other and the manifest against the files; prints every problem (each naming its file) and
    exits 1 if there is one, 0 if the directory is sound.
``npquant compare A B`` / ``npquant compare A --profile P``
    compares two golden directories, or A with a fresh run of A's model and images under profile
    P; prints per op the differing tensors (count, ±1 signature, first index, values) and the
    first divergence; exits 0 if identical, 1 if not.

Each ``*_main(argv)`` returns the exit status. Bad values and files raise ValueError / OSError,
which ``npquant.cli`` prints as one line with exit status 2 (``--debug``: the traceback);
argparse rejects bad options itself (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from npquant.argtypes import non_negative_int, positive_int
from npquant.data import DATASETS
from npquant.profiles import PROFILES

IMAGES_KEY = "00_input.input"  # the QUANTIZE op's input: the float images of the batch


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """The output arguments every ``npquant golden`` form takes (a trained model, an imported
    .tflite or .onnx): ``out``, ``--formats``, ``--force``, ``--nhwc``."""
    from npquant.golden.writer import FORMATS

    p.add_argument("out", help="output directory (replaced whole with --force)")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    p.add_argument("--force", action="store_true", help="replace an existing golden directory")
    p.add_argument("--nhwc", action="store_true", help="also write NHWC / OHWI copies")


def golden_parser() -> argparse.ArgumentParser:
    """Arguments of ``npquant golden``."""
    p = argparse.ArgumentParser(
        prog="npquant golden",
        description="Write the golden data of the first N images of a split through SOURCE under "
                    "a profile, atomically, with a self-checksummed manifest.")
    p.add_argument("source", help="training dir (npquant train --out), pipeline dir, or a model "
                                  "name (untrained, seeded)")
    add_output_arguments(p)
    p.add_argument("--images", type=positive_int, default=8,
                   help="first N images of the split (8)")
    p.add_argument("--profile", default="tflite", choices=sorted(PROFILES))
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="calibration (and model-name) seed")
    p.add_argument("--dataset", default=None, choices=sorted(DATASETS),
                   help="default: the checkpoint's, else fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--calib-batches", type=positive_int, default=16)
    p.add_argument("--calib-batch-size", type=positive_int, default=64)
    return p


def golden_main(argv: Sequence[str] | None = None) -> int:
    """``npquant golden`` (module docstring)."""
    from npquant.golden.source import build_integer_model, images_digest, load_images
    from npquant.golden.writer import check_formats, write_golden

    argv = list(sys.argv[1:] if argv is None else argv)
    args = golden_parser().parse_args(argv)
    formats = check_formats(args.formats)
    t0 = time.perf_counter()
    model, source = build_integer_model(args.source, args.profile, dataset=args.dataset,
                                        data_dir=args.data_dir, seed=args.seed,
                                        calib_batches=args.calib_batches,
                                        calib_batch_size=args.calib_batch_size)
    x, y = load_images(source["dataset"], args.split, args.images, args.data_dir)
    source["images"] = {"split": args.split, "first": args.images,
                        "sha256_float32": images_digest(x)}
    t1 = time.perf_counter()
    manifest = write_golden(model, x, args.out, seed=args.seed, labels=y, nhwc=args.nhwc,
                            extra={"source": source}, formats=formats,
                            overwrite=args.force, command=["npquant", "golden", *argv])
    t2 = time.perf_counter()
    size = sum((Path(args.out) / f).stat().st_size for f in manifest["sha256"])
    print(f"wrote {len(manifest['sha256']) + 1} files ({size / 1e6:.1f} MB, formats "
          f"{','.join(formats)}) to {args.out}: {args.images} images, profile {args.profile}; "
          f"model + data {t1 - t0:.1f} s, run + write {t2 - t1:.1f} s")
    return 0


def verify_main(argv: Sequence[str] | None = None) -> int:
    """``npquant verify DIR`` (module docstring)."""
    from npquant.golden.reader import verify_golden

    p = argparse.ArgumentParser(prog="npquant verify",
                                description="Check a golden directory; name every bad file.")
    p.add_argument("dir")
    p.add_argument("--no-formats", action="store_true",
                   help="skip the cross-format comparison (sha256 and manifest checks only)")
    args = p.parse_args(argv)
    problems = verify_golden(args.dir, check_formats=not args.no_formats)
    if problems:
        for line in problems:
            print(f"BAD {line}")
        print(f"{args.dir}: {len(problems)} problem(s)")
        return 1
    m = json.loads((Path(args.dir) / "manifest.json").read_text())
    print(f"OK {args.dir}: manifest checksum, {len(m['sha256'])} files' sha256, no stale files, "
          f"{len(m['tensors'])} tensors consistent across {','.join(m['formats'])}")
    return 0


def compare_main(argv: Sequence[str] | None = None) -> int:
    """``npquant compare`` (module docstring)."""
    from npquant.golden.compare import compare_golden, format_comparison
    from npquant.golden.reader import load_golden
    from npquant.golden.source import build_integer_model
    from npquant.golden.writer import golden_tensors

    p = argparse.ArgumentParser(prog="npquant compare",
                                description="First divergence between two golden sets.")
    p.add_argument("a", help="golden directory")
    p.add_argument("b", nargs="?", help="golden directory (or give --profile)")
    p.add_argument("--profile", choices=sorted(PROFILES),
                   help="compare A with a fresh run of A's model and images under this profile")
    p.add_argument("--data-dir", default=None, help="dataset directory for the rebuild")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = p.parse_args(argv)
    if (args.b is None) == (args.profile is None):
        p.error("give either a second directory B or --profile P")
    a = load_golden(args.a)  # a damaged directory is a GoldenDataError (exit 2)
    if args.b is not None:
        b = load_golden(args.b)
        b_layers, b_arrays, b_name = b.manifest["layers"], b.arrays, args.b
    else:
        src = a.manifest.get("extra", {}).get("source")
        if not src or IMAGES_KEY not in a.arrays:
            raise ValueError(f"{args.a} has no extra.source or no {IMAGES_KEY} (not written by "
                             "npquant golden), so its model cannot be rebuilt; compare two "
                             "directories instead")
        path = src["path"] if src["kind"] == "checkpoint" else src["model"]
        cal = src["calibration"]
        model, _ = build_integer_model(path, args.profile, dataset=src["dataset"],
                                       data_dir=args.data_dir, seed=cal["seed"],
                                       calib_batches=cal["batches"],
                                       calib_batch_size=cal["batch_size"])
        tensors, b_layers = golden_tensors(model, a.arrays[IMAGES_KEY])
        b_arrays = {k: arr for k, arr, _ in tensors}
        b_name = f"fresh run of {path} under {args.profile}"
    c = compare_golden(a.manifest["layers"], a.arrays, b_layers, b_arrays)
    print(json.dumps(c.to_dict(), indent=1) if args.json else
          format_comparison(c, args.a, b_name))
    return 0 if c.identical else 1
