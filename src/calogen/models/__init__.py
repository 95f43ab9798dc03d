"""Generative model families behind one :class:`Generator` interface.

``generator`` (the interface: Generator, TrainBatch, ModelSpec, the shared image bases),
``registry`` (families by name and by shape), ``io`` / ``export_onnx`` (safetensors + JSON,
ONNX), ``nn/`` (building blocks, never importing ``families/``), ``families/`` (one module per
family). Names below are imported on first access (torch is heavy).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "FAMILIES", "BuiltOn", "Generator", "ImageGenerator", "IterativeImageGenerator",
    "ModelFileError", "ModelSpec", "SamplingOption", "TrainBatch", "export_onnx",
    "families_for", "family_class", "load_model", "make_model", "optimizer_defaults",
    "read_model_config", "register_family", "save_model",
]

_WHERE = {
    "BuiltOn": "generator", "Generator": "generator", "ImageGenerator": "generator",
    "IterativeImageGenerator": "generator", "ModelSpec": "generator",
    "SamplingOption": "generator", "TrainBatch": "generator",
    "FAMILIES": "registry", "families_for": "registry", "family_class": "registry",
    "make_model": "registry", "optimizer_defaults": "registry", "register_family": "registry",
    "ModelFileError": "io", "load_model": "io", "read_model_config": "io", "save_model": "io",
    "export_onnx": "export_onnx",
}

if TYPE_CHECKING:
    from calogen.models.export_onnx import export_onnx
    from calogen.models.generator import (
        BuiltOn,
        Generator,
        ImageGenerator,
        IterativeImageGenerator,
        ModelSpec,
        SamplingOption,
        TrainBatch,
    )
    from calogen.models.io import ModelFileError, load_model, read_model_config, save_model
    from calogen.models.registry import (
        FAMILIES,
        families_for,
        family_class,
        make_model,
        optimizer_defaults,
        register_family,
    )


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'calogen.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"calogen.models.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
