"""EDM4hep ROOT import (``calogen.data.edm4hep``), on small files written with uproot under
the branch names of podio's ROOT backend (``NAME.energy``, ``NAME.position.x``, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calogen.data import ShowerSet
from calogen.data.edm4hep import import_edm4hep
from calogen.data.errors import ShowerSetError
from calogen.testing.showersets import TOY_VOLUME

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")

# Three events: two hits (3 contributions), no hit, one hit (1 contribution).
HITS = {"cellID": ([[1, 2], [], [3]], "uint64"),
        "energy": ([[0.001, 0.002], [], [0.003]], "float32"),
        "position.x": ([[1.0, 2.0], [], [3.0]], "float32"),
        "position.y": ([[4.0, 5.0], [], [6.0]], "float32"),
        "position.z": ([[7.0, 8.0], [], [9.0]], "float32"),
        "contributions_begin": ([[0, 2], [], [0]], "uint32"),
        "contributions_end": ([[2, 3], [], [1]], "uint32")}
CONTRIBUTIONS = {"energy": ([[0.0005, 0.0005, 0.002], [], [0.003]], "float32"),
                 "PDG": ([[11, -11, 22], [], [11]], "int32"),
                 "time": ([[1.0, 1.5, 2.0], [], [1.0]], "float32"),
                 "stepPosition.x": ([[1.25, 0.75, 2.0], [], [3.0]], "float32"),
                 "stepPosition.y": ([[4.0, 4.5, 5.0], [], [6.0]], "float32"),
                 "stepPosition.z": ([[7.0, 7.5, 8.0], [], [9.0]], "float32")}
MC = {"PDG": ([[11, 22], [22], [22]], "int32"),
      "generatorStatus": ([[0, 1], [1], [1]], "int32"),
      "momentum.x": ([[5.0, 0.0], [3.0], [0.0]], "float32"),
      "momentum.y": ([[0.0, 0.0], [4.0], [0.0]], "float32"),
      "momentum.z": ([[1.0, 10.0], [0.0], [30.0]], "float32"),
      "mass": ([[0.000511, 0.0], [0.0], [0.0]], "float64")}
RELATION = {"index": ([[0, 1, 2], [], [0]], "int32"),
            "collectionID": ([[7, 7, 7], [], [7]], "uint32")}


def write_edm4hep(path: Path, *, sep: str = ".", relation: Any = RELATION,
                  drop: tuple[str, ...] = (), **replace: Any) -> Path:
    """An EDM4hep-layout TTree ``events`` (hits ``ECal``); ``replace`` overrides branches by
    full name (values, dtype)."""
    branches: dict[str, Any] = {}
    for prefix, members in (("ECal", HITS), ("ECalContributions", CONTRIBUTIONS),
                            ("MCParticles", MC)):
        for member, value in members.items():
            branches[f"{prefix}{sep}{member}"] = value
    if relation is not None:
        for member, value in relation.items():
            branches[f"_ECal_contributions{sep}{member}"] = value
    branches.update(replace)
    arrays = {k: ak.values_astype(ak.Array(v), t) for k, (v, t) in branches.items()
              if k not in drop}
    with uproot.recreate(path) as f:
        tree = f.mktree("events", {k: a.type.content for k, a in arrays.items()})
        tree.extend(arrays)
    return path


def test_hits_become_points_in_mev_with_the_generator_energy(tmp_path: Path) -> None:
    src = write_edm4hep(tmp_path / "sim.edm4hep.root")
    done = import_edm4hep(src, tmp_path / "ss.h5", collection="ECal", volume=TOY_VOLUME,
                          block_events=2)
    assert (done.n_showers, done.n_points, done.n_outside) == (3, 3, 0)
    with ShowerSet(done.path) as ss:
        assert ss.counts().tolist() == [2, 0, 1]
        batch = ss.read()
        np.testing.assert_allclose(batch.showers, [[1, 4, 7, 1.0], [2, 5, 8, 2.0],
                                                   [3, 6, 9, 3.0]], rtol=1e-6)
        # first generatorStatus-1 particle: |p| = 10, 5 (3-4-5), 30 GeV
        np.testing.assert_allclose(batch.conditions.ravel(), [10.0, 5.0, 30.0], rtol=1e-6)
        assert batch.pdg.tolist() == [22, 22, 22]
        assert ss.meta.condition_columns == ("E_inc",) and ss.meta.condition_units == ("GeV",)
        assert ss.meta.producer["collection"] == "ECal"


def test_steps_follow_the_relation_to_the_contributions(tmp_path: Path) -> None:
    # the relation permutes the contributions: hit 0 owns contributions 2 and 0, hit 1 owns 1
    relation = {"index": ([[2, 0, 1], [], [0]], "int32"),
                "collectionID": ([[7, 7, 7], [], [7]], "uint32")}
    src = write_edm4hep(tmp_path / "sim.root", relation=relation)
    done = import_edm4hep(src, tmp_path / "ss.h5", collection="ECal", steps=True,
                          volume=TOY_VOLUME)
    with ShowerSet(done.path) as ss:
        assert ss.counts().tolist() == [3, 0, 1]
        np.testing.assert_allclose(ss.read().showers, [[2.0, 5.0, 8.0, 2.0],
                                                       [1.25, 4.0, 7.0, 0.5],
                                                       [0.75, 4.5, 7.5, 0.5],
                                                       [3.0, 6.0, 9.0, 3.0]], rtol=1e-6)


@pytest.mark.parametrize("sep", [".", "_"])
def test_steps_without_relation_and_uproot_style_names(tmp_path: Path, sep: str) -> None:
    src = write_edm4hep(tmp_path / "sim.root", sep=sep, relation=None,
                        **{f"MCParticles{sep}PDG": ([[11, 111], [211], [22]], "int32")})
    done = import_edm4hep(src, tmp_path / "ss.h5", collection="ECal", steps=True,
                          volume=TOY_VOLUME, pdg_from_mc=True, shift_mm=(0.0, 0.0, 20.0))
    assert done.n_points == 4 and done.n_outside == 0
    with ShowerSet(done.path) as ss:
        batch = ss.read()
        np.testing.assert_allclose(batch.showers[:, 2], [27.0, 27.5, 28.0, 29.0])
        np.testing.assert_allclose(batch.showers[:, 3], [0.5, 0.5, 2.0, 3.0], rtol=1e-6)
        assert batch.pdg.tolist() == [111, 211, 22]  # the generator particles'
    shifted = import_edm4hep(src, tmp_path / "out.h5", collection="ECal", volume=TOY_VOLUME,
                             shift_mm=(0.0, 0.0, 22.0))
    assert shifted.n_outside == 2  # z = 8 + 22 and 9 + 22: not below the 30 mm layer edge
    with ShowerSet(shifted.path) as ss:
        assert ss.read().pdg.tolist() == [22, 22, 22]  # default without --pdg-from-mc


def test_missing_collection_lists_the_ones_present(tmp_path: Path) -> None:
    src = write_edm4hep(tmp_path / "sim.root")
    with pytest.raises(ShowerSetError, match=r"branch HCal\.energy.*ECal, ECalContributions, "
                       r"MCParticles") as err:
        import_edm4hep(src, tmp_path / "ss.h5", collection="HCal")
    assert str(src) in str(err.value)
    no_mc = write_edm4hep(tmp_path / "nomc.root", drop=tuple(f"MCParticles.{m}" for m in MC))
    with pytest.raises(ShowerSetError, match=r"MCParticles\.generatorStatus"):
        import_edm4hep(no_mc, tmp_path / "ss.h5", collection="ECal")
    no_steps = write_edm4hep(tmp_path / "nosteps.root",
                             drop=tuple(f"ECalContributions.{m}" for m in CONTRIBUTIONS))
    with pytest.raises(ShowerSetError, match=r"ECalContributions\.energy"):
        import_edm4hep(no_steps, tmp_path / "ss.h5", collection="ECal", steps=True)
    assert not (tmp_path / "ss.h5").exists()


@pytest.mark.parametrize(("replace", "match"), [
    ({"ECal.energy": ([[0.001, -0.002], [], [0.003]], "float32")},
     r"branch ECal\.energy.*non-negative.*event 0"),
    ({"ECal.position.x": ([[1.0, float("nan")], [], [3.0]], "float32")},
     r"branch ECal\.position\.x.*finite.*event 0"),
    ({"ECal.position.y": ([[4.0], [], [6.0]], "float32")}, r"branch ECal\.position\.y"),
    ({"MCParticles.generatorStatus": ([[0, 1], [0], [1]], "int32")},
     "generatorStatus 1.*none in event 1"),
])
def test_bad_content_names_branch_and_event(tmp_path: Path, replace: dict[str, Any],
                                            match: str) -> None:
    src = write_edm4hep(tmp_path / "bad.root", **replace)
    with pytest.raises(ShowerSetError, match=match):
        import_edm4hep(src, tmp_path / "ss.h5", collection="ECal")


def test_contribution_ranges_are_checked(tmp_path: Path) -> None:
    src = write_edm4hep(tmp_path / "bad.root",
                        **{"ECal.contributions_end": ([[2, 5], [], [1]], "uint32")})
    with pytest.raises(ShowerSetError, match=r"contributions_begin.*\[2, 5\) of 3 at event 0"):
        import_edm4hep(src, tmp_path / "ss.h5", collection="ECal", steps=True)


def test_not_a_root_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"not root at all")
    with pytest.raises(ShowerSetError, match="not a readable ROOT file"):
        import_edm4hep(bad, tmp_path / "ss.h5", collection="ECal")


def test_mutated_edm4hep_files_raise_only_showerseterror(tmp_path: Path) -> None:
    from calogen.testing import fuzz

    seeds = [p.read_bytes() for p in fuzz.seed_corpus("edm4hep", tmp_path / "seeds")]
    outcomes = list(fuzz.run_inputs(fuzz.TARGETS["edm4hep"], fuzz.mutated_inputs(seeds, 40, 16),
                                    tmp_path / "work", timeout=10.0, workers=1))
    assert len(outcomes) == 40
    assert [o.detail for o in outcomes if o.kind != "ok"] == []
