"""The reference fingerprint of metrics.json and compare's check by content."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from calogen.data.showerset import ShowerSet, write_showerset
from calogen.geometry import LayeredVoxelGeometry, VoxelLayer
from calogen.metrics.evaluate import _describe, file_sha256
from calogen.particles import gun_conditions
from calogen.report.compare import build_board, check_same_reference, load_entry, write_board

_spec = importlib.util.spec_from_file_location("_compare_reports",
                                               Path(__file__).parent / "test_compare.py")
assert _spec is not None and _spec.loader is not None
_reports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reports)
write_report_doc = _reports.write_report_doc
"""Small valid metrics.json reports (tests/report/test_compare.py)."""

GEOMETRY = LayeredVoxelGeometry("fp-voxels", (VoxelLayer(0, (0.0, 5.0, 10.0), 2),
                                              VoxelLayer(1, (0.0, 20.0), 1)))


@pytest.fixture
def reference_copies(tmp_path: Path) -> dict[str, Path]:
    """A tiny voxel ShowerSet, an identical copy elsewhere, and a copy with one value
    changed."""
    rng = np.random.default_rng(7)
    n = 40
    showers = rng.gamma(1.0, 10.0, (n, GEOMETRY.n_voxels)).astype(np.float32)
    cond = rng.uniform(1.0, 10.0, (n, 1)).astype(np.float32)
    columns, units = gun_conditions("E_inc")
    (tmp_path / "a").mkdir()
    ref = write_showerset(tmp_path / "a" / "ref.h5", showers, cond, np.full(n, 22, np.int32),
                          condition_id=np.arange(n), detector=GEOMETRY.name,
                          geometry=GEOMETRY, producer={"name": "toy"},
                          condition_columns=columns, condition_units=units,
                          shower_units="MeV")
    copy = tmp_path / "b" / "ref_copy.h5"
    changed = tmp_path / "c" / "ref.h5"
    for target in (copy, changed):
        target.parent.mkdir()
        shutil.copyfile(ref, target)
    with h5py.File(changed, "r+") as f:
        f["showers"][3, 2] = f["showers"][3, 2] + 1.0
    return {"ref": ref, "copy": copy, "changed": changed}


def _report_on(folder: Path, reference: Path, cw1: float) -> Path:
    """A metrics.json whose reference entry is what evaluate records for ``reference``."""
    write_report_doc(folder, cw1=cw1, auc=0.6, recall=0.8)
    doc: dict[str, Any] = json.loads((folder / "metrics.json").read_text("utf-8"))
    doc["inputs"]["reference"] = _describe(ShowerSet.open(reference))
    doc["protocol"]["n_reference_rows"] = doc["inputs"]["reference"]["n_events"]
    (folder / "metrics.json").write_text(json.dumps(doc), "utf-8")
    return folder


def test_describe_records_the_sha256_of_the_file(reference_copies: dict[str, Path]) -> None:
    ref = reference_copies["ref"]
    described = _describe(ShowerSet.open(ref))
    assert described["sha256"] == hashlib.sha256(ref.read_bytes()).hexdigest()
    assert file_sha256(reference_copies["copy"]) == described["sha256"]
    assert file_sha256(reference_copies["changed"]) != described["sha256"]


def test_identical_copies_at_different_paths_are_one_reference(
        tmp_path: Path, reference_copies: dict[str, Path]) -> None:
    a = load_entry(_report_on(tmp_path / "rep_a", reference_copies["ref"], 7.0))
    b = load_entry(_report_on(tmp_path / "rep_b", reference_copies["copy"], 6.0))
    assert a.doc["inputs"]["reference"]["path"] != b.doc["inputs"]["reference"]["path"]
    board = build_board([a, b])
    assert [e.label for e in board.entries] == ["rep_b", "rep_a"]
    page = write_board(board, tmp_path / "out").html.read_text("utf-8")
    assert f"sha256 {file_sha256(reference_copies['ref'])[:16]}" in page


def test_a_reference_with_one_changed_value_is_refused(
        tmp_path: Path, reference_copies: dict[str, Path]) -> None:
    a = load_entry(_report_on(tmp_path / "rep_a", reference_copies["ref"], 7.0))
    c = load_entry(_report_on(tmp_path / "rep_c", reference_copies["changed"], 6.0))
    # same name, size, detector, producer and event count: only the content differs
    assert Path(a.doc["inputs"]["reference"]["path"]).name == "ref.h5"
    with pytest.raises(ValueError, match="different references") as info:
        check_same_reference([a, c])
    msg = str(info.value)
    assert "reference.sha256" in msg and "reference.path" not in msg.split("differ in")[1]
    assert str(a.source) in msg and str(c.source) in msg
    assert str(reference_copies["ref"].resolve()) in msg
    assert str(reference_copies["changed"].resolve()) in msg


def test_reports_without_a_fingerprint_fall_back_to_the_path(
        tmp_path: Path, reference_copies: dict[str, Path]) -> None:
    new = _report_on(tmp_path / "new", reference_copies["ref"], 7.0)
    ref_entry = json.loads((new / "metrics.json").read_text("utf-8"))["inputs"]["reference"]
    old_same = _report_on(tmp_path / "old_same", reference_copies["ref"], 6.0)
    old_moved = _report_on(tmp_path / "old_moved", reference_copies["copy"], 6.0)
    for folder in (old_same, old_moved):
        doc = json.loads((folder / "metrics.json").read_text("utf-8"))
        del doc["inputs"]["reference"]["sha256"]
        (folder / "metrics.json").write_text(json.dumps(doc), "utf-8")
    check_same_reference([load_entry(new), load_entry(old_same)])
    with pytest.raises(ValueError, match="reference.path") as info:
        check_same_reference([load_entry(new), load_entry(old_moved)])
    assert ref_entry["path"] in str(info.value)
