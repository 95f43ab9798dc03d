"""The Geant4 engine's ZN: tungsten-alloy block, quartz fibres, Cherenkov photons per fibre.

Geant4 runs happen in a subprocess (one Geant4 set-up per process).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from calogen.geometry import ZN
from calogen.physics.geant4 import detectors
from calogen.physics.geant4.environment import available

geant4 = pytest.mark.skipif(not available(), reason="geant4-pybind is not installed "
                            "(pip install 'calogen[geant4]')")

SRC = str(Path(__file__).resolve().parents[2] / "src")

ELECTRON_PHOTONS_PER_GEV = 1.05
"""ALICE O2 ZN yield of electrons and photons above 20 GeV (shared/PHYSICS.md), to which the
fibres' efficiency is calibrated."""


def test_zn_detector_matches_the_readout_grid() -> None:
    zn = detectors.get_detector("zn")
    assert isinstance(zn, detectors.FibreBlockDetector)
    assert zn.geometry() is ZN and zn.n_cells == 44 * 44
    assert zn.pitch_mm == pytest.approx((1.6, 1.6))
    assert zn.half_width_mm == pytest.approx((35.2, 35.2))
    assert zn.depth_mm == 1000.0 and zn.absorber_density == 17.6
    centres = zn.fibre_centres_mm()
    assert len(centres) == 1936
    # Row 0 at the top (largest y), column 0 at the left (smallest x), index row * 44 + col.
    assert centres[0] == (0, pytest.approx(-34.4), pytest.approx(34.4))
    assert centres[43] == (43, pytest.approx(34.4), pytest.approx(34.4))
    assert centres[44] == (44, pytest.approx(-34.4), pytest.approx(32.8))
    rows, cols = ZN.pixel_centres_cm()
    _, x, y = centres[5 * 44 + 7]
    row_cm, col_cm = ZN.face_to_image(np.array(x / 10), np.array(y / 10))
    assert (float(row_cm), float(col_cm)) == pytest.approx((rows[5], cols[7]))


def test_frank_tamm_yield_per_mm() -> None:
    zn = detectors.get_detector("zn")
    assert isinstance(zn, detectors.FibreBlockDetector)
    # 2 pi alpha (1/300 nm - 1/600 nm) = 76.4 photons per mm before sin^2 and efficiency.
    assert zn.yield_per_mm / zn.efficiency == pytest.approx(76.41, rel=1e-3)
    assert 0 < zn.efficiency < 1
    # Threshold and angle in fused silica: beta > 1/1.458, theta_c(beta = 1) = 46.7 degrees.
    assert math.degrees(math.acos(1 / zn.refractive_index)) == pytest.approx(46.7, abs=0.1)


def test_bad_fibre_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="mass fractions must sum to 1"):
        detectors.FibreBlockDetector("x", ZN, 1000.0, 17.6, (("W", 0.9),), 0.365)
    with pytest.raises(ValueError, match="do not fit"):
        detectors.FibreBlockDetector("x", ZN, 1000.0, 17.6, (("W", 1.0),), 2.0)


@geant4
def test_zn_electrons_give_the_calibrated_yield_seeded_images() -> None:
    script = textwrap.dedent("""
        import json
        import numpy as np
        from calogen.physics.geant4 import producer_info, run_showers
        impacts = [(0.0, 0.0)] * 6 + [(16.0, 16.0)] * 2
        e = np.full(8, 50000.0)
        a = run_showers("zn", 11, e, seed=3, impact_mm=impacts)
        b = run_showers("zn", 11, e, seed=3, impact_mm=impacts)
        c = run_showers("zn", 11, e[:2], seed=4)
        d = run_showers("zn", 11, e[1:3], seed=3, first_index=1)
        try:
            run_showers("zn", 11, e[:1], seed=3, impact_mm=(40.0, 0.0))
            off_face = "accepted"
        except ValueError as exc:
            off_face = str(exc)
        rows, cols = np.indices((44, 44))
        w = a[6:].sum(axis=0).astype(float)
        print(json.dumps({
            "dtype": str(a.dtype), "shape": list(a.shape), "min": int(a.min()),
            "same": bool(np.array_equal(a, b)), "other_seed": bool(not np.array_equal(a[:2], c)),
            "batch_independent": bool(np.array_equal(a[1:3], d)),
            "photons": a[:6].reshape(6, -1).sum(axis=1).tolist(),
            "offset_centroid": [float((w * rows).sum() / w.sum()),
                                float((w * cols).sum() / w.sum())],
            "off_face": off_face,
            "detector": producer_info("zn", 3)["detector"]["kind"]}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": SRC}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["dtype"] == "int32" and out["shape"] == [8, 44, 44] and out["min"] >= 0
    assert out["same"] and out["other_seed"] and out["batch_independent"]
    per_gev = np.mean(out["photons"]) / 50.0
    # Six showers of ~52 photons (event spread ~20 %) measure the yield to ~8 %.
    assert per_gev == pytest.approx(ELECTRON_PHOTONS_PER_GEV, rel=0.25)
    # Impact at x = +16 mm (right), y = +16 mm (up): row (35.2 - 16) / 1.6 - 0.5 = 11.5,
    # column (35.2 + 16) / 1.6 - 0.5 = 31.5.
    assert out["offset_centroid"] == pytest.approx([11.5, 31.5], abs=1.5)
    assert "must lie on the zn face" in out["off_face"]
    assert out["detector"] == "fibre-block"
