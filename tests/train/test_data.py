"""Tests of calogen.train.data: grouped splits, train-only transforms, fingerprint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from calogen.data.errors import ShowerSetError
from calogen.data.showerset import ShowerSet
from calogen.data.transforms import Transforms
from calogen.train.data import load_training_data


def test_grouped_split_keeps_groups_together(toy_file):
    data = load_training_data(toy_file, fractions=(0.6, 0.2, 0.2), seed=1)
    groups = {name: set(getattr(data, name).condition_id.tolist())
              for name in ("train", "val", "test")}
    assert groups["train"] and groups["val"] and groups["test"]
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    rows = np.concatenate([data.train.rows, data.val.rows, data.test.rows])
    assert np.array_equal(np.sort(rows), np.arange(480))
    assert len(data.train) == data.fingerprint["n_train"]
    assert abs(len(data.train) / 480 - 0.6) < 0.05


def test_tensors_match_the_file(toy_file):
    data = load_training_data(toy_file)
    with ShowerSet.open(toy_file) as ss:
        batch = ss.take(data.val.rows)
    t = data.val
    assert t.x.shape == (len(t), 1, 8, 8) and t.x.dtype == torch.float32
    assert torch.equal(t.x[:, 0], torch.log1p(torch.as_tensor(batch.showers).float()))
    assert np.array_equal(t.conditions, batch.conditions)
    assert np.array_equal(t.pdg, batch.pdg)
    assert torch.allclose(t.cond, data.transforms.conditions(batch.conditions))
    assert torch.equal(t.species, data.transforms.species(batch.pdg))
    b = t.batch([3, 1])
    assert torch.equal(b.x, t.x[[3, 1]]) and torch.equal(b.condition_id, t.condition_id[[3, 1]])
    assert data.spec.shape == (8, 8) and data.spec.detector == "TOY"
    assert np.allclose(t.photons(), batch.showers)


def test_transforms_fitted_on_train_only(toy_file):
    data = load_training_data(toy_file, fractions=(0.5, 0.25, 0.25), seed=2)
    with ShowerSet.open(toy_file) as ss:
        all_cond = ss.conditions().astype(np.float64)
    train_mean = data.train.conditions.astype(np.float64).mean(axis=0)
    assert np.allclose(data.transforms.condition_mean, train_mean, rtol=1e-6)
    # E differs between the train rows and the whole file
    assert abs(data.transforms.condition_mean[0] - all_cond[:, 0].mean()) > 1e-3
    assert abs(float(data.train.cond[:, 0].mean())) < 1e-4
    # given transforms are used as they are
    fixed = Transforms.fit(all_cond, np.full(len(all_cond), 2112), data.transforms.
                           condition_columns)
    again = load_training_data(toy_file, fractions=(0.5, 0.25, 0.25), seed=2,
                               transforms=fixed)
    assert again.transforms is fixed and again.spec.transforms is fixed


def test_fingerprint_is_stable_and_content_sensitive(make_showerset):
    a = make_showerset(seed=0)
    b = make_showerset(seed=0)
    c = make_showerset(seed=1)
    fa, fa2 = load_training_data(a).fingerprint, load_training_data(a).fingerprint
    assert fa == fa2
    assert fa["n_events"] == 480 and len(fa["sha256"]) == 64 and fa["path"].endswith(a.name)
    fb = load_training_data(b).fingerprint
    assert fb["sha256"] == fa["sha256"] and fb["path"] != fa["path"]
    assert load_training_data(c).fingerprint["sha256"] != fa["sha256"]
    json.dumps(fa)  # JSON-serialisable


def test_max_events_subset_is_seeded(toy_file):
    a = load_training_data(toy_file, max_events=100, seed=4)
    b = load_training_data(toy_file, max_events=100, seed=4)
    n = len(a.train) + len(a.val) + len(a.test)
    assert n == 100
    assert np.array_equal(a.train.rows, b.train.rows)
    assert a.fingerprint["max_events"] == 100 and a.fingerprint["n_events"] == 480


def test_non_image_file_is_refused(make_showerset):
    path = make_showerset(shape=(16,))
    with pytest.raises(ShowerSetError, match="2-D showers"):
        load_training_data(path)


def test_voxel_file_loads_as_flat_log1p_tensors(tmp_path):
    from calogen.testing.showersets import TOY_VOXELS, write_toy_voxels

    path = write_toy_voxels(tmp_path / "v.h5", n=40, seed=2)
    data = load_training_data(path, seed=0)
    assert data.spec.kind == "voxels" and data.spec.geometry == TOY_VOXELS
    assert data.spec.transforms.condition_columns == ["E_inc"]
    t = data.train
    with ShowerSet.open(path) as ss:
        showers = ss.take(t.rows).showers
    assert t.x.shape == (len(t), 36) and t.counts is None
    assert torch.equal(t.x, torch.log1p(torch.as_tensor(showers)))
    b = t.batch([2, 0])
    assert b.x.shape == (2, 36) and b.mask is None
    np.testing.assert_allclose(t.showers(), showers, rtol=1e-6)


def test_point_file_loads_ragged_and_pads_per_batch(tmp_path):
    from calogen.testing.showersets import TOY_VOLUME, write_toy_points

    path = write_toy_points(tmp_path / "p.h5", n=30, seed=3)
    data = load_training_data(path, fractions=(1.0, 0.0, 0.0), seed=0)
    assert data.spec.kind == "points" and data.spec.geometry == TOY_VOLUME
    t = data.train
    assert len(t) == 30 and t.counts is not None
    with ShowerSet.open(path) as ss:
        ref = ss.take(t.rows)
    np.testing.assert_array_equal(t.counts.numpy(), ref.counts)
    np.testing.assert_array_equal(t.x.numpy(), ref.showers)  # features as they are (mm, MeV)
    empty = int(np.flatnonzero(ref.counts == 0)[0])
    one = int(np.flatnonzero(ref.counts == 1)[0])
    big = int(np.argmax(ref.counts))
    b = t.batch([empty, one, big])
    width = int(ref.counts[big])
    assert b.x.shape == (3, width, 4) and b.mask is not None and b.mask.shape == (3, width)
    assert b.mask.sum(1).tolist() == [0, 1, width]
    assert not b.x[~b.mask].any()  # zero padding
    starts = np.concatenate([[0], np.cumsum(ref.counts)[:-1]])
    np.testing.assert_array_equal(b.x[1, :1].numpy(), ref.showers[starts[one]:starts[one] + 1])
    np.testing.assert_array_equal(b.x[2].numpy(), ref.showers[starts[big]:starts[big] + width])
    assert t.batch([empty]).x.shape == (1, 0, 4)  # a batch of empty showers
    sub = t.subset([big, one])
    np.testing.assert_array_equal(sub.counts.numpy(), ref.counts[[big, one]])
    assert torch.equal(sub.batch([0, 1]).x, t.batch([big, one]).x)
