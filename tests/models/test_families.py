"""The one-step image families (vae, ae-noise, gan, sdi-gan): they learn a tiny conditional
data set, sample in physical units, split their parameters by phase, save/load exactly, and
pair every auxiliary term with the batch's own conditions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.models.families.gan import ConditionalGAN, group_diversity, hottest_position
from calogen.models.families.sdi_gan import SDIGAN
from calogen.models.generator import ModelSpec, TrainBatch, image_geometry
from calogen.models.io import load_model, save_model
from calogen.models.registry import make_model

COLS = ["E", "vx", "vy", "vz", "px", "py", "pz", "mass", "charge"]
SHAPE = (12, 12)
FAMILIES = ("vae", "ae-noise", "gan", "sdi-gan")
SMALL = {"channels": [8, 16], "groups": 4, "cond_dim": 32, "vit_patch": 4, "vit_width": 32,
         "vit_depth": 2, "vit_heads": 2, "condition_features": "raw"}
"""Tiny networks; the toy conditions carry ZDC column names but no ZDC meaning (vx ~ N(0, 1)
m), so the derived ZDC features (impact point, log E) are left out."""
N_PARTICLES, REPEATS = 64, 4
VAE_PAPER = {"recon_loss": "mse", "beta": 0.7, "prior": "normal", "readout": "round"}
AE_NOISE_PAPER = {"recon_loss": "mse", "latent_prior": "mmd", "readout": "round"}


def _templates(cond: np.ndarray) -> np.ndarray:
    """Noise-free mean photon images: a Gaussian blob whose position follows columns 1, 2 and
    whose brightness follows column 0 (E)."""
    h, w = SHAPE
    rows, cols = np.mgrid[0:h, 0:w]
    r0 = (h - 1) / 2 + 3.0 * np.tanh(cond[:, 1] / 2)
    c0 = (w - 1) / 2 + 3.0 * np.tanh(cond[:, 2] / 2)
    amp = 60.0 * cond[:, 0] / 100.0
    d2 = (rows[None] - r0[:, None, None]) ** 2 + (cols[None] - c0[:, None, None]) ** 2
    return amp[:, None, None] * np.exp(-d2 / (2 * 1.5 ** 2))


class Data:
    """Physical conditions (E in 50..200, others standard normal), photon images with
    shower-to-shower fluctuations, groups of ``REPEATS`` repeats per particle."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        cond = rng.normal(size=(N_PARTICLES, 9))
        cond[:, 0] = rng.uniform(50, 200, N_PARTICLES)
        self.cond = np.repeat(cond, REPEATS, axis=0)
        self.condition_id = np.repeat(np.arange(N_PARTICLES), REPEATS)
        scale = rng.lognormal(0.0, 0.25, len(self.cond))[:, None, None]
        self.photons = rng.poisson(_templates(self.cond) * scale).astype(np.int32)
        self.pdg = np.full(len(self.cond), 2112)
        self.transforms = Transforms.fit(self.cond, self.pdg, COLS)
        self.spec = ModelSpec(image_geometry(SHAPE, "test"), self.transforms)

    def batch(self, idx: np.ndarray) -> TrainBatch:
        t = self.transforms
        return TrainBatch(Transforms.showers(self.photons[idx])[:, None],
                          t.conditions(self.cond[idx]), t.species(self.pdg[idx]),
                          torch.as_tensor(self.condition_id[idx], dtype=torch.int64))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


def _model(family: str, data: Data, **hparams) -> ConditionalGAN:
    torch.manual_seed(0)
    return make_model(family, data.spec, **{**SMALL, **hparams})


def _train(model, data: Data, steps: int, lr: float = 2e-3, batch_size: int = 64,
           seed: int = 0) -> list[dict[str, dict[str, float]]]:
    """Plain AdamW loop over ``model.phases``; group-contiguous batches (whole particles)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    betas = (0.5, 0.9) if len(model.phases) > 1 else (0.9, 0.999)
    opts = {ph: torch.optim.AdamW(model.phase_parameters(ph), lr=lr, betas=betas,
                                  weight_decay=0.0) for ph in model.phases}
    history = []
    model.train()
    for _ in range(steps):
        groups = rng.choice(N_PARTICLES, batch_size // REPEATS, replace=False)
        idx = (groups[:, None] * REPEATS + np.arange(REPEATS)[None]).ravel()
        batch = data.batch(idx)
        logs = {}
        for ph in model.phases:
            loss, logs[ph] = model.loss(batch, ph)
            opts[ph].zero_grad()
            loss.backward()
            opts[ph].step()
        history.append(logs)
    return history


def _avg(history, phase: str, key: str, sl: slice) -> float:
    return float(np.mean([h[phase][key] for h in history[sl]]))


def _intensity_error(model, data: Data) -> float:
    """Mean over test particles of |mean generated log1p image - log1p(template)|."""
    rng = np.random.default_rng(7)
    cond = data.cond[rng.choice(len(data.cond), 16, replace=False)]
    cond_rep = np.repeat(cond, 8, axis=0)
    gen = torch.Generator().manual_seed(3)
    sample = model.sample(cond_rep, np.full(len(cond_rep), 2112), generator=gen, rounding=False)
    mean_log = np.log1p(sample).reshape(16, 8, *SHAPE).mean(axis=1)
    return float(np.abs(mean_log - np.log1p(_templates(cond))).mean())


# -- learning -------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["cnn", "vit"])
def test_vae_reconstruction_decreases(data: Data, backbone: str) -> None:
    model = _model("vae", data, backbone=backbone, kl_warmup=20, **VAE_PAPER)
    history = _train(model, data, 60, lr=3e-3)
    assert _avg(history, "main", "mse", slice(-5, None)) < \
        0.5 * _avg(history, "main", "mse", slice(0, 5))
    assert history[0]["main"]["beta"] < history[-1]["main"]["beta"] == pytest.approx(0.7)
    assert int(model.step) == 60


def test_ae_noise_reconstruction_and_latent_match_improve(data: Data) -> None:
    model = _model("ae-noise", data, **AE_NOISE_PAPER)
    history = _train(model, data, 60)
    assert _avg(history, "autoencoder", "mse", slice(-5, None)) < \
        0.4 * _avg(history, "autoencoder", "mse", slice(0, 5))
    assert _avg(history, "latent", "mmd2", slice(-10, None)) < \
        0.7 * _avg(history, "latent", "mmd2", slice(0, 10))


def test_ae_noise_flow_prior_learns_the_codes(data: Data) -> None:
    model = _model("ae-noise", data, latent_prior="flow", recon_loss="poisson")
    assert model.latent_dim == model.hparams["code_dim"]
    history = _train(model, data, 60)
    assert _avg(history, "latent", "nll_per_dim", slice(-10, None)) < \
        _avg(history, "latent", "nll_per_dim", slice(0, 10)) - 0.3
    assert _avg(history, "autoencoder", "mse", slice(-5, None)) < \
        0.5 * _avg(history, "autoencoder", "mse", slice(0, 5))


def test_vae_flow_prior_trains_and_samples(data: Data) -> None:
    model = _model("vae", data, prior="flow", recon_loss="poisson", beta=1.0)
    before = _intensity_error(model, data)
    history = _train(model, data, 60, lr=3e-3)
    assert _avg(history, "main", "loss", slice(-5, None)) < \
        0.5 * _avg(history, "main", "loss", slice(0, 5))
    assert all(np.isfinite(h["main"]["kl"]) for h in history)
    assert _intensity_error(model, data) < 0.7 * before


def test_bad_prior_options_rejected(data: Data) -> None:
    with pytest.raises(ValueError, match="prior"):
        make_model("vae", data.spec, prior="vamp")
    with pytest.raises(ValueError, match="latent_prior"):
        make_model("ae-noise", data.spec, latent_prior="gmm")
    with pytest.raises(ValueError, match="recon_loss"):
        make_model("ae-noise", data.spec, recon_loss="l1")
    with pytest.raises(ValueError, match="output"):
        make_model("gan", data.spec, output="sigmoid")


def test_instance_noise_only_while_training(data: Data) -> None:
    model = _model("gan", data, instance_noise=0.5)
    x = data.batch(np.arange(8)).x
    c = data.batch(np.arange(8)).cond
    model.train()
    a, _ = model.discriminate(x, c, None)
    b, _ = model.discriminate(x, c, None)
    assert not torch.allclose(a, b)
    model.eval()
    a, _ = model.discriminate(x, c, None)
    b, _ = model.discriminate(x, c, None)
    assert torch.equal(a, b)


def test_relu_output_gives_exact_zeros(data: Data) -> None:
    model = _model("gan", data, output="relu")
    with torch.no_grad():
        y = model.decode(model.noise(16), data.batch(np.arange(16)).cond)
    assert (y == 0).any() and (y >= 0).all()


@pytest.mark.parametrize("family", ["gan", "sdi-gan"])
def test_gan_moves_toward_the_data(data: Data, family: str) -> None:
    model = _model(family, data)  # default hparams: R1 penalty on, no L2 / aux terms
    before = _intensity_error(model, data)
    history = _train(model, data, 100)
    after = _intensity_error(model, data)
    assert after < 0.85 * before, (before, after)
    assert all(np.isfinite(h["generator"]["loss"]) for h in history)


# -- sampling, phases, save/load --------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_sample_shape_dtype_units(data: Data, family: str) -> None:
    model = _model(family, data)
    _train(model, data, 5)
    cond = data.cond[:10]
    out = model.sample(cond, data.pdg[:10], generator=torch.Generator().manual_seed(0))
    assert out.shape == (10, *SHAPE) and out.dtype == np.int32
    assert (out >= 0).all()
    raw = model.sample(cond, data.pdg[:10], rounding=False)
    assert raw.dtype == np.float32 and (raw >= 0).all()
    assert model.one_step
    z = model.noise(4)
    assert z.shape == (4, model.latent_dim)
    y = model.decode(z, data.transforms.conditions(cond[:4]))  # no species: O2 signature
    assert y.shape == (4, 1, *SHAPE)


def test_trained_vae_samples_are_bright_in_physical_units(data: Data) -> None:
    model = _model("vae", data)
    _train(model, data, 60)
    bright = data.cond[:, 0] > 150
    out = model.sample(data.cond[bright][:8], data.pdg[:8],
                       generator=torch.Generator().manual_seed(0))
    assert out.max(axis=(1, 2)).mean() > 20  # photons, not log1p values


@pytest.mark.parametrize("family", FAMILIES)
def test_phase_parameters_disjoint_and_complete(data: Data, family: str) -> None:
    model = _model(family, data, aux_hottest=1.0) if "gan" in family else _model(family, data)
    sets = [{id(p) for p in model.phase_parameters(ph)} for ph in model.phases]
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            assert not sets[i] & sets[j], (model.phases[i], model.phases[j])
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set().union(*sets) == trainable
    with pytest.raises(ValueError, match="unknown phase"):
        model.phase_parameters("nope")
    if len(model.phases) > 1:
        assert len(model.phases) == 2 and all(sets)


@pytest.mark.parametrize(("family", "options"), [
    *((f, {}) for f in FAMILIES), ("vae", VAE_PAPER), ("ae-noise", AE_NOISE_PAPER)])
def test_save_load_round_trip(data: Data, family: str, options: dict, tmp_path: Path) -> None:
    extra = {"postprocess_scale": True} if "gan" in family else options
    model = _model(family, data, backbone="vit", **extra)
    _train(model, data, 2)
    if "gan" in family:
        model.output_scale = 1.25
    path = save_model(model, tmp_path / family)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.hparams == model.hparams
    assert loaded.extra_state_dict() == model.extra_state_dict()
    cond, pdg = data.cond[:6], data.pdg[:6]
    a = model.sample(cond, pdg, generator=torch.Generator().manual_seed(5), rounding=False)
    b = loaded.sample(cond, pdg, generator=torch.Generator().manual_seed(5), rounding=False)
    np.testing.assert_array_equal(a, b)
    c = loaded.sample(cond, pdg, generator=torch.Generator().manual_seed(6), rounding=False)
    assert not np.array_equal(a, c)


def test_unknown_hparam_rejected(data: Data) -> None:
    with pytest.raises(ValueError, match="unknown hparams"):
        make_model("gan", data.spec, r1_gama=1.0)


def test_species_embedding_option(data: Data) -> None:
    model = _model("vae", data, use_species=True)
    _train(model, data, 2)
    out = model.sample(data.cond[:3], data.pdg[:3])
    assert out.shape == (3, *SHAPE)
    with pytest.raises(ValueError, match="species"):
        model.decode(model.noise(3), data.transforms.conditions(data.cond[:3]))


# -- GAN options --------------------------------------------------------------------------------

def test_hottest_position() -> None:
    x = torch.zeros(2, 1, 5, 9)
    x[0, 0, 4, 0] = 3.0
    x[1, 0, 2, 8] = 1.0
    assert torch.allclose(hottest_position(x), torch.tensor([[1.0, 0.0], [0.5, 1.0]]))


def test_r1_penalty_and_aux_regressor_change_the_loss(data: Data) -> None:
    batch = data.batch(np.arange(32))
    plain = _model("gan", data, r1_gamma=0.0)
    torch.manual_seed(1)
    loss0, logs0 = plain.loss(batch, "discriminator")
    model = _model("gan", data, r1_gamma=10.0, aux_hottest=2.0)
    torch.manual_seed(1)
    loss, logs = model.loss(batch, "discriminator")
    assert logs["r1"] > 0 and logs["d_aux"] > 0
    assert logs0["d_adv"] == pytest.approx(logs["d_adv"], rel=1e-5)  # same nets, same noise
    assert loss.item() == pytest.approx(logs["d_adv"] + 5.0 * logs["r1"] + 2.0 * logs["d_aux"],
                                        rel=1e-5)
    assert loss.item() > loss0.item()
    loss.backward()
    assert model.discriminator.aux.weight.grad.abs().sum() > 0
    g_loss, g_logs = model.loss(batch, "generator")
    assert "g_aux" in g_logs and g_loss.item() > g_logs["g_adv"]
    # the aux head learns the hottest-pixel position of real data
    history = _train(model, data, 40)
    assert _avg(history, "discriminator", "d_aux", slice(-5, None)) < \
        0.5 * _avg(history, "discriminator", "d_aux", slice(0, 5))


def test_r1_penalty_runs_through_the_vit_discriminator(data: Data) -> None:
    model = _model("gan", data, backbone="vit", r1_gamma=1.0)
    loss, logs = model.loss(data.batch(np.arange(16)), "discriminator")
    loss.backward()  # double backward through attention
    assert "r1" in logs and np.isfinite(logs["r1"])


@pytest.mark.parametrize("family", FAMILIES)
def test_losses_evaluate_without_gradients(data: Data, family: str) -> None:
    """Validation computes losses under ``torch.no_grad`` in either mode: no crash (R1 needs
    gradients), no side effects on training counters or the post-processing scale."""
    model = _model(family, data, postprocess_scale=True) if "gan" in family else \
        _model(family, data, kl_warmup=10) if family == "vae" else _model(family, data)
    batch = data.batch(np.arange(16))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    extra = model.extra_state_dict()
    for train_mode in (True, False):
        model.train(train_mode)
        with torch.no_grad():
            for phase in model.phases:
                loss, _ = model.loss(batch, phase)
                assert np.isfinite(loss.item())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert model.extra_state_dict() == extra


def _lookup_generator(batch: TrainBatch):
    """A stand-in generator that returns, for condition ``c``, the batch image whose condition
    row equals ``c`` (conditions are unique per row here): exact only when the model pairs
    ``G(z, c_i)`` with row ``i``."""
    def generate(noise, cond, species):
        match = (cond[:, None, :] == batch.cond[None, :, :]).all(-1).float().argmax(1)
        return batch.x[match] + 0.0 * noise.sum()
    return generate


def test_l2_and_aux_terms_pair_rows_with_their_own_condition(data: Data) -> None:
    model = _model("gan", data, l2_weight=1.0)
    batch = data.batch(np.arange(0, 64, REPEATS))  # one row per particle: unique conditions
    model._generate = _lookup_generator(batch)
    _, logs = model.loss(batch, "generator")
    assert logs["l2"] == 0.0
    shuffled = TrainBatch(batch.x.flip(0), batch.cond, batch.species, batch.condition_id)
    model._generate = _lookup_generator(batch)
    _, logs = model.loss(shuffled, "generator")
    assert logs["l2"] > 0.1  # a mispairing is visible


def test_postprocess_scale_is_fitted_and_applied(data: Data) -> None:
    model = _model("gan", data, postprocess_scale=True)
    batch = data.batch(np.arange(64))
    z = model.noise(4)
    cond = batch.cond[:4]
    raw = model.decode(z, cond)
    scale = model.fit_postprocess_scale(batch.x, batch.cond)
    assert scale == pytest.approx(batch.x.mean().item() / model._generate(
        model.noise(64, torch.Generator().manual_seed(0)), batch.cond, None).mean().item(),
        rel=0.3)
    assert torch.allclose(model.decode(z, cond), raw * scale)
    assert model.extra_state_dict() == {"postprocess_scale": scale}
    before = model.output_scale
    model.train()
    _, logs = model.loss(batch, "generator")
    assert logs["postprocess_scale"] != before


# -- SDI-GAN --------------------------------------------------------------------------------------

def test_group_diversity_weights() -> None:
    x = torch.zeros(7, 1, 2, 2)
    x[0:2, 0, 0, 0] = torch.tensor([0.0, 2.0])   # group 5: spread
    x[2:4, 0, 0, 0] = torch.tensor([1.0, 1.5])   # group 3: less spread
    group = torch.tensor([5, 5, 3, 3, 9, 4, 4])  # group 9: a single row; group 4: identical
    w = group_diversity(x, group, fallback=0.8)
    s5, s3 = np.std([0, 2], ddof=1) / 4, np.std([1, 1.5], ddof=1) / 4
    mean = (s5 + s3 + 0.0) / 3
    expected = torch.tensor([s5, s5, s3, s3, 0.8 * mean, 0, 0], dtype=torch.float32) / mean
    expected[4] = 0.8
    assert torch.allclose(w, expected, atol=1e-6)
    assert torch.equal(group_diversity(x, torch.arange(7), 1.0), torch.ones(7))


def test_sdi_diversity_term_uses_each_rows_own_condition(data: Data) -> None:
    """G(z, c) = c_0 * z_0 everywhere: the image distance of row i is |c_i0| |dz_i0|, so the
    ratio identifies which condition the model fed for row i (the public SDI-GAN code shuffled
    them)."""
    model = _model("sdi-gan", data)
    assert isinstance(model, SDIGAN)
    batch = data.batch(np.arange(32))  # 8 particles x 4 repeats, per-particle conditions
    model._generate = lambda noise, cond, species: (
        (cond[:, :1] * noise[:, :1])[:, :, None, None].expand(-1, 1, *SHAPE))
    torch.manual_seed(0)
    z1, z2 = model.noise(32), model.noise(32)
    ratio, weight = model.diversity_terms(batch, z1, z2)
    dz = (z1 - z2).abs().mean(1)
    expected = dz / ((batch.cond[:, 0] * (z1[:, 0] - z2[:, 0])).abs() + 1e-3)
    assert torch.allclose(ratio, expected, rtol=1e-5)
    wrong = dz / ((batch.cond.flip(0)[:, 0] * (z1[:, 0] - z2[:, 0])).abs() + 1e-3)
    assert not torch.allclose(ratio, wrong, rtol=1e-2)
    assert torch.allclose(weight, group_diversity(batch.x, batch.condition_id))
    # brighter particles fluctuate more in log space? whatever the order, weights follow groups
    for g in batch.condition_id.unique():
        rows = batch.condition_id == g
        assert torch.allclose(weight[rows], weight[rows][0].expand(int(rows.sum())))
    # the generator loss includes the term
    real = _model("sdi-gan", data)
    torch.manual_seed(0)
    _, logs = real.loss(batch, "generator")
    assert logs["div"] > 0
    off = _model("sdi-gan", data, div_weight=0.0)
    _, logs_off = off.loss(batch, "generator")
    assert "div" not in logs_off
