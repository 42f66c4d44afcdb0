"""A small integer model and its golden directory, shared by the golden tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npquant import nn
from npquant.convert import convert
from npquant.golden import write_golden
from npquant.quant.ptq import calibrate, choose_qparams


def small_model(profile: str = "tflite"):
    """conv(1->3, 3x3) + ReLU, max pool, FC(48->4): a tiny integer model and 16 images."""
    model = nn.Sequential(nn.Conv2d(1, 3, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 4, rng=1)).eval()
    x = np.random.default_rng(0).normal(size=(16, 1, 10, 10)).astype(np.float32)
    cal = calibrate(model, x, num_batches=2, batch_size=8)
    return convert(model, choose_qparams(model, cal, profile), profile,
                   input_shape=(1, 10, 10)), x


def make_golden_dir(tmp_path_factory) -> tuple[Path, object, np.ndarray]:
    """The golden directory of ``small_model`` on 4 images (all formats, NHWC copies, labels).

    Each test module wraps this in its own ``golden_dir`` fixture (tests/golden has no
    conftest.py: its module name would shadow tests/conftest.py for ``from conftest import``)."""
    im, x = small_model()
    d = tmp_path_factory.mktemp("golden") / "g"
    write_golden(im, x[:4], d, seed=7, labels=np.arange(4), nhwc=True)
    return d, im, x[:4]
