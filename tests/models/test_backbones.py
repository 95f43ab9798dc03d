"""Backbones: any image shape, both backbones, gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch

from calogen.models.nn.backbones import (
    BACKBONE_DEFAULTS,
    ConditionEmbedding,
    ResidualDecoder,
    ResidualEncoder,
    ViTDecoder,
    ViTEncoder,
    make_decoder,
    make_encoder,
    output_activation,
    resolve_hparams,
)

SHAPES = [(44, 44), (56, 30), (12, 12), (7, 5)]
SMALL = {"channels": [4, 8, 16], "groups": 4, "vit_patch": 8, "vit_width": 32, "vit_depth": 2,
         "vit_heads": 2}


def _hp(backbone: str) -> dict:
    return resolve_hparams("test", BACKBONE_DEFAULTS, {**SMALL, "backbone": backbone})


@pytest.mark.parametrize("backbone", ["cnn", "vit"])
@pytest.mark.parametrize("shape", SHAPES)
def test_decoder_and_encoder_shapes(backbone: str, shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    hp = _hp(backbone)
    dec = make_decoder(hp, 6, 10, shape)
    enc = make_encoder(hp, shape, 10, 7)
    assert isinstance(dec, ResidualDecoder if backbone == "cnn" else ViTDecoder)
    assert isinstance(enc, ResidualEncoder if backbone == "cnn" else ViTEncoder)
    y = dec(torch.randn(3, 6), torch.randn(3, 10))
    assert y.shape == (3, 1, *shape)
    assert enc(y, torch.randn(3, 10)).shape == (3, 7)


@pytest.mark.parametrize("backbone", ["cnn", "vit"])
def test_gradients_reach_every_parameter(backbone: str) -> None:
    torch.manual_seed(1)
    hp = _hp(backbone)
    emb = ConditionEmbedding(9, 3, 10, use_species=True)
    dec = make_decoder(hp, 6, 10, (56, 30))
    enc = make_encoder(hp, (56, 30), 10, 4)
    c = emb(torch.randn(5, 9), torch.tensor([0, 1, 2, 1, 0]))
    out = enc(dec(torch.randn(5, 6), c), c)
    out.pow(2).sum().backward()
    for module in (emb, dec, enc):
        for name, p in module.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
    # at least the output layers receive non-zero gradients
    assert any(p.grad.abs().sum() > 0 for p in dec.parameters())
    assert all(p.grad.abs().sum() > 0 for p in emb.net.parameters())


def test_decoder_output_depends_on_condition_and_noise() -> None:
    torch.manual_seed(2)
    for backbone in ("cnn", "vit"):
        dec = make_decoder(_hp(backbone), 4, 8, (12, 12))
        z, c = torch.randn(2, 4), torch.randn(2, 8)
        base = dec(z, c)
        assert not torch.allclose(base, dec(z, c + 1.0))
        assert not torch.allclose(base, dec(z + 1.0, c))


def test_condition_embedding_species_switch() -> None:
    torch.manual_seed(3)
    emb = ConditionEmbedding(9, 4, 16, use_species=False)
    c = torch.randn(6, 9)
    assert emb(c).shape == (6, 16)
    assert torch.equal(emb(c), emb(c, torch.arange(6) % 4))  # species ignored
    with_species = ConditionEmbedding(9, 4, 16, use_species=True)
    a = with_species(c, torch.zeros(6, dtype=torch.long))
    b = with_species(c, torch.ones(6, dtype=torch.long))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="species"):
        with_species(c)


@pytest.mark.parametrize("shape", [(44, 44), (56, 30), (5, 9)])
def test_vit_patchify_round_trip(shape: tuple[int, int]) -> None:
    vit = ViTEncoder(shape, 0, 3, patch=8, width=16, depth=1, heads=2)
    x = torch.randn(2, 1, *shape)
    tokens = vit.patchify(x)
    assert tokens.shape == (2, vit.n_tokens, 64)
    assert torch.equal(vit.unpatchify(tokens), x)
    assert vit(x, None).shape == (2, 3)


def test_output_activation_and_hparam_checks() -> None:
    y = torch.tensor([-30.0, 0.0, 3.0])
    assert (output_activation(y, "softplus") >= 0).all()
    assert torch.equal(output_activation(y, "linear"), y)
    with pytest.raises(ValueError, match="unknown hparams"):
        resolve_hparams("vae", BACKBONE_DEFAULTS, {"chanels": [4]})
    with pytest.raises(ValueError, match="backbone"):
        resolve_hparams("vae", BACKBONE_DEFAULTS, {"backbone": "resnet"})
    assert resolve_hparams("vae", BACKBONE_DEFAULTS, {"channels": (4, 8)})["channels"] == [4, 8]


def test_mlp_backbone_shapes_and_gradients() -> None:
    from calogen.models.nn.backbones import make_decoder, make_encoder

    hp = resolve_hparams("vae", BACKBONE_DEFAULTS, {"backbone": "mlp", "mlp_hidden": [16, 32]})
    for shape in ((44, 44), (56, 30)):
        dec = make_decoder(hp, 5, 7, shape)
        enc = make_encoder(hp, shape, 7, 3)
        z, c = torch.randn(4, 5), torch.randn(4, 7)
        img = dec(z, c)
        assert img.shape == (4, 1, *shape)
        out = enc(img, c)
        assert out.shape == (4, 3)
        out.sum().backward()
        assert all(p.grad is not None for p in dec.parameters())
