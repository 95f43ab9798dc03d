"""Derived ZDC conditions: log energy and the impact point on the calorimeter face.

The 9 ALICE O2 conditions ``E, vx, vy, vz, px, py, pz, mass, charge`` fix where a particle
hits the ZDC only through ``v + (p_t / |p_z|) * (L - sign(p_z) v_z)`` (straight-line
propagation over L = 112.5 m, :func:`calogen.particles.impact_point_cm`): a ratio that a small
MLP on linearly standardised columns learns poorly for the secondaries, whose energies span
1 GeV to TeV and whose directions vary. :class:`ZDCConditionFeatures` computes it (and log E)
inside the network from the standardised conditions, so a model still takes the O2 signature's
9 columns (and exports to ONNX with them) but sees where the shower starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calogen.particles import ZDC_DISTANCE_M

__all__ = ["CONDITION_FEATURES", "ZDC_COLUMNS", "ZDCConditionFeatures", "condition_features",
           "shift_images"]

ZDC_COLUMNS: tuple[str, ...] = ("E", "vx", "vy", "vz", "px", "py", "pz")
"""Condition columns the derived features are computed from (ALICE O2 names and units)."""

CONDITION_FEATURES: tuple[str, ...] = ("auto", "zdc", "raw")
"""Hparam ``condition_features``: ``"zdc"`` appends :class:`ZDCConditionFeatures`, ``"raw"``
feeds the standardised columns only, ``"auto"`` is ``"zdc"`` for models of the ZDC grids
(ZN, ZP) whose columns include all of :data:`ZDC_COLUMNS`, else ``"raw"``."""

LOG_E_CENTRE, LOG_E_SCALE = 4.0, 2.0
"""log(E / GeV) is fed as (log E - 4) / 2: ~[-2, 2] over 1 GeV ... 3 TeV."""

IMPACT_SCALE_CM, IMPACT_CLIP_CM = 2.0, 8.0
"""Impact coordinates are fed in units of 2 cm, clipped to +-8 cm (beyond the ZN's
~3.5 cm half-width: particles that miss leave no light and are not kept)."""


class ZDCConditionFeatures(nn.Module):
    """Standardised ZDC conditions ``(B, k)`` -> ``(B, k + 3)``: the columns followed by
    (log E - 4) / 2 and the impact point (x0, y0) / 2 cm on the face at ``distance_m``.

    Args:
        columns: the model's condition column names (must include :data:`ZDC_COLUMNS`).
        mean, std: the standardisation of those columns (``Transforms``), to undo it.
        distance_m: distance of the detector face from the interaction point, m.
    """

    n_extra: int = 3
    mean: Tensor
    std: Tensor
    index: Tensor

    def __init__(self, columns: Sequence[str], mean: Sequence[float], std: Sequence[float],
                 distance_m: float = ZDC_DISTANCE_M) -> None:
        super().__init__()
        missing = [c for c in ZDC_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"ZDC condition features need the columns {list(ZDC_COLUMNS)}; "
                             f"missing {missing} in {list(columns)}")
        idx = [list(columns).index(c) for c in ZDC_COLUMNS]
        self.register_buffer("mean", torch.tensor([mean[i] for i in idx], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([std[i] for i in idx], dtype=torch.float32))
        self.register_buffer("index", torch.tensor(idx, dtype=torch.int64))
        self.distance_m = float(distance_m)

    def impact_cm(self, cond: Tensor) -> Tensor:
        """Impact point ``(B, 2)`` (x0, y0) in cm on the face, from standardised conditions,
        clipped to +-IMPACT_CLIP_CM."""
        raw = cond.index_select(1, self.index) * self.std + self.mean
        _, vx, vy, vz, px, py, pz = raw.unbind(1)
        sign = torch.where(pz < 0, -1.0, 1.0)
        apz = (pz * sign).clamp(min=1e-12)
        lever = self.distance_m - sign * vz  # m
        x0 = (vx + px / apz * lever) * 100.0  # cm
        y0 = (vy + py / apz * lever) * 100.0
        return torch.stack([x0, y0], 1).clamp(-IMPACT_CLIP_CM, IMPACT_CLIP_CM)

    def forward(self, cond: Tensor) -> Tensor:
        e = cond.index_select(1, self.index[:1]) * self.std[:1] + self.mean[:1]
        log_e = (torch.log(e.clamp(min=0.1)) - LOG_E_CENTRE) / LOG_E_SCALE
        return torch.cat([cond, log_e, self.impact_cm(cond) / IMPACT_SCALE_CM], 1)


def shift_images(images: Tensor, shift: Tensor) -> Tensor:
    """``images (B, C, H, W)`` moved by whole pixels ``shift (B, 2)`` = (rows, columns)
    (rounded): ``out[r, c] = in[r - dr, c - dc]``, the uncovered border filled with the
    nearest edge value of ``in`` (no interpolation: values are only copied)."""
    b, _, h, w = images.shape
    d = shift.round().to(images.dtype)
    rows = torch.arange(h, device=images.device, dtype=images.dtype)
    cols = torch.arange(w, device=images.device, dtype=images.dtype)
    # source pixel centres in grid_sample's normalised coordinates (align_corners=True)
    src_r = ((rows[None, :] - d[:, :1]).clamp(0, h - 1) * (2.0 / max(h - 1, 1)) - 1.0)
    src_c = ((cols[None, :] - d[:, 1:]).clamp(0, w - 1) * (2.0 / max(w - 1, 1)) - 1.0)
    grid = torch.stack([src_c[:, None, :].expand(b, h, w), src_r[:, :, None].expand(b, h, w)],
                       dim=-1)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="border",
                         align_corners=True)


def condition_features(mode: str, columns: Sequence[str], mean: Sequence[float],
                       std: Sequence[float]) -> ZDCConditionFeatures | None:
    """The derived-feature module for hparam ``condition_features`` = ``mode`` (``None`` for
    none); ``ValueError`` for an unknown mode or ``"zdc"`` without the ZDC columns."""
    if mode not in CONDITION_FEATURES:
        raise ValueError(f"hparam 'condition_features' must be one of {CONDITION_FEATURES}, "
                         f"got {mode!r}")
    if mode == "raw" or (mode == "auto" and not set(ZDC_COLUMNS) <= set(columns)):
        return None
    return ZDCConditionFeatures(columns, mean, std)
