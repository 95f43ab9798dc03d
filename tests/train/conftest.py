"""Shared fixture: small synthetic 8x8 ShowerSet files with repeated conditions (groups)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from calogen.data.showerset import write_showerset

H = W = 8


def write_toy_showerset(path: Path, n_groups: int = 120, repeats: int = 4, seed: int = 0,
                        shape: tuple[int, ...] = (H, W)) -> Path:
    """``n_groups * repeats`` events; the photon yield grows with E (column 0), the
    transverse position (columns 1, 2) moves the shower centre."""
    rng = np.random.default_rng(seed)
    n = n_groups * repeats
    base = np.zeros((n_groups, 9), dtype=np.float32)
    base[:, 0] = rng.uniform(1.0, 50.0, n_groups)          # E
    base[:, 1:3] = rng.uniform(-1.0, 1.0, (n_groups, 2))   # vx, vy
    base[:, 3] = rng.normal(0.0, 0.1, n_groups)            # vz
    base[:, 6] = base[:, 0]                                # pz
    base[:, 7] = 939.6                                     # mass
    conditions = np.repeat(base, repeats, axis=0)
    ids = np.repeat(np.arange(n_groups, dtype=np.int64) * 7 + 3, repeats)
    pdg = np.where(rng.random(n) < 0.7, 2112, 22).astype(np.int32)
    if len(shape) == 2:
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
        cy = (shape[0] - 1) / 2 + 2.0 * conditions[:, 2, None, None]
        cx = (shape[1] - 1) / 2 + 2.0 * conditions[:, 1, None, None]
        lam = conditions[:, 0, None, None] * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)
    else:
        lam = np.broadcast_to(conditions[:, :1], (n, *shape))
    showers = rng.poisson(lam).astype(np.int32)
    return write_showerset(path, showers, conditions, pdg, condition_id=ids, detector="TOY",
                           geometry={"name": "toy", "shape": list(shape)},
                           producer={"name": "tests/train"})


@pytest.fixture
def make_showerset(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(**kwargs) -> Path:
        return write_toy_showerset(tmp_path / f"toy{next(counter)}.h5", **kwargs)

    return make


@pytest.fixture
def toy_file(make_showerset) -> Path:
    return make_showerset()


@pytest.fixture(scope="session")
def shared_toy_file(tmp_path_factory) -> Path:
    """One toy file for a whole session (read-only use)."""
    return write_toy_showerset(tmp_path_factory.mktemp("shared") / "toy.h5")
