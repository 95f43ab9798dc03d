"""Families trained on top of another trained model, and how their hparams are derived.

* ``consistency`` distils an ``edm`` *teacher* (:mod:`calogen.models.consistency`);
* ``caloflow-student`` (IAF) is distilled from a ``caloflow`` (MAF) *teacher*
  (:mod:`calogen.models.caloflow`);
* ``latent-flow-matching`` models the latent space of a trained *autoencoder* (``vae`` or
  ``ae-noise``; :mod:`calogen.models.latent_fm`).

Used by ``calogen train`` (``--teacher`` / ``--autoencoder``) and by the quickstart, which
trains the prerequisite first when asked for such a family.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from calogen.models.base import Generator

__all__ = ["PREREQUISITES", "Prerequisite", "hparams_on_top_of", "load_frozen_base"]


@dataclass(frozen=True)
class Prerequisite:
    """``family`` needs a trained model of ``base_family`` given as option ``option``."""

    family: str
    base_family: str
    option: str


PREREQUISITES: dict[str, Prerequisite] = {
    "consistency": Prerequisite("consistency", "edm", "teacher"),
    "latent-flow-matching": Prerequisite("latent-flow-matching", "vae", "autoencoder"),
    "caloflow-student": Prerequisite("caloflow-student", "caloflow", "teacher"),
}
"""Families that need a trained base model; ``base_family`` is the default base."""


def hparams_on_top_of(family: str, base_dir: str | Path,
                      overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hparams of a ``family`` model built on the trained model in ``base_dir``.
    ``ValueError`` if ``family`` is not trained on top of another model, or the base does
    not fit."""
    if family == "consistency":
        from calogen.models.consistency import hparams_from_teacher

        return hparams_from_teacher(base_dir, overrides)
    if family == "caloflow-student":
        from calogen.models.caloflow import hparams_from_flow_teacher

        return hparams_from_flow_teacher(base_dir, overrides)
    if family == "latent-flow-matching":
        from calogen.models.latent_fm import hparams_from_autoencoder

        return hparams_from_autoencoder(base_dir, overrides)
    raise ValueError(f"{family!r} is not trained on top of another model; families that are: "
                     f"{sorted(PREREQUISITES)}")


def load_frozen_base(path: str, family: str, hparams: dict[str, Any], shared_keys: tuple[str, ...],
                     device: torch.device | str, builder: str) -> Generator:
    """The trained ``family`` model at ``path`` that a model with ``hparams`` is built on,
    frozen and in eval mode. ``ValueError`` for another family or when the ``shared_keys``
    hparams differ (the model should be built with ``builder``). Building it does not draw
    from the global RNG: a resumed run loads its base at a later step than an uninterrupted
    one and would otherwise diverge from it."""
    import torch

    from calogen.models.io import load_model

    with torch.random.fork_rng(devices=[]):
        base = load_model(path, map_location=device)
    if base.family != family:
        raise ValueError(f"{path}: must be a {family!r} model, got {base.family!r}")
    mismatch = [k for k in shared_keys if base.hparams.get(k) != hparams.get(k)]
    if mismatch:
        raise ValueError(f"{path}: differs from the model built on it in {mismatch}; build "
                         f"the model with {builder}()")
    base.eval().requires_grad_(False)
    return base
