"""PointWise Net: EDM preconditioning identities, the point scaling, and the per-point net."""

from __future__ import annotations

import pytest
import torch

from calogen.geometry.points import PointCloudVolume
from calogen.models.nn.pointwise import PointScaler, PointWiseNet
from calogen.models.nn.samplers import edm_loss_weight, edm_preconditioning

VOLUME = PointCloudVolume("v", (-20.0, 20.0), (0.0, 10.0), (0.0, 2.0, 10.0))
SD = 0.5


def test_edm_preconditioning_identities() -> None:
    """Karras et al. Table 1: unit input variance, unit effective target (lambda c_out^2 = 1),
    and the error of F = 0 is c_out^2 for data of std sigma_data."""
    sigma = torch.logspace(-3, 2, 50, dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, SD)
    torch.testing.assert_close(c_in**2 * (sigma**2 + SD**2), torch.ones_like(sigma))
    torch.testing.assert_close(edm_loss_weight(sigma, SD) * c_out**2, torch.ones_like(sigma))
    torch.testing.assert_close((1 - c_skip) ** 2 * SD**2 + c_skip**2 * sigma**2, c_out**2)
    torch.testing.assert_close(c_noise, sigma.log() / 4)


def test_denoise_applies_the_preconditioning() -> None:
    torch.manual_seed(0)
    net = PointWiseNet(2, [8, 8], 8).double()
    x, cond, n = torch.randn(5, 4).double(), torch.randn(5, 2).double(), torch.randn(5).double()
    sigma = torch.tensor([0.01, 0.1, 1.0, 10.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, SD)
    want = c_skip[:, None] * x + c_out[:, None] * net(c_in[:, None] * x, c_noise, cond, n)
    torch.testing.assert_close(net.denoise(x, sigma, cond, n, SD), want)
    # each point on its own: permuting the points permutes the output
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(net.denoise(x[perm], sigma[perm], cond[perm], n[perm], SD),
                               want[perm])


def test_point_scaler_maps_layers_onto_minus_one_one() -> None:
    s = PointScaler(VOLUME)
    s.fit(torch.tensor([0.5, 2.0, 8.0]))
    points = torch.tensor([[-20.0, 0.0, 0.0, 0.5], [20.0, 10.0, 1.0, 2.0],
                           [0.0, 5.0, 6.0, 8.0], [10.0, 2.5, 9.999, 1e-9]])
    y = s.to_network(points)
    torch.testing.assert_close(y[:, 0], torch.tensor([-1.0, 1.0, 0.0, 0.5]))
    torch.testing.assert_close(y[:, 1], torch.tensor([-1.0, 1.0, 0.0, -0.5]))
    # layer 0 (2 mm) and layer 1 (8 mm) each take half of [-1, 1]
    torch.testing.assert_close(y[:, 2], torch.tensor([-1.0, -0.5, 0.5, 1.0]), atol=1e-3,
                               rtol=0)
    torch.testing.assert_close(y[:3, 3].mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    xy, e = s.xy_energy(y)
    torch.testing.assert_close(xy, points[:, :2])
    torch.testing.assert_close(e[:3], points[:3, 3])
    assert e[3] > 0


def test_per_shower_context_equals_the_per_point_context() -> None:
    """Sampling computes the context layers once per shower (``rows``): same output as the
    per-point context, for one shower and several; mixed noise levels are refused."""
    torch.manual_seed(0)
    net = PointWiseNet(2, [8, 8], 8).double()
    rows = torch.tensor([0, 0, 1, 2, 2, 2])
    x = torch.randn(6, 4).double()
    cond, n = torch.randn(3, 2).double(), torch.randn(3).double()
    sigma = torch.full((6,), 0.7, dtype=torch.float64)
    want = net.denoise(x, sigma, cond[rows], n[rows], SD)
    torch.testing.assert_close(net.denoise(x, sigma, cond, n, SD, rows), want)
    one = torch.zeros(6, dtype=torch.int64)
    torch.testing.assert_close(net.denoise(x, sigma, cond[:1], n[:1], SD, one),
                               net.denoise(x, sigma, cond[one], n[one], SD))
    with pytest.raises(ValueError, match="one noise level"):
        net.denoise(x, torch.linspace(0.1, 1, 6).double(), cond, n, SD, rows)
