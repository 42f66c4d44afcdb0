"""Training loop of the float models: seeded, resumable, with ``.npz`` checkpoints + JSON metadata.

``train(...)`` is the library entry point and ``main(argv)`` the ``npquant train`` command.
Determinism: the model is initialized from ``seed``; epoch ``e`` shuffles and augments with
``np.random.default_rng([seed, e])``, so a resumed run sees exactly the batches an
uninterrupted run would, and the same seed gives the same checkpoint bytes (the ``.npz`` is
written with fixed zip timestamps; see ``save_npz``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from npquant import __version__, nn
from npquant.argtypes import non_negative_int, positive_float, positive_int
from npquant.data import DATASETS, NORMALIZATION, batches, load_dataset, normalize
from npquant.data.transforms import random_crop, random_hflip
from npquant.models import get_model, list_models

CHECKPOINT = "checkpoint.npz"
METADATA = "checkpoint.json"
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.05}


# -- checkpoints ----------------------------------------------------------------------------
def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` readable by ``np.load(path, allow_pickle=False)`` with reproducible
    bytes: sorted keys, fixed zip timestamps (1980-01-01), no compression. Written to a
    temporary file and renamed, so an interrupted save never leaves a torn checkpoint."""
    path = Path(path)
    checked = {key: np.asarray(arrays[key]) for key in sorted(arrays)}
    for key, arr in checked.items():
        if arr.dtype == object:
            raise TypeError(f"save_npz: {key} is an object array (would need pickle)")
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for key, arr in checked.items():
                info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (never unpickling); a truncated or corrupt file is a ValueError
    naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz (truncated or corrupt?): {exc}") from exc


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a corrupt file is a ValueError naming it."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON (truncated or corrupt?): {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def save_checkpoint(out_dir: Path, model: nn.Module, opt: nn.Optimizer,
                    meta: dict[str, Any]) -> None:
    """``checkpoint.npz`` (model/<key>, optim/<key>) and ``checkpoint.json`` (metadata + sha256)."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": v for k, v in opt.state_dict().items()})
    save_npz(out_dir / CHECKPOINT, arrays)
    meta = dict(meta, checkpoint=CHECKPOINT,
                sha256=hashlib.sha256((out_dir / CHECKPOINT).read_bytes()).hexdigest())
    tmp = out_dir / (METADATA + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / METADATA)


def load_checkpoint(out_dir: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                   dict[str, Any]]:
    """(model state, optimizer state, metadata) from ``out_dir``; the sha256 is verified."""
    out_dir = Path(out_dir)
    meta = read_json(out_dir / METADATA)
    digest = hashlib.sha256((out_dir / CHECKPOINT).read_bytes()).hexdigest()
    if digest != meta.get("sha256"):
        raise ValueError(f"{out_dir / CHECKPOINT}: sha256 {digest} does not match "
                         f"{out_dir / METADATA} ({meta.get('sha256')})")
    arrays = load_npz(out_dir / CHECKPOINT)
    model = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    return model, optim, meta


def load_trained_model(out_dir: str | Path) -> nn.Module:
    """Rebuild the model of a training run from its metadata and load its weights (eval mode)."""
    state, _, meta = load_checkpoint(out_dir)
    model = get_model(meta["model"], seed=meta["seed"], **meta["model_kwargs"])
    model.load_state_dict(state)
    return model.eval()


# -- data -----------------------------------------------------------------------------------
def prepare(dataset: str, split: str, data_dir: str | Path | None = None,
            limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a split and normalize it to float32 NCHW; ``limit`` keeps the first N examples."""
    images, labels = load_dataset(dataset, split, data_dir)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit={limit} must be >= 1")
        images, labels = images[:limit], labels[:limit]
    return normalize(images, *NORMALIZATION[dataset]), labels


def check_split(name: str, images: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """A split given as arrays: float32 NCHW images without NaN/inf and int labels of one length
    (ValueError/TypeError naming the split and the problem)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.float32 or images.ndim != 4:
        raise TypeError(f"{name} images must be a float32 (N, C, H, W) array, got "
                        f"{getattr(images, 'dtype', type(images).__name__)} "
                        f"{getattr(images, 'shape', '')}")
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise TypeError(f"{name} labels must be a 1-D integer array, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)} "
                        f"{getattr(labels, 'shape', '')}")
    if len(images) != len(labels) or len(labels) == 0:
        raise ValueError(f"{name}: {len(images)} images and {len(labels)} labels; give the same "
                         "number, at least one")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{name} images contain NaN or inf")
    return images, labels.astype(np.int64, copy=False)


def evaluate(model: nn.Module, dataset: str | tuple[np.ndarray, np.ndarray], *,
             split: str = "test", data_dir: str | Path | None = None,
             batch_size: int = 1000, limit: int | None = None) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode (no tape, mode restored).

    ``dataset`` is a name ("fashion-mnist", "mnist", "cifar10", loaded and normalized) or a
    pair (float images NCHW, int labels).
    """
    if isinstance(dataset, str):
        images, labels = prepare(dataset, split, data_dir, limit)
    else:
        images, labels = dataset
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    try:
        with nn.no_grad():
            for idx in batches(len(labels), batch_size):
                logits = model(nn.Tensor(images[idx]))
                loss_sum += float(nn.cross_entropy(logits, labels[idx]).data) * len(idx)
                correct += int((logits.data.argmax(axis=1) == labels[idx]).sum())
    finally:
        model.train(was_training)
    n = len(labels)
    return {"loss": loss_sum / n, "accuracy": correct / n, "n": n}


# -- training -------------------------------------------------------------------------------
def make_optimizer(name: str, params: list[nn.Parameter], lr: float, *, momentum: float,
                   weight_decay: float) -> nn.Optimizer:
    """"sgd" (Nesterov momentum), "adam" or "adamw" with the given hyper-parameters."""
    if name == "sgd":
        return nn.SGD(params, lr, momentum=momentum, nesterov=momentum > 0,
                      weight_decay=weight_decay)
    if name == "adam":
        return nn.Adam(params, lr, weight_decay=weight_decay)
    if name == "adamw":
        return nn.AdamW(params, lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: {OPTIMIZERS}")


def make_schedule(name: str, lr: float, epochs: int, warmup: int = 0) -> nn.Schedule:
    """"constant", "cosine" (to 0 over the epochs) or "step" (x0.1 at 50% and 75%), after an
    optional linear warm-up."""
    if name == "constant":
        sched: nn.Schedule = nn.ConstantLR(lr)
    elif name == "cosine":
        sched = nn.CosineLR(lr, max(epochs - warmup, 1))
    elif name == "step":
        sched = nn.StepLR(lr, max((epochs - warmup) // 2, 1), 0.1)
    else:
        raise ValueError(f"unknown schedule {name!r}; known: {SCHEDULES}")
    return nn.WarmupLR(sched, warmup) if warmup else sched


def _model_kwargs(model_name: str, images: np.ndarray) -> dict[str, Any]:
    kw: dict[str, Any] = {"in_channels": int(images.shape[1]), "num_classes": 10}
    if model_name.startswith("cnn"):
        kw["input_size"] = int(images.shape[2])
    return kw


def train(model_name: str, dataset: str = "fashion-mnist", epochs: int = 1, seed: int = 0,
          out_dir: str | Path = "runs/train", *, data_dir: str | Path | None = None,
          batch_size: int = 64, lr: float | None = None, optimizer: str = "adam",
          momentum: float = 0.9, weight_decay: float = 0.0, schedule: str = "constant",
          warmup: int = 0, augment: bool = False, limit_train: int | None = None,
          limit_test: int | None = None, resume: bool = True, progress: bool = True,
          log: Callable[[str], None] = print,
          data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
          ) -> dict[str, Any]:
    """Train ``model_name`` on ``dataset`` for ``epochs`` epochs; returns the metadata dict.

    ``data``: ``((x_train, y_train), (x_test, y_test))`` already loaded and normalized (float32
    NCHW images, integer labels), e.g. by ``prepare`` once for a whole pipeline run, or your own
    arrays; ``dataset`` then only names them (in the checkpoint, and CIFAR-10 flips under
    ``augment``), and ``data_dir``/``limit_*`` are not used. None: ``prepare`` loads the splits.

    After every epoch, ``out_dir/checkpoint.npz`` and ``out_dir/checkpoint.json`` are written.
    With ``resume`` and an existing checkpoint of the same configuration, training continues
    from it (model, optimizer state and epoch); a checkpoint of a different configuration is
    a ValueError. ``augment`` adds random crops (padding 4 for 32x32, 2 otherwise) and, for
    CIFAR-10, horizontal flips.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {sorted(DATASETS)}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} must be an int >= 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    lr = DEFAULT_LR.get(optimizer, 0.0) if lr is None else float(lr)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    if data is None:
        x_train, y_train = prepare(dataset, "train", data_dir, limit_train)
        x_test, y_test = prepare(dataset, "test", data_dir, limit_test)
    else:
        (x_train, y_train), (x_test, y_test) = (check_split(name, *split) for name, split in
                                                zip(("train", "test"), data, strict=True))
    model_kwargs = _model_kwargs(model_name, x_train)
    model = get_model(model_name, seed=seed, **model_kwargs)
    opt = make_optimizer(optimizer, model.parameters(), lr, momentum=momentum,
                         weight_decay=weight_decay)
    sched = make_schedule(schedule, lr, epochs, warmup)
    config = {"model": model_name, "dataset": dataset, "seed": seed, "batch_size": batch_size,
              "lr": lr, "optimizer": optimizer, "momentum": momentum,
              "weight_decay": weight_decay, "schedule": schedule, "warmup": warmup,
              "augment": augment, "limit_train": limit_train, "limit_test": limit_test,
              "epochs": epochs, "model_kwargs": model_kwargs}
    history: list[dict[str, float]] = []
    start = 0
    if resume and (out_dir / METADATA).is_file():
        state, opt_state, meta = load_checkpoint(out_dir)
        differs = {k: (meta.get(k), v) for k, v in config.items()
                   if k != "epochs" and meta.get(k) != v}
        if differs:
            raise ValueError(f"{out_dir}: checkpoint was made with a different configuration "
                             f"(key: (checkpoint, now)) {differs}; use another --out or "
                             f"resume=False")
        model.load_state_dict(state)
        opt.load_state_dict(opt_state)
        start, history = meta["epoch"], meta["history"]
        log(f"resuming {out_dir} after epoch {start}")

    meta: dict[str, Any] = {}
    dropouts = [m for _, m in model.named_modules() if isinstance(m, nn.Dropout)]
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        for i, m in enumerate(dropouts):
            m.rng = np.random.default_rng([seed, epoch, 1 + i])
        opt.lr = sched.lr_at(epoch)
        fit = fit_epoch(model, opt, x_train, y_train, batch_size=batch_size, rng=rng,
                        desc=f"epoch {epoch + 1}/{epochs}", progress=progress,
                        transform=_augmentation(dataset, rng) if augment else None)
        train_time = time.perf_counter() - t0
        test = evaluate(model, (x_test, y_test))
        history.append({"epoch": epoch + 1, "lr": opt.lr, "train_loss": fit["train_loss"],
                        "train_accuracy": fit["train_accuracy"], "test_loss": test["loss"],
                        "test_accuracy": test["accuracy"]})
        log(f"epoch {epoch + 1}/{epochs} lr {opt.lr:.4g} train_loss {fit['train_loss']:.4f} "
            f"train_acc {fit['train_accuracy']:.4f} test_loss {test['loss']:.4f} "
            f"test_acc {test['accuracy']:.4f} ({train_time:.1f}s train, "
            f"{time.perf_counter() - t0 - train_time:.1f}s eval)")
        meta = dict(config, epoch=epoch + 1, history=history, npquant_version=__version__,
                    test_accuracy=test["accuracy"], train_accuracy=fit["train_accuracy"],
                    n_train=int(len(y_train)), n_test=int(len(y_test)))
        save_checkpoint(out_dir, model, opt, meta)
    if not meta:  # nothing left to do: the checkpoint already covers `epochs`
        meta = read_json(out_dir / METADATA)
    return meta


def _augmentation(dataset: str, rng: np.random.Generator
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """Random crops (zero padding 4 for 32x32 images, 2 otherwise) and, for CIFAR-10, random
    horizontal flips, drawn from ``rng``."""
    def transform(xb: np.ndarray) -> np.ndarray:
        xb = random_crop(xb, 4 if xb.shape[-1] == 32 else 2, rng)
        return random_hflip(xb, rng) if dataset == "cifar10" else xb
    return transform


def fit_epoch(model: nn.Module, opt: Any, x: np.ndarray, y: np.ndarray, *, batch_size: int,
              rng: np.random.Generator, desc: str = "", progress: bool = False,
              transform: Callable[[np.ndarray], np.ndarray] | None = None,
              before_step: Callable[[int], None] | None = None) -> dict[str, float]:
    """One epoch of minibatch training: for each batch of ``batches(len(y), batch_size, rng)``,
    ``loss = cross_entropy(model(x_b), y_b)``, ``backward``, ``opt.step()``.

    ``transform(x_b)``: augmentation, drawing from the same ``rng`` after the batch order (so an
    epoch is fixed by its seed); ``before_step(i)``: called with the batch index ``i`` before
    its forward (QAT freezes its observers there). Returns the image-weighted mean training
    loss and accuracy over the epoch (the model's output while it was being trained).
    """
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    bar = _progress(batches(len(y), batch_size, rng=rng), -(-len(y) // batch_size), desc,
                    progress)
    for i, idx in enumerate(bar):
        if before_step is not None:
            before_step(i)
        xb, yb = x[idx], y[idx]
        if transform is not None:
            xb = transform(xb)
        logits = model(nn.Tensor(xb))
        loss = nn.cross_entropy(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += float(loss.data) * len(idx)
        correct += int((logits.data.argmax(axis=1) == yb).sum())
        seen += len(idx)
        if progress:
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}


def _progress(it, total: int, desc: str, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True)


# -- command line ---------------------------------------------------------------------------
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``npquant train`` (pass an existing sub-parser to fill it)."""
    p = parser or argparse.ArgumentParser(prog="npquant train",
                                          description="Train a float model (resumable).")
    p.add_argument("--model", required=True, choices=list_models())
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", required=True, help="output directory (checkpoint.npz/.json)")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: per dataset)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=None, help="default: 1e-3 Adam, 0.05 SGD")
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="constant", choices=SCHEDULES)
    p.add_argument("--warmup", type=non_negative_int, default=0)
    p.add_argument("--augment", action="store_true")
    p.add_argument("--limit-train", type=positive_int, default=None)
    p.add_argument("--limit-test", type=positive_int, default=None)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``train`` from parsed arguments; returns the process exit code."""
    meta = train(args.model, args.dataset, args.epochs, args.seed, args.out,
                 data_dir=args.data_dir, batch_size=args.batch_size, lr=args.lr,
                 optimizer=args.optimizer, momentum=args.momentum,
                 weight_decay=args.weight_decay, schedule=args.schedule, warmup=args.warmup,
                 augment=args.augment, limit_train=args.limit_train,
                 limit_test=args.limit_test, resume=not args.no_resume,
                 progress=not args.no_progress)
    print(f"final test accuracy {meta['test_accuracy']:.4f} -> {Path(args.out) / METADATA}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``npquant train --model cnn --dataset fashion-mnist --epochs N --seed S --out DIR``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":  # through the CLI: bad input is one line and exit code 2
    import sys

    from npquant import cli

    raise SystemExit(cli.main(["train", *sys.argv[1:]]))
