"""Regenerate reference_data/ (npquant.golden.reference): every profile's seed-CNN set and
single-op edge set, from the committed sources.

Usage:
    python3 tools/gen_reference_data.py [--force] [--only cnn/tflite ...]
    python3 tools/gen_reference_data.py --make-sources TRAIN_DIR [--data-dir D]

``--make-sources`` (once) writes reference_data/sources/ from a 1-epoch training run of the seed
CNN (``npquant train --model cnn --epochs 1 --seed 0 --out TRAIN_DIR``) and FashionMNIST.
``--force`` replaces existing sets (each atomically). Then commit and say why the bytes changed.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from npquant.golden.reference import make_sources, reference_sets

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(ROOT / "reference_data"))
    p.add_argument("--force", action="store_true")
    p.add_argument("--only", nargs="*", default=None, help="set names, e.g. cnn/tflite ops/pow2")
    p.add_argument("--make-sources", metavar="TRAIN_DIR", default=None)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    if args.make_sources:
        make_sources(args.root, args.make_sources, data_dir=args.data_dir)
        print(f"wrote {args.root}/sources")
    for name, (out, write) in reference_sets(args.root).items():
        if args.only is None or name in args.only:
            m = write(out, overwrite=args.force)
            print(f"{name}: {len(m['sha256']) + 1} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
