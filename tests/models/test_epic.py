"""EPiC layers, generator and discriminator: permutation equivariance / invariance and masks."""

from __future__ import annotations

import pytest
import torch

from calogen.models.nn.epic import EPiCDiscriminator, EPiCGenerator, EPiCLayer, masked_pool

B, P, C = 3, 7, 2


def _mask() -> torch.Tensor:
    """Clouds of 7, 3 and 0 points."""
    return torch.arange(P)[None, :] < torch.tensor([7, 3, 0])[:, None]


def _context() -> torch.Tensor:
    return torch.randn(B, C, generator=torch.Generator().manual_seed(5))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_masked_pool_by_hand() -> None:
    h = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [0.0], [0.0]], [[7.0], [7.0], [7.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    out = masked_pool(h, mask, sum_scale=0.5)
    torch.testing.assert_close(out, torch.tensor([[2.0, 2.0], [2.0, 1.0], [0.0, 0.0]]))


@pytest.mark.parametrize("normed", [True, False])
def test_layer_is_permutation_equivariant(normed: bool) -> None:
    layer = EPiCLayer(hidden=8, global_dim=4, context_dim=C, normed=normed)
    h, g = torch.randn(B, P, 8), torch.randn(B, 4)
    mask = torch.ones(B, P, dtype=torch.bool)
    perm = torch.randperm(P)
    h1, g1 = layer(h, g, mask, _context())
    h2, g2 = layer(h[:, perm], g, mask, _context())
    torch.testing.assert_close(h2, h1[:, perm])
    torch.testing.assert_close(g2, g1)


def test_layer_ignores_padded_points_and_zeroes_them() -> None:
    layer = EPiCLayer(hidden=8, global_dim=4, context_dim=C)
    mask = _mask()
    h, g = torch.randn(B, P, 8) * mask[..., None], torch.randn(B, 4)
    h_junk = torch.where(mask[..., None], h, torch.full_like(h, 1e3))
    h1, g1 = layer(h, g, mask, _context())
    h2, g2 = layer(h_junk, g, mask, _context())
    torch.testing.assert_close(g2, g1)
    torch.testing.assert_close(h2[mask], h1[mask])
    assert (h2[~mask] == 0).all()


def test_generator_is_equivariant_in_its_point_noise() -> None:
    gen = EPiCGenerator(point_noise_dim=3, global_dim=4, context_dim=C, out_dim=4, hidden=8,
                        layers=2)
    noise, glob = torch.randn(B, P, 3), torch.randn(B, 4)
    mask = torch.ones(B, P, dtype=torch.bool)
    perm = torch.randperm(P)
    out = gen(noise, glob, mask, _context())
    torch.testing.assert_close(gen(noise[:, perm], glob, mask, _context()), out[:, perm])
    assert out.shape == (B, P, 4)
    # the points interact: changing one point's noise moves the others (via the global vector)
    moved = noise.clone()
    moved[:, 0] += 1.0
    assert not torch.allclose(gen(moved, glob, mask, _context())[:, 1:], out[:, 1:])


def test_generator_padding_changes_nothing() -> None:
    gen = EPiCGenerator(point_noise_dim=3, global_dim=4, context_dim=C, out_dim=4, hidden=8,
                        layers=2)
    mask = _mask()
    noise, glob = torch.randn(B, P, 3), torch.randn(B, 4)
    out = gen(noise, glob, mask, _context())
    junk = torch.where(mask[..., None], noise, torch.full_like(noise, 50.0))
    out_junk = gen(junk, glob, mask, _context())
    torch.testing.assert_close(out_junk[mask], out[mask])
    assert (out[~mask] == 0).all() and (out_junk[~mask] == 0).all()
    # a cloud alone equals the same cloud padded within a wider batch
    alone = gen(noise[1:2, :3], glob[1:2], mask[1:2, :3], _context()[1:2])
    torch.testing.assert_close(alone[0], out[1, :3])


def test_discriminator_is_invariant_and_ignores_padding() -> None:
    disc = EPiCDiscriminator(4, C, hidden=8, global_dim=4, layers=2)
    x = torch.randn(B, P, 4)
    full = torch.ones(B, P, dtype=torch.bool)
    perm = torch.randperm(P)
    score = disc(x, full, _context())
    assert score.shape == (B,)
    torch.testing.assert_close(disc(x[:, perm], full, _context()), score)

    mask = _mask()
    ref = disc(x, mask, _context())
    junk = torch.where(mask[..., None], x, torch.full_like(x, float("nan")))
    torch.testing.assert_close(disc(junk, mask, _context()), ref)
    # permuting only the real points of the 3-point cloud leaves its score
    x2 = x.clone()
    x2[1, :3] = x[1, torch.tensor([2, 0, 1])]
    torch.testing.assert_close(disc(x2, mask, _context()), ref)
    # a real point does matter
    x3 = x.clone()
    x3[1, 0] += 1.0
    assert not torch.allclose(disc(x3, mask, _context())[1], ref[1])
    # the empty cloud's score depends only on its context
    x4 = x.clone()
    x4[2] = torch.randn(P, 4)
    torch.testing.assert_close(disc(x4, mask, _context())[2], ref[2])


def test_empty_batch_of_points() -> None:
    """Zero-width batches (every cloud empty) run and give finite scores."""
    gen = EPiCGenerator(3, 4, C, 4, hidden=8, layers=1)
    disc = EPiCDiscriminator(4, C, hidden=8, global_dim=4, layers=1)
    mask = torch.zeros(B, 0, dtype=torch.bool)
    out = gen(torch.randn(B, 0, 3), torch.randn(B, 4), mask, _context())
    assert out.shape == (B, 0, 4)
    assert torch.isfinite(disc(out, mask, _context())).all()
