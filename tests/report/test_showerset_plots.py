"""Tests of the ``calogen show`` figure (headless, tiny synthetic files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from calogen.data.showerset import ShowerSet, write_showerset
from calogen.geometry import ZN, ZP
from calogen.report.showerset_plots import pick_examples, plot_showerset

PDG = np.array([2112] * 10 + [22] * 5 + [211] * 3 + [2212], dtype=np.int32)


def _write(path: Path, grid=ZN, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    n = PDG.size
    showers = rng.poisson(0.3, size=(n, *grid.shape)).astype(np.int32) * rng.integers(
        1, 40, size=(n, *grid.shape), dtype=np.int32)
    showers[2] = 0  # one empty response
    conditions = np.zeros((n, 9), dtype=np.float32)
    conditions[:, 0] = rng.uniform(10.0, 2000.0, n)
    write_showerset(path, showers, conditions, PDG.copy(), detector=grid.name,
                    geometry=grid.to_dict(), producer={"name": "test-toy"})
    return path


def test_pick_examples_spreads_over_species_and_is_seeded():
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    a = pick_examples(PDG, 6, rng_a)
    b = pick_examples(PDG, 6, rng_b)
    assert np.array_equal(a, b)
    assert len(a) == len(set(a.tolist())) == 6
    # 4 species, 6 examples: every species once, then the two most frequent again
    codes = PDG[a]
    assert sorted(set(codes.tolist())) == [22, 211, 2112, 2212]
    assert np.count_nonzero(codes == 2112) == 2 and np.count_nonzero(codes == 22) == 2
    assert list(dict.fromkeys(codes.tolist())) == [2112, 22, 211, 2212]  # grouped, by count
    assert len(pick_examples(PDG, 100, rng_a)) == PDG.size


@pytest.mark.parametrize("grid", [ZN, ZP], ids=["ZN", "ZP"])
def test_plot_writes_readable_png(tmp_path, grid):
    path = _write(tmp_path / f"{grid.name}.h5", grid)
    out = plot_showerset(path, tmp_path / "fig.png", n_examples=7, seed=1, max_events=12)
    assert out == tmp_path / "fig.png"
    assert out.stat().st_size > 10_000
    img = matplotlib.image.imread(out)
    height, width = img.shape[:2]
    assert width >= 1000 and 500 <= height <= 4000
    assert img.shape[2] in (3, 4)
    assert float(img[..., :3].std()) > 0.05  # not a blank canvas
    # atomic write leaves no temporary files behind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{grid.name}.h5", "fig.png"])


def test_plot_accepts_open_showerset_and_warsaw(tmp_path):
    path = _write(tmp_path / "zn.h5")
    with ShowerSet.open(path) as ss:
        out = plot_showerset(ss, tmp_path / "w.png", n_examples=1, convention="warsaw")
    assert matplotlib.image.imread(out).shape[1] >= 1000


def test_plot_rejects_bad_arguments(tmp_path):
    path = _write(tmp_path / "zn.h5")
    with pytest.raises(ValueError, match="convention"):
        plot_showerset(path, tmp_path / "x.png", convention="nonsense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_examples"):
        plot_showerset(path, tmp_path / "x.png", n_examples=0)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("kind", ["voxels", "points"])
def test_plot_voxels_and_points(tmp_path, kind):
    from calogen.testing.showersets import write_toy_points, write_toy_voxels

    write = write_toy_voxels if kind == "voxels" else write_toy_points
    path = write(tmp_path / f"{kind}.h5", 40, seed=4)
    out = plot_showerset(path, tmp_path / "fig.png", seed=1, max_events=25)
    img = matplotlib.image.imread(out)
    assert img.shape[1] >= 1000 and float(img[..., :3].std()) > 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{kind}.h5", "fig.png"])


def test_plot_refuses_empty_points_file(tmp_path):
    from calogen.testing.showersets import write_toy_points

    path = write_toy_points(tmp_path / "empty.h5", 0)
    with pytest.raises(ValueError, match="holds no events"):
        plot_showerset(path, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
