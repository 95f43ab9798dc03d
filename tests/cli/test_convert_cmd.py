"""``calogen import-npz`` / ``export-npz`` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from calogen.cli import convert_cmd
from calogen.data import ShowerSet


@pytest.fixture
def app() -> typer.Typer:
    """A fresh app with only the convert commands (independent of the other command modules)."""
    app = typer.Typer(pretty_exceptions_enable=False)
    convert_cmd.register(app)
    return app


@pytest.fixture
def npz_pair(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    rng = np.random.default_rng(0)
    responses = rng.poisson(0.5, size=(12, 56, 30)).astype(np.int32)
    particles = np.column_stack([rng.normal(size=(12, 9)), np.full(12, 2212.0)])
    r, p = tmp_path / "r.npz", tmp_path / "p.npz"
    np.savez(r, responses)
    np.savez(p, particles)
    return r, p, responses


def test_import_then_export(app: typer.Typer, npz_pair: tuple[Path, Path, np.ndarray],
                            tmp_path: Path) -> None:
    r, p, responses = npz_pair
    out = tmp_path / "zp.h5"
    runner = CliRunner()
    res = runner.invoke(app, ["import-npz", "--responses", str(r), "--particles", str(p),
                              "--out", str(out), "--detector", "ZP"])
    assert res.exit_code == 0, res.output
    assert str(out.resolve()) in res.output
    with ShowerSet(out) as ss:
        assert ss.meta.detector == "ZP" and len(ss) == 12
    res = runner.invoke(app, ["export-npz", str(out), "--responses", str(tmp_path / "r2.npz"),
                              "--particles", str(tmp_path / "p2.npz")])
    assert res.exit_code == 0, res.output
    assert "r2.npz" in res.output and "p2.npz" in res.output
    np.testing.assert_array_equal(np.load(tmp_path / "r2.npz")["arr_0"], responses)


def test_bad_input_exits_2_with_one_line(app: typer.Typer,
                                         npz_pair: tuple[Path, Path, np.ndarray],
                                         tmp_path: Path) -> None:
    r, p, _ = npz_pair
    out = tmp_path / "zn.h5"
    res = CliRunner().invoke(app, ["import-npz", "--responses", str(r), "--particles", str(p),
                                   "--out", str(out)])  # ZP images, ZN by default
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "shape (N, 44, 44)" in err
    assert "Traceback" not in res.output
    assert not out.exists()


def test_missing_showerset_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["export-npz", str(tmp_path / "none.h5"), "--responses",
                                   str(tmp_path / "r.npz"), "--particles",
                                   str(tmp_path / "p.npz")])
    assert res.exit_code == 2 and "file not found" in res.stderr


def test_registered_on_main_app() -> None:
    main = pytest.importorskip("calogen.cli.main")
    names = {c.name for c in main.app.registered_commands}
    assert {"import-npz", "export-npz"} <= names


@pytest.mark.parametrize("kind", ["voxels", "points"])
def test_export_refuses_voxels_and_points(app: typer.Typer, tmp_path: Path, kind: str) -> None:
    from calogen.testing.showersets import write_toy_points, write_toy_voxels

    write = write_toy_voxels if kind == "voxels" else write_toy_points
    src = write(tmp_path / f"{kind}.h5", 6)
    out = tmp_path / "out"
    out.mkdir()
    res = CliRunner().invoke(app, ["export-npz", str(src), "--responses", str(out / "r.npz"),
                                   "--particles", str(out / "p.npz")])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and str(src) in err
    assert "field 'geometry.kind': expected ZDC images" in err and f"found {kind}" in err
    assert list(out.iterdir()) == []
