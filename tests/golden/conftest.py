"""The golden directory of a small integer model, shared by the golden tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from golden_helpers import small_model

from npquant.golden import write_golden


@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory) -> tuple[Path, object, np.ndarray]:
    im, x = small_model()
    d = tmp_path_factory.mktemp("golden") / "g"
    write_golden(im, x[:4], d, seed=7, labels=np.arange(4), nhwc=True)
    return d, im, x[:4]
