"""Validation metrics handed to the trainer (which may not import this layer itself)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from calogen.geometry.channels import Convention, channel_sums
from calogen.geometry.zdc import GRIDS, get_grid
from calogen.metrics.distances import channel_wasserstein


def channel_w1_validator(detector: str, convention: Convention = "o2", seed: int = 1234
                         ) -> Callable[[Any, Any], dict[str, float]]:
    """A ``val_metric(model, val_tensors)`` computing the channel Wasserstein (photons, mean
    of the 5 PMT channels; the ZDC papers' headline) of the model's samples for the
    validation conditions against the validation responses. A fixed noise seed makes
    successive validations comparable."""
    grid = get_grid(detector)

    def validate(model: Any, val: Any) -> dict[str, float]:
        gen = model.sample(val.conditions, val.pdg, torch.Generator(
            device=next(model.parameters()).device).manual_seed(seed))
        ref_photons = val.photons()
        cw = channel_wasserstein(channel_sums(ref_photons, grid, convention),
                                 channel_sums(gen, grid, convention))
        return {"channel_w1": float(cw.mean),
                "photon_sum_ratio": float(np.sum(gen) / max(np.sum(ref_photons), 1.0))}

    return validate


def validator_for(family: str, detector: str) -> Callable[[Any, Any], dict[str, float]] | None:
    """The validation metric to train ``family`` with on ``detector``'s showers:
    :func:`channel_w1_validator` for the ZDC (ZN, ZP), or ``None`` (the trainer's validation
    loss) for other geometries (voxels, point clouds, other images) and for families that
    cannot afford to sample the validation subset
    (:attr:`calogen.models.generator.Generator.validate_by_sampling`)."""
    from calogen.models.registry import family_class

    if not family_class(family).validate_by_sampling or detector.upper() not in GRIDS:
        return None
    return channel_w1_validator(detector)
