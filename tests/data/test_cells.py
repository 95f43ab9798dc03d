"""Projection of point-cloud ShowerSets onto cells (``calogen.data.cells``)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from calogen.data import write_showerset
from calogen.data.cells import outside_volume, project_file, resolve_volume
from calogen.data.errors import ShowerSetError
from calogen.geometry.points import PointCloudVolume, ild_like_ecal
from calogen.particles import gun_conditions
from calogen.testing.showersets import TOY_VOLUME, write_toy_voxels

SMALL = PointCloudVolume("small", (0.0, 20.0), (0.0, 10.0), (0.0, 10.0, 20.0),
                         cell_size_mm=(10.0, 10.0))
"""2 layers of 1 (y) x 2 (x) cells of 10 mm."""


def _write(path: Path, points: list[list[float]], counts: list[int],
           e_inc: list[float]) -> Path:
    columns, units = gun_conditions("E_inc")
    return write_showerset(path, np.asarray(points, dtype=np.float32).reshape(-1, 4),
                           np.asarray(e_inc, dtype=np.float32).reshape(-1, 1),
                           np.full(len(counts), 22, dtype=np.int32), counts=counts,
                           detector="small", geometry=SMALL, producer={"name": "test"},
                           condition_columns=columns, condition_units=units)


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    """Shower 0: 1 MeV + 2 MeV in layer 0 cell x0, 0.05 MeV in layer 1 cell x1; shower 1:
    empty; shower 2: one 3 MeV point at x = 12 mm, layer 1."""
    return _write(tmp_path / "hand.h5",
                  [[1.0, 5.0, 2.0, 1.0], [9.0, 5.0, 8.0, 2.0], [15.0, 5.0, 15.0, 0.05],
                   [12.0, 5.0, 11.0, 3.0]], [3, 0, 1], [10.0, 20.0, 30.0])


def test_hand_placed_points_land_in_the_cells_computed_by_hand(hand: Path,
                                                               tmp_path: Path) -> None:
    done = project_file(hand, tmp_path / "cells.h5", threshold_mev=0.0)
    assert done.n_showers == 3 and done.grid_shape == (2, 1, 2) and done.n_outside == 0
    expected = np.zeros((3, 2, 1, 2), dtype=np.float32)
    expected[0, 0, 0, 0] = 3.0
    expected[0, 1, 0, 1] = 0.05
    expected[2, 1, 0, 1] = 3.0
    with h5py.File(done.path) as f:
        np.testing.assert_allclose(f["cells"][()], expected, rtol=1e-6)
        np.testing.assert_array_equal(f["energy"][()].ravel(), [10.0, 20.0, 30.0])
        assert f["cells"].compression == "gzip"
        assert f.attrs["threshold_mev"] == 0.0
        assert json.loads(f.attrs["volume"])["name"] == "small"
        assert f.attrs["source"] == str(hand.resolve())


def test_threshold_zeroes_cells_below_it(hand: Path, tmp_path: Path) -> None:
    done = project_file(hand, tmp_path / "cells.h5")  # default: half a MIP, 0.1 MeV
    with h5py.File(done.path) as f:
        cells = f["cells"][()]
        assert cells[0, 1, 0, 1] == 0.0  # 0.05 MeV < 0.1 MeV
        assert cells[0, 0, 0, 0] == pytest.approx(3.0)
        assert f.attrs["threshold_mev"] == pytest.approx(0.1)


def test_shifted_and_resized_grids_move_energy_to_the_expected_cells(hand: Path,
                                                                     tmp_path: Path) -> None:
    # offset 5 mm: cell edges at -5, 5, 15, 25: x = 1 -> cell 0, x = 9 -> cell 1, x = 12 -> 1,
    # x = 15 -> cell 2
    done = project_file(hand, tmp_path / "shift.h5", cell_offset_mm=(5.0, 0.0),
                        threshold_mev=0.0)
    assert done.grid_shape == (2, 1, 3)
    with h5py.File(done.path) as f:
        cells = f["cells"][()]
        np.testing.assert_allclose(f.attrs["cell_offset_mm"], [5.0, 0.0])
    np.testing.assert_allclose(cells[0, 0, 0], [1.0, 2.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(cells[0, 1, 0], [0.0, 0.0, 0.05], rtol=1e-6)
    np.testing.assert_allclose(cells[2, 1, 0], [0.0, 3.0, 0.0], rtol=1e-6)
    # 5 mm cells: x = 1 -> 0, 9 -> 1, 12 -> 2, 15 -> 3; y = 5 -> row 1
    done = project_file(hand, tmp_path / "small.h5", cell_size_mm=(5.0, 5.0),
                        threshold_mev=0.0)
    assert done.grid_shape == (2, 2, 4)
    with h5py.File(done.path) as f:
        cells = f["cells"][()]
    np.testing.assert_allclose(cells[0, 0, 1], [1.0, 2.0, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(cells[2, 1, 1], [0.0, 0.0, 3.0, 0.0], rtol=1e-6)
    assert cells[:, :, 0].sum() == 0.0


def test_points_outside_the_volume_are_counted(tmp_path: Path) -> None:
    path = _write(tmp_path / "out.h5", [[1.0, 5.0, 2.0, 1.0], [1.0, 5.0, 25.0, 1.0],
                                        [-3.0, 5.0, 2.0, 1.0]], [3], [10.0])
    done = project_file(path, tmp_path / "cells.h5")
    assert done.n_outside == 2
    with h5py.File(done.path) as f:
        assert f["cells"][()].sum() == pytest.approx(1.0)


def test_refuses_voxels_existing_output_and_bad_grids(tmp_path: Path) -> None:
    vox = write_toy_voxels(tmp_path / "vox.h5", n=3)
    with pytest.raises(ShowerSetError, match="'points'"):
        project_file(vox, tmp_path / "c.h5")
    assert not (tmp_path / "c.h5").exists()
    pts = _write(tmp_path / "p.h5", [[1.0, 5.0, 2.0, 1.0]], [1], [10.0])
    (tmp_path / "exists.h5").write_bytes(b"x")
    with pytest.raises(ShowerSetError, match="refusing to overwrite"):
        project_file(pts, tmp_path / "exists.h5")
    with pytest.raises(ValueError, match="cell_size_mm"):
        project_file(pts, tmp_path / "c.h5", cell_size_mm=(0.0, 5.0))
    with pytest.raises(ValueError, match="threshold"):
        project_file(pts, tmp_path / "c.h5", threshold_mev=float("nan"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.h5", "p.h5", "vox.h5"]


def test_resolve_volume_by_name_and_json(tmp_path: Path) -> None:
    assert resolve_volume("ild") == ild_like_ecal() == resolve_volume(None)
    spec = tmp_path / "v.json"
    spec.write_text(json.dumps(TOY_VOLUME.to_dict()))
    assert resolve_volume(spec) == TOY_VOLUME
    with pytest.raises(ValueError, match="expected one of"):
        resolve_volume("hgcal")
    spec.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        resolve_volume(spec)
    assert outside_volume(TOY_VOLUME, np.array([[0, 0, 5, 1], [0, 0, 35, 1.0]])) == 1
