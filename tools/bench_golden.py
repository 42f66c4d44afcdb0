"""Time a golden export of the seed CNN: ``--images`` FashionMNIST test images, all formats.

Usage: python3 tools/bench_golden.py [--images 10000] [--source cnn|TRAIN_DIR]
                                     [--formats npy,npz,hex,bin,h] [--dir /tmp]

Prints the time of each part of ``npquant golden``'s own work — building the integer model
(load, fold, calibrate, convert), loading the images, running the integer model with its trace,
writing every file (atomic: temporary directory, fsync, rename) — and the bytes written per
format. The export goes to a temporary directory under ``--dir`` and is deleted afterwards.
The repository root is put first on ``sys.path``, so the checkout is measured.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from npquant.golden.source import build_integer_model, load_images
    from npquant.golden.writer import FORMATS, check_formats, golden_tensors, write_golden

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--source", default="cnn", help="model name or training directory")
    p.add_argument("--profile", default="tflite")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--dir", default=None, help="parent of the temporary export directory")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    formats = check_formats(args.formats)
    times = {}
    t = time.perf_counter()
    model, src = build_integer_model(args.source, args.profile, data_dir=args.data_dir)
    times["build integer model (load, fold, calibrate, convert)"] = time.perf_counter() - t
    t = time.perf_counter()
    x, y = load_images(src["dataset"], "test", args.images, args.data_dir)
    times["load images"] = time.perf_counter() - t
    model.run(x[:2])  # numba: load the compiled kernels before timing
    t = time.perf_counter()
    golden_tensors(model, x, labels=y)
    times["integer model run with trace (golden_tensors)"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out = pathlib.Path(tmp) / "golden"
        t = time.perf_counter()
        manifest = write_golden(model, x, out, labels=y, formats=formats)
        times["write_golden (run + write all files, atomic)"] = time.perf_counter() - t
        sizes: dict[str, int] = {}
        for name in manifest["sha256"]:
            ext = name.rsplit(".", 1)[-1]
            sizes[ext] = sizes.get(ext, 0) + (out / name).stat().st_size
        files = len(manifest["sha256"]) + 1
        t = time.perf_counter()
        shutil.rmtree(out)
        times["(delete the export)"] = time.perf_counter() - t
    run = times["integer model run with trace (golden_tensors)"]
    write = times["write_golden (run + write all files, atomic)"]
    print(f"golden export of {args.source} ({args.profile}), {args.images} images, formats "
          f"{','.join(formats)}: {files} files, {sum(sizes.values()) / 1e9:.2f} GB")
    for ext, n in sorted(sizes.items()):
        print(f"  {ext:<4} {n / 1e9:8.3f} GB")
    for what, s in times.items():
        print(f"  {what:<55} {s:8.2f} s")
    print(f"  {'of which writing files (write_golden - run)':<55} {write - run:8.2f} s")
    own = sum(v for k, v in times.items() if not k.startswith(("(", "integer model run")))
    print(f"  {'command total (build + images + write_golden)':<55} {own:8.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
