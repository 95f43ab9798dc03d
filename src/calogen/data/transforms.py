"""Invertible transforms between physical showers/conditions and what networks see.

Saved with every model (JSON), fitted on the training split only:

* showers: ``y = log1p(photons)`` (inverse ``expm1``, clamped at 0);
* conditions: standardised with the training split's mean and std per column (a constant
  column gets std 1), as ALICE O2's ``scales`` files do;
* species: the PDG code mapped to an index among the training species (unseen codes share
  one extra "other" index), for an optional species embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor


@dataclass
class Transforms:
    """Fitted transforms. Build with :meth:`fit`; persist with :meth:`to_dict`/:meth:`from_dict`."""

    condition_columns: list[str]
    condition_mean: list[float]
    condition_std: list[float]
    species_codes: list[int] = field(default_factory=list)
    shower: str = "log1p"

    @classmethod
    def fit(cls, conditions: ArrayLike, pdg: ArrayLike,
            condition_columns: list[str] | tuple[str, ...]) -> Transforms:
        """Fit on training conditions ``(N, k)`` and PDG codes ``(N,)``."""
        c = np.asarray(conditions, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != len(condition_columns) or len(c) == 0:
            raise ValueError(f"conditions must have shape (N, {len(condition_columns)}) with "
                             f"N > 0, got {c.shape}")
        std = c.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        codes = sorted(int(p) for p in np.unique(np.asarray(pdg)))
        return cls(list(condition_columns), c.mean(axis=0).tolist(), std.tolist(), codes)

    @property
    def n_conditions(self) -> int:
        return len(self.condition_mean)

    @property
    def n_species(self) -> int:
        """Number of species indices, including the "other" bucket."""
        return len(self.species_codes) + 1

    def conditions(self, conditions: ArrayLike | Tensor) -> Tensor:
        """Standardised conditions, float32 tensor ``(N, k)``."""
        c = torch.as_tensor(np.asarray(conditions, dtype=np.float32)) \
            if not isinstance(conditions, Tensor) else conditions.float()
        mean = torch.tensor(self.condition_mean, dtype=torch.float32, device=c.device)
        std = torch.tensor(self.condition_std, dtype=torch.float32, device=c.device)
        return (c - mean) / std

    def species(self, pdg: ArrayLike | Tensor) -> Tensor:
        """Species indices (int64 tensor); unseen PDG codes map to the last index."""
        codes = np.asarray(pdg.cpu() if isinstance(pdg, Tensor) else pdg, dtype=np.int64)
        table = np.asarray(self.species_codes, dtype=np.int64)
        pos = np.searchsorted(table, codes)
        pos = np.clip(pos, 0, max(len(table) - 1, 0))
        known = (table[pos] == codes) if len(table) else np.zeros(codes.shape, bool)
        return torch.as_tensor(np.where(known, pos, len(table)), dtype=torch.int64)

    @staticmethod
    def showers(photons: ArrayLike | Tensor) -> Tensor:
        """Network space: ``log1p(photons)``, float32."""
        x = photons if isinstance(photons, Tensor) else torch.as_tensor(np.asarray(photons))
        return torch.log1p(x.float().clamp(min=0))

    @staticmethod
    def inverse_showers(y: Tensor) -> Tensor:
        """Physical photons from network space: ``expm1(y)`` clamped at 0."""
        return torch.expm1(y.clamp(max=20.0)).clamp(min=0)

    def to_dict(self) -> dict[str, Any]:
        return {"condition_columns": list(self.condition_columns),
                "condition_mean": list(self.condition_mean),
                "condition_std": list(self.condition_std),
                "species_codes": list(self.species_codes), "shower": self.shower}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transforms:
        try:
            t = cls(list(d["condition_columns"]), [float(v) for v in d["condition_mean"]],
                    [float(v) for v in d["condition_std"]],
                    [int(v) for v in d.get("species_codes", [])], str(d.get("shower", "log1p")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"transforms: malformed entry ({exc})") from None
        if t.shower != "log1p":
            raise ValueError(f"transforms: unknown shower transform {t.shower!r}")
        if not (len(t.condition_columns) == len(t.condition_mean) == len(t.condition_std)):
            raise ValueError("transforms: condition columns, means and stds differ in length")
        return t
