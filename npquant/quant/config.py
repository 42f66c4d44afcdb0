"""``QuantConfig``: what to quantize how — bit widths, schemes, weight observer and granularity,
with per-layer overrides. Plain data, checked on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npquant.qparams import SCHEMES
from npquant.validate import check_bits

INPUT = "input"  # the name of the model input (chain.INPUT)
WEIGHT_OBSERVER_NAMES = ("minmax", "mse")
_OVERRIDE_KEYS = ("weight_bits", "act_bits", "weight_observer", "per_channel")


@dataclass(frozen=True)
class QuantConfig:
    """Bit widths and schemes of a quantized model: defaults and per-layer overrides.

    * ``weight_bits``/``act_bits`` (2..16) apply to every conv/linear layer; ``act_bits`` is the
      width of each layer's *output* activation (conv, linear, add) and of the model input.
      Integer kernels hold weights as int8, so ``weight_bits`` > 8 is refused by ``convert``;
      activations up to 16 bits are stored as int16 and clamped to their bit range.
    * ``scheme``: None (the profile's: asymmetric activations and symmetric weights, both power
      of two under a power-of-two profile), ``"asymmetric"``, ``"symmetric"`` (activations
      symmetric too, ``Z = 0``) or ``"power_of_two"`` (``S = 2^-n`` everywhere, TIDL-style).
    * ``weight_observer``: ``"minmax"`` or ``"mse"`` (``npquant.quant.clipping``);
      ``per_channel``: one weight scale per output channel (axis 0), else one per tensor.
    * ``overrides`` maps a layer name (as ``trace_graph``/``chain_layers`` name it; ``"input"``
      for the model input) to a dict of any of ``weight_bits``, ``act_bits``,
      ``weight_observer``, ``per_channel``.
    """

    weight_bits: int = 8
    act_bits: int = 8
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    scheme: str | None = None
    weight_observer: str = "minmax"
    per_channel: bool = True

    def __post_init__(self) -> None:
        check_bits("weight_bits", self.weight_bits)
        check_bits("act_bits", self.act_bits)
        if self.scheme is not None and self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be None or one of {SCHEMES}, got {self.scheme!r}")
        _check_setting("weight_observer", self.weight_observer)
        _check_setting("per_channel", self.per_channel)
        if not isinstance(self.overrides, dict):
            raise TypeError(f"overrides must be a dict, got {type(self.overrides).__name__}")
        for layer, o in self.overrides.items():
            if not isinstance(o, dict) or not set(o) <= set(_OVERRIDE_KEYS):
                raise ValueError(f"override for {layer!r} must be a dict with keys "
                                 f"{', '.join(_OVERRIDE_KEYS)} (any of them), got {o!r}")
            for key, v in o.items():
                if key.endswith("_bits"):
                    check_bits(f"overrides[{layer!r}][{key!r}]", v)
                else:
                    _check_setting(key, v, f"overrides[{layer!r}][{key!r}]")

    def bits(self, layer: str) -> tuple[int, int]:
        """``(weight_bits, act_bits)`` of ``layer`` (its override, else the defaults)."""
        return int(self.setting(layer, "weight_bits")), int(self.setting(layer, "act_bits"))

    def setting(self, layer: str, key: str) -> Any:
        """``key`` (one of the override keys) for ``layer``: its override, else the default."""
        if key not in _OVERRIDE_KEYS:
            raise ValueError(f"key must be one of {_OVERRIDE_KEYS}, got {key!r}")
        return self.overrides.get(layer, {}).get(key, getattr(self, key))

    def check_layers(self, names: list[str]) -> None:
        """ValueError naming each override that is not one of ``names`` (nor ``"input"``)."""
        unknown = sorted(set(self.overrides) - set(names) - {INPUT})
        if unknown:
            raise ValueError(f"overrides name layers that do not exist: {unknown}; the "
                             f"quantizable layers are {[INPUT] + list(names)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"weight_bits": self.weight_bits, "act_bits": self.act_bits,
                "scheme": self.scheme, "weight_observer": self.weight_observer,
                "per_channel": self.per_channel,
                "overrides": {k: dict(v) for k, v in self.overrides.items()}}


def _check_setting(key: str, value: Any, where: str | None = None) -> None:
    where = where or key
    if key == "weight_observer" and value not in WEIGHT_OBSERVER_NAMES:
        raise ValueError(f"{where} must be one of {WEIGHT_OBSERVER_NAMES}, got {value!r}")
    if key == "per_channel" and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where} must be a bool, got {value!r}")
