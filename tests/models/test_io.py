import json
import os
import re
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.models.io import ModelFileError, load_model, save_model
from calogen.models.registry import make_model


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


# -- model.json validated before anything is built ------------------------------------------


@pytest.fixture
def memory_fence():
    """Cap this process's address space 8 GiB above its current size for the test, so that
    a regression fails with an allocation error instead of taking the machine's memory."""
    resource = pytest.importorskip("resource")
    try:
        with open("/proc/self/status") as fh:
            size = next(int(line.split()[1]) * 1024 for line in fh
                        if line.startswith("VmSize:"))
    except OSError:
        pytest.skip("needs /proc/self/status")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + 8 * 2**30, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture
def small_vae(toy_model, tmp_path):
    model = make_model("vae", toy_model.spec, backbone="mlp", mlp_hidden=[8, 8], cond_dim=4,
                       flow_hidden=8, flow_layers=2)
    path = save_model(model, tmp_path / "vae")
    return path, json.loads((path / "model.json").read_text())


def _write(path, doc):
    (path / "model.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(("where", "value", "field"), [
    ("hparams.latent_dim", 1e9, "hparams"),
    ("hparams.mlp_hidden", [1e5, 1e5], "hparams"),
    ("spec.shape", [10**6, 10**6], "spec.shape"),
])
def test_oversized_models_are_refused_before_allocation(small_vae, memory_fence, where, value,
                                                        field):
    """Sizes asking for 40 GB to 4 PB: refused in seconds, naming the file and the field."""
    path, doc = small_vae
    section, key = where.split(".")
    doc[section][key] = value
    _write(path, doc)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=rf"vae/model\.json: field.? '{field}") as info:
        load_model(path)
    assert time.perf_counter() - start < 30
    if section == "hparams":
        assert f"{where}" in str(info.value).split("largest sizes")[1]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(hparams=123), r"field 'hparams': expected an object"),
    (lambda d: d["hparams"].update(latent_dim=float("nan")),
     r"field 'hparams.latent_dim': expected a finite number"),
    (lambda d: d["hparams"].update(latent_dim=10**12), r"field 'hparams.latent_dim'"),
    (lambda d: d["hparams"].update(mlp_hidden=[8] * 1000), r"field 'hparams.mlp_hidden'"),
    (lambda d: d["hparams"].update(cond_dim=-1), r"field 'hparams': .*negative dimension"),
    (lambda d: d["hparams"].update(mlp_hidden=["x"]), r"field 'hparams': .*'x'"),
    (lambda d: d.update(family="nosuch"), r"field 'family': unknown model family"),
    (lambda d: d.update(spec=[44, 44]), r"field 'spec': expected an object"),
    (lambda d: d["spec"].update(shape=[0, 5]), r"field 'spec.shape\[0\]'"),
    (lambda d: d["spec"].update(shape="ab"), r"field 'spec.shape'"),
    (lambda d: d["spec"]["transforms"]["condition_std"].__setitem__(3, 0.0),
     r"field 'spec.transforms.condition_std\[3\]': expected a standard deviation > 0.*"
     r"column 'vz'"),
    (lambda d: d["spec"]["transforms"]["condition_mean"].__setitem__(0, float("inf")),
     r"field 'spec.transforms.condition_mean\[0\]'.*column 'E'"),
    (lambda d: d.update(family=7), r"field 'family'"),
    (lambda d: d.pop("spec"), r"field 'spec': expected a value"),
    (lambda d: d.update(extra=5), r"field 'extra'"),
    (lambda d: d["hparams"].update(deep=json.loads("[" * 20 + "]" * 20)),
     r"field 'hparams.deep(\[0\])+': expected nesting"),
])
def test_model_document_errors_name_the_field(small_vae, mutate, message):
    path, doc = small_vae
    mutate(doc)
    _write(path, doc)
    with pytest.raises(ModelFileError, match=r"vae/model\.json: .*" + message):
        load_model(path)


def test_deeply_nested_json_is_refused(small_vae):
    path, _ = small_vae
    (path / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match=r"model\.json: not valid JSON"):
        load_model(path)


# -- save_model: best/ replaced atomically, temporaries findable, umask honoured -----------


class _Killed(BaseException):
    """Stands for SIGKILL in the middle of save_model."""


@pytest.mark.parametrize("kill_at", [1, 2])
def test_save_never_leaves_the_directory_absent(toy_model, tmp_path, monkeypatch, kill_at):
    best = save_model(toy_model, tmp_path / "best")
    before = (best / "model.safetensors").read_bytes()
    calls = []
    real_replace = os.replace

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == kill_at:
            raise _Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with torch.no_grad():
        toy_model.net.weight.add_(1.0)
    try:
        save_model(toy_model, best)
    except _Killed:
        pass
    monkeypatch.undo()
    loaded = load_model(best)  # old or new, never absent
    now = (best / "model.safetensors").read_bytes()
    assert now == before or torch.equal(loaded.net.weight, toy_model.net.weight)


def test_save_temporary_is_named_for_stale_cleanup(toy_model, tmp_path, monkeypatch):
    import calogen.models.io as io

    seen = []
    real = io.save_file

    def save_file(tensors, filename):
        seen.append(Path(filename).parent.name)
        real(tensors, filename)

    monkeypatch.setattr(io, "save_file", save_file)
    save_model(toy_model, tmp_path / "best")
    assert re.fullmatch(rf"\.best\.tmp-{os.getpid()}-[0-9a-f]+", seen[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


@pytest.mark.parametrize(("umask", "folder", "files"), [(0o022, 0o755, 0o644),
                                                        (0o077, 0o700, 0o600)])
def test_save_honours_the_umask(toy_model, tmp_path, umask, folder, files):
    old = os.umask(umask)
    try:
        best = save_model(toy_model, tmp_path / "best")
        save_model(toy_model, best)  # replacing keeps them too
    finally:
        os.umask(old)
    assert stat.S_IMODE(best.stat().st_mode) == folder
    for name in ("model.json", "model.safetensors"):
        assert stat.S_IMODE((best / name).stat().st_mode) == files, name


def test_layer_counts_are_bounded_by_the_tensor_budget(small_vae, memory_fence):
    path, doc = small_vae
    doc["hparams"]["flow_layers"] = 2**31 - 1
    _write(path, doc)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"too large to build .*tensors .*flow_layers"):
        load_model(path)
    assert time.perf_counter() - start < 30


def test_budgeted_build_is_bit_identical_and_restores_the_limit(toy_model):
    """The guard neither draws random numbers nor changes the weights; the address-space
    limit is back to what it was afterwards."""
    resource = pytest.importorskip("resource")
    from calogen.models.registry import FAMILIES

    limits = resource.getrlimit(resource.RLIMIT_AS)
    torch.manual_seed(3)
    guarded = make_model("vae", toy_model.spec, backbone="mlp", mlp_hidden=[8, 8])
    after_guarded = torch.rand(2)
    torch.manual_seed(3)
    plain = FAMILIES["vae"](toy_model.spec, backbone="mlp", mlp_hidden=[8, 8])
    assert torch.equal(torch.rand(2), after_guarded)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, guarded.state_dict()[key]), key
    assert resource.getrlimit(resource.RLIMIT_AS) == limits


def test_gan_saved_before_the_shared_discriminator_still_loads(toy_model, tmp_path):
    """Weights named as before ``nn.discriminator`` existed (``d_embed``, ``disc``, ``d_head``)
    load into today's ``discriminator.*`` and give the same logits."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    gan = make_model("gan", toy_model.spec, backbone="mlp", mlp_hidden=[8, 8], cond_dim=8,
                     aux_hottest=1.0)
    path = save_model(gan, tmp_path / "g")
    weights = load_file(str(path / "model.safetensors"))
    old_names = {"discriminator.embed.": "d_embed.", "discriminator.trunk.": "disc.",
                 "discriminator.head.": "d_head.", "discriminator.aux.": "aux_head."}
    renamed = {}
    for key, value in weights.items():
        for new, old in old_names.items():
            if key.startswith(new):
                key = old + key[len(new):]
                break
        renamed[key] = value
    assert "d_head.weight" in renamed and "aux_head.weight" in renamed
    save_file(renamed, str(path / "model.safetensors"))
    loaded = load_model(path).eval()
    x = torch.rand(3, 1, *toy_model.spec.shape)
    cond = torch.randn(3, toy_model.spec.n_conditions)
    gan.eval()
    for a, b in zip(gan.discriminate(x, cond, None), loaded.discriminate(x, cond, None),
                    strict=True):
        assert torch.equal(a, b)


# -- the spec carries the geometry; the earlier {"shape", "detector"} form still loads --------


def test_spec_writes_the_geometry_and_reads_the_earlier_form(toy_model, tmp_path):
    from calogen.geometry import ZN
    from calogen.models.generator import ModelSpec, image_geometry

    path = save_model(toy_model, tmp_path / "m")
    doc = json.loads((path / "model.json").read_text())
    assert doc["spec"]["geometry"] == image_geometry((6, 5)).to_dict()
    assert "shape" not in doc["spec"]
    # a model.json of the earlier form: shape and detector, no geometry
    del doc["spec"]["geometry"]
    doc["spec"].update(shape=[6, 5], detector="test")
    (path / "model.json").write_text(json.dumps(doc))
    old = load_model(path)
    assert old.spec.kind == "image" and old.spec.shape == (6, 5)
    assert old.spec.detector == "test"
    cond = np.random.default_rng(1).normal(size=(4, 9)).astype(np.float32)
    np.testing.assert_array_equal(
        old.sample(cond, np.full(4, 2112), torch.Generator().manual_seed(3)),
        toy_model.sample(cond, np.full(4, 2112), torch.Generator().manual_seed(3)))
    # ZN's shape and name give the ZN grid itself
    legacy = {"shape": [44, 44], "detector": "ZN", "transforms": doc["spec"]["transforms"]}
    assert ModelSpec.from_dict(legacy).geometry is ZN
    assert ModelSpec.from_dict({**legacy, "detector": "ZP"}).geometry.shape == (44, 44)


def test_voxel_spec_round_trip_and_bounds(toy_model, tmp_path):
    from calogen.geometry import uniform_layers
    from calogen.models.generator import ModelSpec
    from calogen.testing.showersets import TOY_VOXELS

    spec = ModelSpec(TOY_VOXELS, toy_model.spec.transforms)
    assert spec.kind == "voxels" and spec.shape == (36,) and spec.tensor_shape == (36,)
    assert spec.detector == "toy-voxels"
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    model = make_model("vae", spec, mlp_hidden=[8, 8], cond_dim=4, latent_dim=2)
    path = save_model(model, tmp_path / "v")
    assert load_model(path).spec == spec
    doc = json.loads((path / "model.json").read_text())
    huge = uniform_layers("huge", 1000, list(range(1001)), 10)  # 10 million voxels
    doc["spec"]["geometry"] = huge.to_dict()
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"field 'spec.geometry.layers': expected at most "
                                             r"4,194,304 voxels, found 1000 layers"):
        load_model(path)
    doc["spec"]["geometry"] = {**TOY_VOXELS.to_dict(), "layers": [{"id": 0, "n_alpha": 0,
                                                                   "r_edges_mm": [0, 1]}]}
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"field 'spec.geometry.layers\[0\].n_alpha'"):
        load_model(path)
    doc["spec"]["geometry"] = {"kind": "cubes", "name": "x"}
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"field 'spec.geometry.kind'"):
        load_model(path)
