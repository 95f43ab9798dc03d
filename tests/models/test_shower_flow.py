"""The Shower Flow: cloud features by hand, their inverse, and sampled features' ranges."""

from __future__ import annotations

import torch

from calogen.geometry.points import PointCloudVolume
from calogen.models.nn.shower_flow import ShowerFlow, summarise_clouds

VOLUME = PointCloudVolume("v", (-10.0, 10.0), (-10.0, 10.0), (0.0, 5.0, 10.0, 15.0))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(3, 3, 4)
    x[0, :3] = torch.tensor([[1.0, 2.0, 1.0, 1.0], [3.0, -2.0, 6.0, 3.0],
                             [-1.0, 0.0, 7.0, 4.0]])
    x[1, 0] = torch.tensor([5.0, 5.0, 14.0, 2.0])  # one point; shower 2 is empty
    mask = torch.tensor([[True, True, True], [True, False, False], [False, False, False]])
    return x, mask


def test_summary_by_hand() -> None:
    x, mask = _batch()
    s = summarise_clouds(x, mask, VOLUME)
    torch.testing.assert_close(s.layer_counts, torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0],
                                                             [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(s.layer_energy, torch.tensor([[1.0, 7.0, 0.0], [0.0, 0.0, 2.0],
                                                             [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(s.cog, torch.tensor([[(1 + 9 - 4) / 8, (2 - 6) / 8],
                                                    [5.0, 5.0], [0.0, 0.0]]))


def test_features_invert_without_dequantisation() -> None:
    x, mask = _batch()
    flow = ShowerFlow(VOLUME, 1, layers=2, hidden=8)
    s = summarise_clouds(x, mask, flow.volume)
    raw = flow.raw_features(s, dequantise=False)
    flow.fit_standardisation(raw)
    out = flow.decode(flow.standardise(raw))
    torch.testing.assert_close(out.n_points, torch.tensor([3, 1, 0]))
    torch.testing.assert_close(out.layer_energy[:2], s.layer_energy[:2], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(out.cog, s.cog, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.point_fractions[0], torch.tensor([1 / 3, 2 / 3, 0.0]),
                               rtol=1e-3, atol=1e-3)


def test_sampled_fractions_are_probabilities_and_log_prob_finite() -> None:
    x, mask = _batch()
    flow = ShowerFlow(VOLUME, 2, layers=2, hidden=8)
    s = summarise_clouds(x, mask, flow.volume)
    gen = torch.Generator().manual_seed(0)
    flow.fit_standardisation(flow.raw_features(s, gen))
    assert torch.isfinite(flow.log_prob(s, torch.zeros(3, 2), gen)).all()
    out = flow.sample(torch.randn(200, 2, generator=gen) * 3, gen)
    for f in (out.point_fractions, out.energy_fractions):
        assert (f >= 0).all()
        torch.testing.assert_close(f.sum(1), torch.ones(200, dtype=f.dtype))
    assert (out.n_points >= 0).all() and (out.energy >= 0).all()
