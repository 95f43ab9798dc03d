import json

import numpy as np
import pytest
import torch

from calogen.models.io import ModelFileError, load_model, save_model


def test_save_load_sample_identical(toy_model, tmp_path):
    model = toy_model
    cond = np.random.default_rng(1).normal(size=(7, 9)).astype(np.float32)
    pdg = np.full(7, 2112)
    a = model.sample(cond, pdg, torch.Generator().manual_seed(5), rounding=False)
    path = save_model(model, tmp_path / "m", training_data={"n_events": 50})
    loaded = load_model(path)
    b = loaded.sample(cond, pdg, torch.Generator().manual_seed(5), rounding=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (7, 6, 5) and a.min() >= 0
    ints = loaded.sample(cond, pdg, torch.Generator().manual_seed(5))
    assert ints.dtype == np.int32
    assert not list(tmp_path.glob(".m.tmp-*"))


def test_foreign_and_corrupt_directories_are_refused(toy_model, tmp_path):
    model = toy_model
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nothing")
    path = save_model(model, tmp_path / "m")
    doc = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(ModelFileError, match="format_version"):
        load_model(path)
    (path / "model.json").write_text(json.dumps({**doc, "format": "other"}))
    with pytest.raises(ModelFileError, match="not a calogen model"):
        load_model(path)
    (path / "model.json").write_text(json.dumps({**doc, "family": "nope"}))
    with pytest.raises(ModelFileError, match="unknown model family"):
        load_model(path)
    (path / "model.json").write_text(json.dumps(doc))
    (path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="cannot read weights"):
        load_model(path)
    save_model(model, path)
    (path / "model.json").write_text(json.dumps({**doc, "hparams": {"latent_dim": 9}}))
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(path)


def test_poisson_readout_is_seeded_and_unbiased(toy_model):
    cond = np.zeros((400, 9), np.float32)
    pdg = np.full(400, 2112)
    rate = toy_model.sample(cond, pdg, torch.Generator().manual_seed(1), rounding=False)
    toy_model.hparams["readout"] = "poisson"
    a = toy_model.sample(cond, pdg, torch.Generator().manual_seed(1))
    b = toy_model.sample(cond, pdg, torch.Generator().manual_seed(1))
    assert a.dtype == np.int32 and np.array_equal(a, b)
    # Same noise -> same expected counts; Poisson counts scatter around them.
    assert abs(a.mean() - rate.mean()) < 5 * np.sqrt(rate.mean() / a.size)
    assert not np.array_equal(a, np.round(rate))
    toy_model.hparams["readout"] = "gauss"
    with pytest.raises(ValueError, match="readout"):
        toy_model.sample(cond, pdg)
