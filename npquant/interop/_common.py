"""Lazy framework imports and parameter-name checks of the framework bridges; the argument
checks themselves are ``npquant.validate``'s (re-exported here for the bridges)."""

from __future__ import annotations

import importlib
from types import ModuleType

from npquant.validate import check_array, check_scale, check_scales, check_zero_point, pair

__all__ = ["check_array", "check_keys", "check_scale", "check_scales", "check_zero_point",
           "import_framework", "pair"]


def import_framework(module_name: str, what: str) -> ModuleType:
    """Import an optional framework, or raise ImportError naming the ``interop`` extra."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs the optional package {module_name!r}; "
            "install the interop extra: pip install -e .[interop]"
        ) from exc


def check_keys(op: str, params: dict, required: set[str], optional: set[str]) -> None:
    """Reject missing or unknown parameter names (a typo must not fall back to a default)."""
    missing = required - params.keys()
    unknown = params.keys() - required - optional
    if missing:
        raise ValueError(f"{op}: missing params {sorted(missing)}")
    if unknown:
        raise ValueError(f"{op}: unknown params {sorted(unknown)}; allowed: "
                         f"{sorted(required | optional)}")
