import json
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet

runner = CliRunner()


def test_simulate_writes_a_showerset_and_says_where(tmp_path):
    out = tmp_path / "zn.h5"
    res = runner.invoke(app, ["simulate", "zn", "--n", "150", "--seed", "5", "--out", str(out),
                              "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert str(out.resolve()) in res.output
    with ShowerSet.open(out) as ss:
        assert len(ss) == 150 and ss.meta.detector == "ZN"


def test_simulate_zp_with_repeats(tmp_path):
    out = tmp_path / "zp.h5"
    res = runner.invoke(app, ["simulate", "zp", "--n", "60", "--repeats", "3", "--out", str(out),
                              "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(out) as ss:
        assert ss.shower_shape == (56, 30)
        ids = ss.condition_ids()
    assert len(np.unique(ids)) < len(ids)


def test_resimulate_particles_file(tmp_path):
    particles = np.zeros((4, 10), dtype=np.float64)
    particles[:, 0] = [100.0, 500.0, 1000.0, 2680.0]
    particles[:, 6] = particles[:, 0]  # pz: along the beam, side A
    particles[:, 7] = 939.565
    particles[:, 9] = 2112
    path = tmp_path / "particles.npz"
    np.savez_compressed(path, particles)
    out = tmp_path / "resim.h5"
    res = runner.invoke(app, ["simulate", "zn", "--particles", str(path), "--out", str(out),
                              "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(out) as ss:
        b = ss.read()
    np.testing.assert_allclose(b.conditions[:, 0], particles[:, 0])
    assert b.showers.reshape(4, -1).sum(1)[-1] > b.showers.reshape(4, -1).sum(1)[0]


def test_bad_input_exits_2_with_a_message_and_no_file(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez_compressed(path, np.zeros((4, 7)))
    out = tmp_path / "o.h5"
    res = runner.invoke(app, ["simulate", "zn", "--particles", str(path), "--out", str(out),
                              "--no-progress"])
    assert res.exit_code == 2
    assert "bad.npz" in res.output
    assert not out.exists()
    res = runner.invoke(app, ["simulate", "zn", "--out", str(out), "--no-progress"])
    assert res.exit_code == 2 and "n (number of responses)" in res.output


def test_python_dash_m_calogen_runs():
    res = subprocess.run([sys.executable, "-m", "calogen", "--help"], capture_output=True,
                         text=True, check=True)
    assert "simulate" in res.stdout


def test_gun_config_round_trips_through_simulate(tmp_path):
    res = runner.invoke(app, ["gun-config", "zn"])
    assert res.exit_code == 0
    cfg = tmp_path / "gun.json"
    # Only neutrons: the file must then hold nothing else.
    data = json.loads(res.output)
    data["sources"] = {"2112": data["sources"]["2112"]}
    cfg.write_text(json.dumps(data))
    out = tmp_path / "n.h5"
    res = runner.invoke(app, ["simulate", "zn", "--n", "50", "--out", str(out), "--gun-config",
                              str(cfg), "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(out) as ss:
        assert set(ss.pdg().tolist()) == {2112}
    cfg.write_text("{not json")
    res = runner.invoke(app, ["simulate", "zn", "--n", "5", "--out", str(tmp_path / "x.h5"),
                              "--gun-config", str(cfg), "--no-progress"])
    assert res.exit_code == 2 and "gun.json" in res.output
