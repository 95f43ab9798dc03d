"""The generative families, one module each, named after the family (``sdi_gan`` holds
``"sdi-gan"``).

:data:`FAMILY_MODULES` is the one list of family modules; :func:`load_all` imports them, and
each registers its class with :func:`calogen.models.registry.register_family` (the registry
calls it on first use). Listing the names does not import torch. Adding a family is adding its
module and its name here.
"""

from __future__ import annotations

import importlib

__all__ = ["FAMILY_MODULES", "family_names", "load_all"]

FAMILY_MODULES: tuple[str, ...] = (
    "vae", "ae_noise", "gan", "sdi_gan", "ddpm", "edm", "flow_matching", "consistency",
    "latent_flow_matching", "caloflow", "calo_inn", "caloflow_student", "vq_vae", "vq_gan",
    "icaloflow", "icaloflow_student", "voxel_diffusion",
    "caloclouds2", "caloclouds2_cm", "epic_gan", "bib_ae",  # point clouds (issue 16)
)
"""Modules of :mod:`calogen.models.families` that define a family."""


def family_names() -> list[str]:
    """The family names, from the module names (``_`` -> ``-``), without importing them."""
    return [module.replace("_", "-") for module in FAMILY_MODULES]


def load_all() -> None:
    """Import every family module (each registers its family)."""
    for module in FAMILY_MODULES:
        importlib.import_module(f"{__name__}.{module}")
