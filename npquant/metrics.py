"""Classification metrics: confusion matrix and per-class precision, recall and F1.

For class ``c`` with ``TP`` true positives, ``FP`` false positives and ``FN`` false negatives:
``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
``F1 = 2 precision recall / (precision + recall)`` (0 where a denominator is 0).
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[t, p]``: how many images of true class ``t`` were predicted ``p`` (int64)."""
    y, p = np.asarray(labels, np.int64), np.asarray(pred, np.int64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and pred {p.shape} must be 1-D of one length")
    for name, v in (("labels", y), ("pred", p)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} must be in [0, {num_classes}), got [{v.min()}, {v.max()}]")
    return np.bincount(y * num_classes + p, minlength=num_classes**2).reshape(num_classes,
                                                                               num_classes)


def per_class_report(labels: np.ndarray, pred: np.ndarray, num_classes: int
                     ) -> dict[str, np.ndarray | float]:
    """``{"precision", "recall", "f1", "support"}`` per class (arrays) and ``"accuracy"``."""
    cm = confusion_matrix(labels, pred, num_classes).astype(np.float64)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cm.sum(axis=0) > 0, tp / cm.sum(axis=0), 0.0)
        recall = np.where(cm.sum(axis=1) > 0, tp / cm.sum(axis=1), 0.0)
        f1 = np.where(precision + recall > 0,
                      2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1,
            "support": cm.sum(axis=1).astype(np.int64),
            "accuracy": float(tp.sum() / max(cm.sum(), 1.0))}
