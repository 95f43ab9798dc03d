"""The Geant4 engine's `em+hadronic` list: 10 GeV pi+ and neutrons in the Par04 detector.

Each Geant4 set-up needs its own process, so the runs happen in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from calogen.physics.geant4 import PHYSICS_LISTS
from calogen.physics.geant4.environment import available

geant4 = pytest.mark.skipif(not available(), reason="geant4-pybind is not installed "
                            "(pip install 'calogen[geant4]')")

SRC = str(Path(__file__).resolve().parents[2] / "src")

TOTAL_DEPOSIT_10GEV_MEV = {211: 3475.0, 2112: 3153.0}
"""Mean deposit in the whole ds2 stack (1.4 mm W + 0.3 mm Si x 90, about 1.3 lambda_int) for a
10 GeV pi+ / neutron, em+hadronic list, 0.7 mm cut: measured on 300 events (seed 20240614):
pi+ 3475 +- 162 MeV (event spread 2811), neutron 3153 +- 140 MeV (spread 2422). Most of the
energy leaks out the back; a pi+ that does not interact leaves ~300 MeV (a MIP)."""


def run_in_subprocess(script: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": SRC})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_em_hadronic_list_shoots_hadrons() -> None:
    for pdg in (211, -211, 321, 2212, 2112, 130):
        assert pdg in PHYSICS_LISTS["em+hadronic"]
        assert pdg not in PHYSICS_LISTS["em"]
    assert set(PHYSICS_LISTS["em"]) <= set(PHYSICS_LISTS["em+hadronic"])


@geant4
def test_pion_and_neutron_showers_are_plausible_and_seeded() -> None:
    out = run_in_subprocess("""
        import json
        import numpy as np
        from calogen.physics.geant4 import producer_info, run_totals
        res = {}
        for pdg in (211, 2112):
            a = run_totals("ds2", pdg, np.full(30, 10000.0), seed=1, physics="em+hadronic")
            b = run_totals("ds2", pdg, np.full(30, 10000.0), seed=1, physics="em+hadronic")
            c = run_totals("ds2", pdg, np.full(3, 10000.0), seed=2, physics="em+hadronic")
            res[str(pdg)] = {"same": bool(np.array_equal(a, b)),
                             "other_seed_differs": bool(not np.array_equal(a[:3], c)),
                             "mean": float(a[:, 0].mean()), "min": float(a[:, 0].min()),
                             "max": float(a[:, 0].max()),
                             "si_fraction": float(a[:, 1].sum() / a[:, 0].sum())}
        res["producer"] = producer_info("ds2", 1, physics="em+hadronic")
        print(json.dumps(res, default=str))
    """)
    for pdg, expected in TOTAL_DEPOSIT_10GEV_MEV.items():
        r = out[str(pdg)]
        assert isinstance(r, dict)
        assert r["same"] and r["other_seed_differs"]
        # 30 events measure the mean to +- 16 %: a band of +- 45 % is about 2.8 sigma.
        assert r["mean"] == pytest.approx(expected, rel=0.45)
        # Hadronic interactions happen: some showers deposit several GeV (a non-interacting
        # hadron leaves at most ~300 MeV), none more than the beam energy.
        assert 3000.0 < r["max"] <= 10000.0 + 1.0
        # Si sees the sampling fraction of the showers' EM part (3.2 % for electrons) or more.
        assert 0.025 < r["si_fraction"] < 0.06
    # A charged pion always ionises its way through: ~300 MeV at least.
    assert out["211"]["min"] > 200.0  # type: ignore[index]
    producer = out["producer"]
    assert isinstance(producer, dict)
    assert producer["physics_list"] == "em+hadronic"
    assert "FTFP" in producer["physics_list_content"]
    assert producer["geant4_version"].startswith("11.4")
