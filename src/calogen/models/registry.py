"""The family registry: families register themselves; lookup by name or by data shape.

The one list of family modules is :data:`calogen.models.families.FAMILY_MODULES`; the registry
imports that package by name on first use (the families import this module to register).
"""

from __future__ import annotations

import importlib
from typing import Any

from calogen.models.budget import ModelTooLarge, build_budget, largest_sizes
from calogen.models.generator import Generator, ModelSpec

__all__ = ["FAMILIES", "families_for", "families_in", "family_class", "make_model",
           "optimizer_defaults",
           "register_family"]

FAMILIES: dict[str, type[Generator]] = {}
"""Registered families by name (filled by :func:`register_family`)."""

_FAMILIES_PACKAGE = "calogen.models.families"


def register_family(cls: type[Generator]) -> type[Generator]:
    """Class decorator adding a family to :data:`FAMILIES` under ``cls.family``."""
    if not cls.family:
        raise ValueError(f"{cls.__name__} must set a non-empty `family`")
    FAMILIES[cls.family] = cls
    return cls


def _import_families() -> None:
    """Import the family modules, which register themselves (lazily: torch-heavy; the
    package is imported by name so that the registry does not depend on the families)."""
    importlib.import_module(_FAMILIES_PACKAGE).load_all()


def families_for(kind: str) -> list[str]:
    """Names of the registered families that support showers of ``kind`` (``"image"``,
    ``"voxels"`` or ``"points"``), sorted."""
    _import_families()
    return sorted(name for name, cls in FAMILIES.items() if kind in cls.shapes)


def families_in(*categories: str) -> list[str]:
    """Names of the registered families of the given :attr:`Generator.category` values, in
    the order of :data:`calogen.models.families.FAMILY_MODULES`."""
    _import_families()
    order = {name: i for i, name in enumerate(
        importlib.import_module(_FAMILIES_PACKAGE).family_names())}
    return sorted((n for n, c in FAMILIES.items() if c.category in categories),
                  key=lambda n: order.get(n, len(order)))


def family_class(family: str, spec: ModelSpec | None = None) -> type[Generator]:
    """The registered class of ``family``; ``ValueError`` listing the known families, or, when
    ``spec`` is given and the family does not support its kind of showers, listing the
    families that do."""
    _import_families()
    try:
        cls = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}") from None
    if spec is not None and spec.kind not in cls.shapes:
        supporting = families_for(spec.kind)
        raise ValueError(f"model family {family!r} does not support {spec.kind!r} showers "
                         f"(geometry {spec.detector!r}; it supports {sorted(cls.shapes)}); "
                         f"families for {spec.kind!r}: {supporting or 'none yet'}")
    return cls


def make_model(family: str, spec: ModelSpec, **hparams: Any) -> Generator:
    """A new model of ``family`` for ``spec``; ``ValueError`` for an unknown family or one that
    does not support the spec's kind of showers (see :func:`family_class`).

    The build runs within :func:`calogen.models.budget.build_budget`: hyperparameters asking
    for more memory or tensors than its limits raise
    :class:`~calogen.models.budget.ModelTooLarge` (a ``ValueError``) naming the largest sizes
    given, before the memory is taken.
    """
    cls = family_class(family, spec)
    try:
        with build_budget():
            return cls(spec, **hparams)
    except ModelTooLarge as exc:
        sizes = largest_sizes({"hparams": hparams, "spec": {"shape": list(spec.shape)}})
        raise ModelTooLarge(f"{family}: {exc}; the largest sizes asked for: {sizes} "
                            f"(CALOGEN_MAX_MODEL_BYTES / CALOGEN_MAX_MODEL_TENSORS raise the "
                            f"limits)") from None


def optimizer_defaults(family: str) -> dict[str, Any]:
    """The family's recommended AdamW settings (may be empty); ``ValueError`` if unknown."""
    return dict(family_class(family).optimizer_defaults)
