"""The VQ families (vq-vae, vq-gan) and their cosine codebook: lookup and straight-through
gradients, dead-code restarts against collapse, training on the tiny conditional toy set of
``test_families``, sampling options, the discriminator warm-up, save/load and exact resume
through the trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from calogen.data.transforms import Transforms
from calogen.models.families.vq_gan import VQGAN
from calogen.models.families.vq_vae import VQVAE
from calogen.models.generator import ModelSpec, image_geometry
from calogen.models.io import load_model, save_model
from calogen.models.nn.codebook import CosineCodebook
from calogen.models.registry import make_model

from .test_families import COLS, N_PARTICLES, REPEATS, SHAPE, Data

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"vit_patch": 4, "vit_width": 32, "vit_depth": 1, "vit_heads": 2, "decoder_width": 32,
        "decoder_depth": 1, "cond_dim": 16, "n_codes": 32, "code_dim": 8, "prior_width": 32,
        "prior_depth": 1, "prior_heads": 2, "restart_after": 5}
GAN_TINY = {**TINY, "channels": [8, 16], "groups": 4}
TRAIN_STEPS = 40


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


def _model(family: str, data: Data, **hparams) -> VQVAE:
    torch.manual_seed(0)
    base = GAN_TINY if family == "vq-gan" else TINY
    return make_model(family, data.spec, **{**base, **hparams})


def _train(model: VQVAE, data: Data, steps: int, lr: float = 3e-3, weight_decay: float = 0.0,
           seed: int = 0) -> list[dict[str, dict[str, float]]]:
    """Plain AdamW loop over ``model.phases`` (as the trainer: zero grads, loss, step)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opts = {ph: torch.optim.AdamW(model.phase_parameters(ph), lr=lr, betas=(0.5, 0.9),
                                  weight_decay=weight_decay) for ph in model.phases}
    history = []
    model.train()
    for _ in range(steps):
        groups = rng.choice(N_PARTICLES, 64 // REPEATS, replace=False)
        batch = data.batch((groups[:, None] * REPEATS + np.arange(REPEATS)[None]).ravel())
        logs = {}
        for ph in model.phases:
            model.zero_grad(set_to_none=True)
            loss, logs[ph] = model.loss(batch, ph)
            assert torch.isfinite(loss), (ph, logs[ph])
            loss.backward()
            opts[ph].step()
        history.append(logs)
    return history


def _avg(history, phase: str, key: str, sl: slice) -> float:
    return float(np.mean([h[phase][key] for h in history[sl]]))


@pytest.fixture(scope="module")
def trained(data: Data) -> dict[str, tuple[VQVAE, list]]:
    out = {}
    for family in ("vq-vae", "vq-gan"):
        model = _model(family, data, disc_start=10) if family == "vq-gan" else \
            _model(family, data)
        out[family] = (model, _train(model, data, TRAIN_STEPS))
    return out


# -- codebook -----------------------------------------------------------------------------------

def test_cosine_lookup_picks_the_most_similar_entry() -> None:
    book = CosineCodebook(2, 2)
    with torch.no_grad():
        book.weight.copy_(torch.tensor([[0.9, 0.0], [3.0, 4.0]]))
    z = torch.tensor([[0.5, 0.6]])  # Euclidean nearest: entry 0; most similar direction: 1
    assert book.lookup(z).item() == 1
    assert torch.cdist(z, book.weight).argmin().item() == 0
    torch.manual_seed(0)
    book = CosineCodebook(64, 8)
    z = torch.randn(4, 10, 8) * torch.rand(4, 10, 1) * 5
    q = book(z)
    cos = F.normalize(z, dim=-1) @ F.normalize(book.weight, dim=-1).t()
    assert torch.equal(q.indices, cos.argmax(-1))
    torch.testing.assert_close(q.z_q, F.normalize(book.weight, dim=-1)[q.indices])
    expected = (F.normalize(z, dim=-1) - q.z_q).pow(2).sum((1, 2))
    torch.testing.assert_close(q.codebook_loss, expected)
    torch.testing.assert_close(q.commitment_loss, expected)


def test_straight_through_gradients_and_loss_targets() -> None:
    torch.manual_seed(0)
    book = CosineCodebook(16, 4)
    z = torch.randn(3, 5, 4, requires_grad=True)
    w = torch.randn(3, 5, 4)
    (book(z).z_q * w).sum().backward()
    z_ref = z.detach().clone().requires_grad_(True)
    (F.normalize(z_ref, dim=-1) * w).sum().backward()  # identity through the quantisation
    torch.testing.assert_close(z.grad, z_ref.grad)
    assert book.weight.grad is None  # the decoder's gradient does not move the entries
    z.grad = None
    book(z).codebook_loss.sum().backward()
    assert z.grad is None and book.weight.grad.abs().sum() > 0
    book.weight.grad = None
    book(z).commitment_loss.sum().backward()
    assert book.weight.grad is None and z.grad.abs().sum() > 0


def test_dead_codes_are_restarted_from_batch_vectors() -> None:
    """Entry 0 points along +v, the other 15 along -v: only entry 0 is ever chosen for data
    around +v, until the restarts set the dead entries to encoder vectors of the batch."""
    torch.manual_seed(0)
    v = F.normalize(torch.randn(8), dim=0)
    book = CosineCodebook(16, 8, restart_after=2)
    with torch.no_grad():
        book.weight.copy_(-v.expand(16, 8))
        book.weight[0] = v
    z = (v + 0.3 * torch.randn(4, 32, 8))
    first = book(z, update=True)
    assert first.usage == 1 / 16 and first.restarted == 0
    assert book(z, update=False).restarted == 0  # no bookkeeping outside training lookups
    assert book.unused_steps[1:].tolist() == [1] * 15
    assert book(z, update=True).restarted == 0
    third = book(z, update=True)
    assert third.restarted == 15
    entries = F.normalize(book.weight.detach(), dim=1)
    best = (entries[1:] @ F.normalize(z.reshape(-1, 8), dim=1).t()).amax(dim=1)
    torch.testing.assert_close(best, torch.ones(15))  # each restarted entry is a batch vector
    assert third.usage == 1.0 and third.perplexity > 8
    assert int(book.unused_steps.max()) == 0
    assert int(book.counts.sum()) == 3 * 4 * 32


def _cluster_batch(centres: torch.Tensor, g: torch.Generator, n: int = 256) -> torch.Tensor:
    pick = torch.randint(0, len(centres), (n,), generator=g)
    return (centres[pick] + 0.05 * torch.randn(n, centres.shape[1], generator=g))[None]


@pytest.mark.parametrize("restart_after", [0, 3])
def test_restarts_prevent_codebook_collapse(restart_after: int) -> None:
    """16 well-separated clusters; entry 0 at one cluster, entries 1-15 identical copies of the
    opposite direction (a tie only the first copy can win, then the next as it moves away);
    entries trained by the codebook loss: without restarts a few entries end up used (usage
    <= 0.4); with restarts the codebook covers the clusters (usage >= 0.8, perplexity >= 10)."""
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(16, 8, generator=g), dim=1)
    book = CosineCodebook(16, 8, restart_after=restart_after)
    with torch.no_grad():
        book.weight.copy_(-centres[0].expand(16, 8))
        book.weight[0] = centres[0]
    opt = torch.optim.Adam(book.parameters(), lr=0.05)
    for _ in range(60):
        q = book(_cluster_batch(centres, g), update=True)
        opt.zero_grad()
        q.codebook_loss.mean().backward()
        opt.step()
    final = book(_cluster_batch(centres, g, 2048))
    if restart_after:
        assert final.usage >= 0.8 and final.perplexity >= 10, (final.usage, final.perplexity)
    else:
        assert final.usage <= 0.4, final.usage


# -- families: construction and options ---------------------------------------------------------

def test_defaults_give_36_tokens_on_zn() -> None:
    rng = np.random.default_rng(0)
    spec = ModelSpec(image_geometry((44, 44)),
                     Transforms.fit(rng.normal(size=(20, 9)), np.full(20, 2112), COLS))
    model = make_model("vq-vae", spec)
    assert isinstance(model, VQVAE) and not model.one_step and not model.exportable()
    assert model.n_tokens == 36 and model.network_calls() == 37
    assert tuple(model.quantizer.weight.shape) == (256, 32)
    assert model.hparams["recon_loss"] == "poisson" and model.hparams["readout"] == "poisson"
    gan = make_model("vq-gan", spec)
    assert isinstance(gan, VQGAN) and gan.phases == ("autoencoder", "discriminator", "prior")


@pytest.mark.parametrize(("family", "hparams", "match"), [
    ("vq-vae", {"n_codes": 1}, "n_codes"), ("vq-vae", {"code_dim": 0}, "code_dim"),
    ("vq-vae", {"restart_after": -1}, "restart_after"), ("vq-vae", {"beta": -1.0}, "beta"),
    ("vq-vae", {"recon_loss": "l1"}, "recon_loss"), ("vq-vae", {"prior_width": 31}, "prior_width"),
    ("vq-vae", {"decoder_width": 33}, "decoder_width"), ("vq-vae", {"n_codes": 2.5}, "n_codes"),
    ("vq-vae", {"temperature": -1.0}, "temperature"), ("vq-vae", {"top_p": 0.0}, "top_p"),
    ("vq-vae", {"gan_weight": 0.1}, "unknown hparams"),
    ("vq-gan", {"gan_weight": -0.1}, "gan_weight"), ("vq-gan", {"disc_start": -1}, "disc_start"),
    ("vq-gan", {"gan_adaptive": "yes"}, "gan_adaptive"),
    ("vq-gan", {"backbone": "rnn"}, "backbone"),
])
def test_bad_hparams_rejected(data: Data, family: str, hparams: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _model(family, data, **hparams)


@pytest.mark.parametrize("family", ["vq-vae", "vq-gan"])
def test_phase_parameters_disjoint_and_complete(data: Data, family: str) -> None:
    model = _model(family, data)
    sets = [{id(p) for p in model.phase_parameters(ph)} for ph in model.phases]
    assert all(sets)
    assert sum(len(s) for s in sets) == len(set().union(*sets))
    assert set().union(*sets) == {id(p) for p in model.parameters()}
    with pytest.raises(ValueError, match="unknown phase"):
        model.phase_parameters("nope")
    with pytest.raises(ValueError, match="unknown phase"):
        model.loss(data.batch(np.arange(4)), "nope")


def test_gradient_reaches_the_encoder_through_the_quantiser(data: Data) -> None:
    model = _model("vq-vae", data, vq_weight=0.0)  # only the straight-through path is left
    model.train()
    loss, _ = model.loss(data.batch(np.arange(16)), "autoencoder")
    loss.backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0
    grad = model.quantizer.weight.grad  # only the VQ losses move the entries
    assert grad is None or not grad.any()


# -- families: training and sampling -----------------------------------------------------------

@pytest.mark.parametrize("family", ["vq-vae", "vq-gan"])
def test_training_reduces_reconstruction_and_prior_losses(trained, family: str) -> None:
    model, history = trained[family]
    assert _avg(history, "autoencoder", "recon", slice(-5, None)) < \
        0.5 * _avg(history, "autoencoder", "recon", slice(0, 5))
    assert _avg(history, "prior", "nll_per_token", slice(-5, None)) < \
        _avg(history, "prior", "nll_per_token", slice(0, 5)) - 0.3
    # no collapse: most of the 32 entries stay in use on 64 x 9 tokens per batch
    assert _avg(history, "autoencoder", "code_usage", slice(-10, None)) >= 0.6
    assert sum(h["autoencoder"]["restarted"] for h in history) > 0
    assert int(model.step) == TRAIN_STEPS
    assert all(np.isfinite(v) for h in history for logs in h.values() for v in logs.values())


@pytest.mark.parametrize("family", ["vq-vae", "vq-gan"])
def test_sample_shape_dtype_units(trained, data: Data, family: str) -> None:
    model, _ = trained[family]
    out = model.sample(data.cond[:10], data.pdg[:10], generator=torch.Generator().manual_seed(0))
    assert out.shape == (10, *SHAPE) and out.dtype == np.int32 and (out >= 0).all()
    assert out.sum() > 0
    raw = model.sample(data.cond[:10], data.pdg[:10], rounding=False)
    assert raw.dtype == np.float32 and (raw >= 0).all()
    assert model.network_calls() == model.n_tokens + 1 == 10
    assert model.training  # sample() restores the mode


def test_sampling_options(trained, data: Data) -> None:
    model, _ = trained["vq-vae"]
    cond, pdg = data.cond[:8], data.pdg[:8]

    def draw(seed: int) -> np.ndarray:
        return model.sample(cond, pdg, generator=torch.Generator().manual_seed(seed),
                            rounding=False)

    assert not np.array_equal(draw(0), draw(1))
    try:
        assert model.configure_sampling(temperature=0) == {"temperature": 0, "top_k": 0,
                                                           "top_p": 1.0}
        np.testing.assert_array_equal(draw(0), draw(1))  # greedy tokens: one image per condition
        model.configure_sampling(temperature=1.0, top_k=1)
        np.testing.assert_array_equal(draw(2), draw(3))
        for bad, match in (({"temperature": -1}, "temperature"), ({"top_k": -2}, "top_k"),
                           ({"top_p": 1.5}, "top_p"), ({"steps": 5}, "no sampling option")):
            with pytest.raises(ValueError, match=match):
                model.configure_sampling(**bad)
        assert model.hparams["top_k"] == 1  # a rejected option changes nothing
    finally:
        model.configure_sampling(temperature=1.0, top_k=0, top_p=1.0)


def test_species_token_option(data: Data) -> None:
    model = _model("vq-vae", data, use_species=True)
    assert model.prior.n_prefix == data.spec.n_conditions + 1
    _train(model, data, 2)
    assert model.sample(data.cond[:3], data.pdg[:3]).shape == (3, *SHAPE)


def test_save_load_gives_identical_samples(trained, data: Data, tmp_path: Path) -> None:
    model, _ = trained["vq-gan"]
    path = save_model(model, tmp_path / "vq-gan")
    loaded = load_model(path)
    assert type(loaded) is VQGAN and loaded.hparams == model.hparams
    assert int(loaded.step) == TRAIN_STEPS and torch.equal(loaded.gan_scale, model.gan_scale)
    assert torch.equal(loaded.quantizer.unused_steps, model.quantizer.unused_steps)
    cond, pdg = data.cond[:6], data.pdg[:6]
    a = model.sample(cond, pdg, generator=torch.Generator().manual_seed(5))
    b = loaded.sample(cond, pdg, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(a, b)
    c = loaded.sample(cond, pdg, generator=torch.Generator().manual_seed(6))
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("family", ["vq-vae", "vq-gan"])
def test_losses_evaluate_without_gradients(data: Data, family: str) -> None:
    """Validation losses (under ``torch.no_grad``, either mode) leave every buffer alone: no
    restarts, usage counts, step or adaptive-weight updates."""
    model = _model(family, data, disc_start=0, restart_after=1) if family == "vq-gan" else \
        _model(family, data, restart_after=1)
    model.quantizer.unused_steps.fill_(5)  # every entry due for a restart
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batch = data.batch(np.arange(16))
    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():
            for phase in model.phases:
                loss, logs = model.loss(batch, phase)
                assert np.isfinite(loss.item()) and logs.get("restarted", 0) == 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


# -- vq-gan discriminator warm-up -----------------------------------------------------------------

def _disc_state(model: VQGAN) -> dict[str, torch.Tensor]:
    d = model.discriminator
    return {f"{i}.{k}": v.detach().clone() for i, m in enumerate((d.embed, d.trunk, d.head))
            for k, v in m.state_dict().items()}


def test_discriminator_is_off_until_disc_start(data: Data) -> None:
    """With AdamW weight decay on: the discriminator does not change during the warm-up and the
    autoencoder gets no adversarial term; afterwards both are in use."""
    model = _model("vq-gan", data, disc_start=4, gan_weight=0.5)
    before = _disc_state(model)
    history = _train(model, data, 4, weight_decay=0.1)
    after = _disc_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(h["autoencoder"]["gan_weight"] == 0.0 and "g_adv" not in h["autoencoder"]
               and h["discriminator"]["active"] == 0.0 for h in history)
    assert int(model.step) == 4 and model.disc_active()
    history = _train(model, data, 2, weight_decay=0.1, seed=1)
    after2 = _disc_state(model)
    assert any(not torch.equal(after[k], after2[k]) for k in after)
    assert all(h["autoencoder"]["gan_weight"] > 0 and h["discriminator"]["active"] == 1.0
               and h["discriminator"]["loss"] > 0 for h in history)
    # fixed weight without the adaptive factor
    fixed = _model("vq-gan", data, disc_start=0, gan_weight=0.3, gan_adaptive=False)
    fixed.train()
    _, logs = fixed.loss(data.batch(np.arange(16)), "autoencoder")
    assert logs["gan_weight"] == pytest.approx(0.3) and "g_adv" in logs


# -- resume through the trainer -------------------------------------------------------------

def _showerset(path: Path) -> Path:
    from calogen.data.showerset import write_showerset

    rng = np.random.default_rng(0)
    n_groups, repeats = 40, 4
    base = np.zeros((n_groups, 9), dtype=np.float32)
    base[:, 0] = rng.uniform(1.0, 50.0, n_groups)
    base[:, 1:3] = rng.uniform(-1.0, 1.0, (n_groups, 2))
    cond = np.repeat(base, repeats, axis=0)
    yy, xx = np.mgrid[0:8, 0:8]
    lam = cond[:, 0, None, None] * np.exp(-((yy - 3.5 - 2 * cond[:, 2, None, None]) ** 2
                                            + (xx - 3.5 - 2 * cond[:, 1, None, None]) ** 2) / 6)
    return write_showerset(path, rng.poisson(lam).astype(np.int32), cond,
                           np.full(len(cond), 2112, dtype=np.int32),
                           condition_id=np.repeat(np.arange(n_groups), repeats), detector="TOY",
                           geometry={"name": "toy", "shape": [8, 8]},
                           producer={"name": "tests/models/test_vq"})


def test_trainer_resume_is_exact_across_disc_start(tmp_path: Path) -> None:
    """vq-gan through :class:`calogen.train.trainer.Trainer` (weight decay on): stopped at step 2
    (before ``disc_start`` = 3: discriminator untouched) and resumed with a differently seeded
    model, it ends bitwise where an uninterrupted 6-step run does."""
    from calogen.train.checkpoint import load_checkpoint
    from calogen.train.data import load_training_data
    from calogen.train.trainer import TrainConfig, Trainer

    data = load_training_data(_showerset(tmp_path / "toy.h5"), seed=0)
    hp = {**GAN_TINY, "vit_patch": 4, "disc_start": 3, "restart_after": 2}

    def model(seed: int) -> VQGAN:
        torch.manual_seed(seed)
        return make_model("vq-gan", data.spec, **hp)

    def config(steps: int) -> TrainConfig:
        return TrainConfig(lr=2e-3, weight_decay=0.1, batch_size=32, max_steps=steps,
                           schedule_steps=6, checkpoint_every=1, val_every=0, val_events=16,
                           ema_decay=0.9, tensorboard=False, device="cpu", num_threads=1,
                           seed=3)

    Trainer(model(0), data, config(6), tmp_path / "full", progress=False).fit()
    initial = _disc_state(model(0))
    cut = model(0)
    Trainer(cut, data, config(2), tmp_path / "cut", progress=False).fit()
    assert int(cut.step) == 2
    assert all(torch.equal(v, _disc_state(cut)[k]) for k, v in initial.items())
    resumed = model(99)
    Trainer(resumed, data, config(6), tmp_path / "cut", resume=True, progress=False).fit()
    assert int(resumed.step) == 6
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for key, value in a["ema"]["shadow"].items():
        assert torch.equal(value, b["ema"]["shadow"][key]), key
