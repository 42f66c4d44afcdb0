"""``npquant compare MODEL.onnx`` and ``npquant golden MODEL.onnx OUT``: a quantized ONNX model
against ONNX Runtime layer by layer, and its golden data (``npquant.cli`` hands a first argument
ending in ``.onnx`` to these).

``npquant compare MODEL.onnx (--images N | --images-file X.npy) [--profile P] [--optimize]
[--isolate] [--json]``
    runs ORT with every integer tensor kept and npquant's import of the model on the same images,
    and prints the golden comparison's report (A = npquant, B = ORT): per op the differing
    elements, ``±1`` signature, max |diff| and first differing index; exit 0 if identical, 1 if
    not.
``npquant golden MODEL.onnx OUT (--images N | --images-file X.npy) [--profile P] [--formats ...]
[--force] [--nhwc]``
    writes the golden data of the imported model with the shared writer (npquant.golden).

Images: ``--images N`` takes the first N of a dataset split (``--dataset``, default
fashion-mnist, ``--split test``), ``--images-file`` a float32 NCHW ``.npy`` (no pickles).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from npquant.argtypes import positive_int
from npquant.data import DATASETS
from npquant.profiles import PROFILES


def _common(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=positive_int, help="first N images of the dataset split")
    src.add_argument("--images-file", help="float32 NCHW images (.npy)")
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--profile", default="onnxruntime", choices=sorted(PROFILES),
                   help="npquant's arithmetic (default onnxruntime: ORT on x86-64)")


def _images(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None, dict]:
    if args.images_file is not None:
        x = np.load(args.images_file, allow_pickle=False)
        if x.dtype != np.float32 or x.ndim != 4:
            raise ValueError(f"--images-file {args.images_file}: need float32 NCHW, got "
                             f"{x.dtype} {x.shape}")
        return x, None, {"file": str(args.images_file)}
    from npquant.golden.source import load_images

    x, y = load_images(args.dataset, args.split, args.images, args.data_dir)
    return x, y, {"dataset": args.dataset, "split": args.split, "first": args.images}


def _model(path: str, profile: str):
    from npquant.interop.onnx_import import import_onnx

    data = Path(path).read_bytes()
    return data, import_onnx(data, profile=profile)


def compare_main(argv: Sequence[str]) -> int:
    """``npquant compare MODEL.onnx ...`` (module docstring)."""
    from npquant.golden.compare import format_comparison
    from npquant.interop.onnx_compare import compare_onnx

    p = argparse.ArgumentParser(prog="npquant compare",
                                description="A quantized ONNX model in ONNX Runtime against "
                                            "npquant, layer by layer.")
    p.add_argument("model", help="quantized .onnx (QOperator or QDQ)")
    _common(p)
    p.add_argument("--optimize", action="store_true",
                   help="run ORT with its default graph optimizations (else as written)")
    p.add_argument("--isolate", action="store_true",
                   help="run each npquant op on ORT's inputs of that op")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = p.parse_args(argv)
    data, im = _model(args.model, args.profile)
    x, _, _ = _images(args)
    c = compare_onnx(data, x, optimize=args.optimize, isolate=args.isolate, integer_model=im)
    b_name = (f"onnxruntime on {args.model}" + (" (optimized)" if args.optimize else "")
              + (", each op on ORT's inputs" if args.isolate else ""))
    print(json.dumps(c.to_dict(), indent=1) if args.json else
          format_comparison(c, f"npquant {im.profile.name} import of {args.model}", b_name))
    return 0 if c.identical else 1


def golden_main(argv: Sequence[str]) -> int:
    """``npquant golden MODEL.onnx OUT ...`` (module docstring)."""
    from npquant.golden.commands import add_output_arguments
    from npquant.golden.source import images_digest
    from npquant.golden.writer import check_formats, write_golden

    p = argparse.ArgumentParser(prog="npquant golden",
                                description="Golden data of a quantized ONNX model, imported.")
    p.add_argument("model", help="quantized .onnx (QOperator or QDQ)")
    add_output_arguments(p)
    _common(p)
    args = p.parse_args(argv)
    formats = check_formats(args.formats)
    data, im = _model(args.model, args.profile)
    x, y, where = _images(args)
    where["sha256_float32"] = images_digest(x)
    source = {"kind": "onnx", "path": str(args.model),
              "sha256": hashlib.sha256(data).hexdigest(), "form": im.meta.get("form"),
              "onnx_tensors": im.meta.get("onnx_tensors"), "images": where}
    manifest = write_golden(im, x, args.out, labels=y, nhwc=args.nhwc,
                            extra={"source": source}, formats=formats, overwrite=args.force,
                            command=["npquant", "golden", *argv])
    print(f"wrote {len(manifest['sha256']) + 1} files to {args.out}: {len(x)} images through "
          f"{args.model} ({im.meta.get('form')}), profile {im.profile.name}")
    return 0
