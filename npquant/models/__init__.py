"""Model zoo and registry: ``get_model(name, **kw)`` for "cnn", "cnn_bn", "resnet20",
"resnet_small"."""

from __future__ import annotations

from collections.abc import Callable

from npquant.models.cnn import CNN, cnn, cnn_bn
from npquant.models.resnet import BasicBlock, ResNet, resnet20, resnet_small
from npquant.nn import Module

MODELS: dict[str, Callable[..., Module]] = {
    "cnn": cnn, "cnn_bn": cnn_bn, "resnet20": resnet20, "resnet_small": resnet_small,
}


def get_model(name: str, **kw) -> Module:
    """Build a registered model; keyword arguments (seed, in_channels, input_size,
    num_classes, dtype) go to its constructor. Unknown names list the known ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    return MODELS[name](**kw)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


__all__ = ["CNN", "MODELS", "BasicBlock", "ResNet", "cnn", "cnn_bn", "get_model", "list_models",
           "resnet20", "resnet_small"]
