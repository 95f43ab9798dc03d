"""Metrics of the ZDC papers that need paired or per-pixel data (``shared/METRICS.md``).

All in photons, on counts (undo any log transform first).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def paired_channel_mae(ref_channels: NDArray[np.floating],
                       gen_channels: NDArray[np.floating]) -> float:
    """MAE of the ZDC papers: the mean over samples of the mean over the 5 channels of
    |channel_ref - channel_gen|, pairing row i of the reference with row i of the generated set
    (generated for the same condition). Photons."""
    ref, gen = np.asarray(ref_channels, np.float64), np.asarray(gen_channels, np.float64)
    if ref.shape != gen.shape:
        raise ValueError(f"paired MAE needs equal shapes, got {ref.shape} and {gen.shape}")
    return float(np.abs(ref - gen).mean())


class PixelRMSE:
    """Per-pixel RMSE, accumulated over batches of paired images.

    sqrt(mean over images and pixels of (ref - gen)^2), photons. This is the per-pixel
    reduction of the successor ZDC paper; the original paper averaged per-image L2 norms
    instead (reported separately as :attr:`mean_image_l2`).
    """

    def __init__(self) -> None:
        self._sq = 0.0
        self._l2 = 0.0
        self._pixels = 0
        self._images = 0

    def update(self, ref: NDArray[np.generic], gen: NDArray[np.generic]) -> None:
        """Add a batch of paired images of identical shape ``(n, ...)``."""
        r, g = np.asarray(ref, np.float64), np.asarray(gen, np.float64)
        if r.shape != g.shape:
            raise ValueError(f"pixel RMSE needs equal shapes, got {r.shape} and {g.shape}")
        d2 = (r - g) ** 2
        self._sq += float(d2.sum())
        self._l2 += float(np.sqrt(d2.reshape(len(d2), -1).sum(axis=1)).sum())
        self._pixels += d2.size
        self._images += len(d2)

    @property
    def value(self) -> float:
        """Per-pixel RMSE, photons."""
        return float(np.sqrt(self._sq / self._pixels)) if self._pixels else float("nan")

    @property
    def mean_image_l2(self) -> float:
        """Mean over images of the per-image L2 norm of the difference (original paper)."""
        return self._l2 / self._images if self._images else float("nan")


def condition_diversity(photon_sums: NDArray[np.floating],
                        condition_id: NDArray[np.integer]) -> tuple[float, int]:
    """Diversity for identical conditions: the mean over condition groups with >= 2 members of
    the relative spread (std / mean) of the photon sum within the group.

    Returns ``(diversity, n_groups)``; ``(nan, 0)`` when no condition repeats. Copies of one
    response give 0; the reference's value is what a model should reproduce (SDI-GAN's aim).
    """
    s = np.asarray(photon_sums, np.float64)
    ids = np.asarray(condition_id)
    if s.shape != ids.shape or s.ndim != 1:
        raise ValueError(f"photon_sums and condition_id must be 1-D of equal length, got "
                         f"{s.shape} and {ids.shape}")
    _, group, size = np.unique(ids, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    mean = np.bincount(group, weights=s) / size
    # Two-pass (unbiased) variance: stable for large sums with a small spread.
    sq = np.bincount(group, weights=(s - mean[group]) ** 2)
    multi = (size >= 2) & (mean > 0)
    if not multi.any():
        return float("nan"), 0
    return float(np.mean(np.sqrt(sq[multi] / (size[multi] - 1)) / mean[multi])), int(multi.sum())
