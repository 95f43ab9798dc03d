"""calogen generate --precision: the network pass in bfloat16 / int8, recorded in the file."""

import numpy as np
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet
from calogen.pipelines.reference import simulate_to_file

runner = CliRunner()


def test_generate_with_reduced_precision(tmp_path, train_tiny):
    data = simulate_to_file(tmp_path / "zn.h5", n=200, seed=5, progress=False).path
    best = train_tiny(data, tmp_path / "run", steps=2)
    outs = {}
    for precision in ("float32", "bfloat16", "int8"):
        gen = tmp_path / f"gen_{precision}.h5"
        res = runner.invoke(app, ["generate", "--model", str(best), "--conditions",
                                  str(data), "--out", str(gen), "--precision", precision,
                                  "--no-progress"])
        assert res.exit_code == 0, res.output
        with ShowerSet.open(gen) as g:
            outs[precision] = g.read().showers
            note = g.meta.producer.get("note", "")
        assert (precision in note) == (precision != "float32")
    assert all(v.shape == outs["float32"].shape and v.min() >= 0 for v in outs.values())
    assert not np.array_equal(outs["float32"], outs["int8"])
    res = runner.invoke(app, ["generate", "--model", str(best), "--conditions",
                              str(data), "--out", str(tmp_path / "bad.h5"), "--precision",
                              "float16", "--no-progress"])
    assert res.exit_code == 2 and "precision" in res.output
