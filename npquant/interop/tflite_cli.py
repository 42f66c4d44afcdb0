"""``npquant compare MODEL.tflite`` and ``npquant golden MODEL.tflite``: bring your own int8 model.

``npquant compare MODEL.tflite --images N|FILE.npy [--profile P] [--kernels K] [--json]``
    imports MODEL under profile P (default ``tflite``), runs it and the LiteRT interpreter (kernel
    path K, by default the profile's: ``tflite`` -> reference, ``tflite-xnnpack`` -> xnnpack,
    ``tflite-optimized`` -> optimized) on the same images with every intermediate tensor kept,
    and prints the golden ``compare`` report per layer (A = TFLite, B = npquant): elements that
    differ, the ``±1`` signature, ``max |diff|``, the first divergent index; then the agreement.
    Exit 0 when every layer agrees, 1 when not.
``npquant golden MODEL.tflite OUT --images N|FILE.npy [--profile P] [--formats ...] [--force]``
    writes the golden data of the imported model with the shared golden writer (atomic,
    self-checksummed manifest; ``npquant verify OUT`` checks it).

Images: ``N`` seeded standard-normal float32 images of the model's input shape (``--seed``), or a
``.npy`` file of float32 images in npquant's layout ``(N, C, H, W)`` (``allow_pickle=False``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from npquant.argtypes import non_negative_int
from npquant.profiles import PROFILES

KERNELS_OF_PROFILE = {"tflite": "reference", "tflite-xnnpack": "xnnpack",
                      "tflite-optimized": "optimized"}


def _images(spec: str, input_shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The float32 batch of ``--images`` (module docstring)."""
    if spec.isdigit():
        n = int(spec)
        if n < 1:
            raise ValueError(f"--images must be >= 1, got {n}")
        return np.random.default_rng(seed).normal(size=(n, *input_shape)).astype(np.float32)
    path = Path(spec)
    if path.suffix != ".npy":
        raise ValueError(f"--images must be a count or a .npy file, got {spec!r}")
    x = np.load(path, allow_pickle=False)
    if x.dtype != np.float32 or x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"--images {spec}: expected float32 (N, {', '.join(map(str, input_shape))}"
                         f"), got {x.dtype} {x.shape}")
    return x


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an int8 .tflite file")
    p.add_argument("--images", required=True,
                   help="N (seeded random images) or a .npy file of float32 (N, C, H, W)")
    p.add_argument("--profile", default="tflite",
                   choices=sorted(k for k in PROFILES if k.startswith("tflite")))
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of random images")


def compare_main(argv: Sequence[str] | None = None) -> int:
    """``npquant compare MODEL.tflite`` (module docstring)."""
    from npquant.golden.compare import format_comparison
    from npquant.interop.tflite_compare import compare_with_tflite
    from npquant.interop.tflite_import import import_tflite

    p = argparse.ArgumentParser(prog="npquant compare",
                                description="Per-layer comparison of an int8 .tflite in the "
                                            "interpreter and in npquant.")
    _common(p)
    p.add_argument("--kernels", choices=("reference", "optimized", "xnnpack"),
                   help="interpreter kernel path (default: the profile's)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = p.parse_args(argv)
    kernels = args.kernels or KERNELS_OF_PROFILE.get(args.profile)
    if kernels is None:
        p.error(f"profile {args.profile!r} has no default kernel path; give --kernels")
    data = Path(args.model).read_bytes()
    model = import_tflite(data, profile=args.profile)
    x = _images(args.images, model.input_shape, args.seed)
    c, run = compare_with_tflite(model, data, x, kernels=kernels)
    same = sum(d.size - d.count for d in c.diffs)
    total = sum(d.size for d in c.diffs)
    if args.json:
        print(json.dumps(dict(c.to_dict(), agreement={"equal": same, "elements": total},
                              not_delegated=run.not_delegated), indent=1))
    else:
        print(format_comparison(c, f"TFLite interpreter ({kernels} kernels) on {args.model}",
                                f"npquant, profile {args.profile}"))
        print(f"agreement: {same} of {total} elements ({100.0 * same / max(total, 1):.4f}%) "
              f"over {len(c.diffs)} layers, {len(x)} images")
        if run.not_delegated:
            print(f"not delegated (builtin kernels): {', '.join(run.not_delegated)}")
    return 0 if c.identical else 1


def golden_main(argv: Sequence[str] | None = None) -> int:
    """``npquant golden MODEL.tflite OUT`` (module docstring)."""
    from npquant.golden.commands import add_output_arguments
    from npquant.golden.writer import check_formats, write_golden
    from npquant.interop.tflite_import import import_tflite

    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="npquant golden",
                                description="Golden data of an int8 .tflite model, imported.")
    _common(p)
    add_output_arguments(p)
    args = p.parse_args(argv)
    formats = check_formats(args.formats)
    data = Path(args.model).read_bytes()
    model = import_tflite(data, profile=args.profile)
    x = _images(args.images, model.input_shape, args.seed)
    source = {"kind": "tflite", "path": str(args.model),
              "sha256": hashlib.sha256(data).hexdigest(), "images": args.images,
              "seed": args.seed}
    manifest = write_golden(model, x, args.out, seed=args.seed, nhwc=args.nhwc,
                            extra={"source": source}, formats=formats, overwrite=args.force,
                            command=["npquant", "golden", *argv])
    print(f"wrote {len(manifest['sha256']) + 1} files to {args.out}: {len(x)} images through "
          f"{args.model} ({len(model.ops)} ops), profile {args.profile}")
    return 0
