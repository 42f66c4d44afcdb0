"""Shared pytest configuration: optional frameworks are skipped on a laptop, required in CI."""

from __future__ import annotations

import importlib
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def require(module_name: str):
    """Import an optional framework; skip without it, unless NPQUANT_REQUIRE_ORACLES=1 (CI)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if os.environ.get("NPQUANT_REQUIRE_ORACLES") == "1":
            pytest.fail(f"{module_name} is required in CI (NPQUANT_REQUIRE_ORACLES=1): {exc}")
        pytest.skip(f"{module_name} is not installed")
