"""Conditional U-Net: any image shape, zero init, learns, uses its inputs, batch-independent,
exports to ONNX with a dynamic batch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from calogen.models.nn.unet import ConditionalUNet, SinusoidalEmbedding

COND = 5
SMALL = {"channels": (8, 16), "groups": 4, "heads": 4, "time_dim": 16}


def _net(shape: tuple[int, int] = (12, 10), **kw) -> ConditionalUNet:
    return ConditionalUNet(shape, COND, **{**SMALL, **kw})


def _randomise(model: torch.nn.Module, scale: float = 0.05) -> None:
    """Perturb every parameter so the zero-initialised layers no longer make outputs trivial."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def _inputs(n: int, shape: tuple[int, int] = (12, 10)) -> tuple[torch.Tensor, ...]:
    return torch.randn(n, 1, *shape), torch.rand(n), torch.randn(n, COND)


@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("shape", [(44, 44), (56, 30), (13, 7)])
def test_output_shape_equals_input_shape(shape: tuple[int, int], attention: bool) -> None:
    torch.manual_seed(0)
    # three levels: the input is padded to a multiple of 4 (56x30 -> 56x32, 13x7 -> 16x8)
    net = _net(shape, channels=(8, 16, 16), attention=attention)
    assert (net.attn is not None) == attention
    x, t, c = _inputs(2, shape)
    y = net(x, t, c)
    assert y.shape == x.shape
    two = ConditionalUNet(shape, COND, in_channels=2, out_channels=3, **SMALL)
    assert two(torch.randn(2, 2, *shape), t, c).shape == (2, 3, *shape)


def test_zero_init_then_overfits_a_tiny_batch() -> None:
    torch.manual_seed(1)
    net = _net()
    x, t, c = _inputs(4)
    target = torch.randn_like(x)
    assert torch.equal(net(x, t, c), torch.zeros_like(x))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for step in range(30):
        loss = torch.nn.functional.mse_loss(net(x, t, c), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step == 0:
            with torch.no_grad():
                assert net(x, t, c).abs().max() > 0
    assert losses[0] == pytest.approx(target.pow(2).mean().item())
    assert losses[-1] < 0.2 * losses[0], losses


def test_output_depends_on_noise_level_and_cond() -> None:
    torch.manual_seed(2)
    net = _net().eval()
    _randomise(net)
    x, t, c = _inputs(3)
    with torch.no_grad():
        y = net(x, t, c)
        for t2 in (t + 0.05, t - 4.0):  # flow-matching time and log(sigma)/4-like levels
            assert (net(x, t2, c) - y).abs().amax(dim=(1, 2, 3)).min() > 1e-4
        c2 = c.clone()
        c2[:, 0] += 0.5
        assert (net(x, t, c2) - y).abs().amax(dim=(1, 2, 3)).min() > 1e-4


def test_noise_level_embedding_resolves_both_ranges() -> None:
    emb = SinusoidalEmbedding(16)
    for levels in (torch.linspace(0, 1, 101), torch.linspace(-5, 5, 101)):
        e = emb(levels)
        assert e.shape == (101, 16)
        dist = torch.cdist(e, e) + torch.eye(101) * 1e9
        assert dist.min() > 0.5
    with pytest.raises(ValueError, match="heads"):
        _net(heads=3)


def test_rows_are_independent_of_the_batch() -> None:
    torch.manual_seed(3)
    net = _net().eval()
    _randomise(net)
    x, _, c = _inputs(5)
    t = torch.linspace(-2.0, 1.0, 5)
    with torch.no_grad():
        y = net(x, t, c)
        assert y.abs().max() > 1e-3
        for i in range(5):
            alone = net(x[i:i + 1], t[i:i + 1], c[i:i + 1])
            torch.testing.assert_close(y[i:i + 1], alone, atol=1e-5, rtol=0)


def test_onnx_export_with_dynamic_batch(tmp_path) -> None:
    torch.manual_seed(4)
    shape = (13, 7)
    net = _net(shape).eval()
    _randomise(net)
    path = tmp_path / "unet.onnx"
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        net, _inputs(2, shape), str(path), dynamo=True,
        input_names=["x", "noise_level", "cond"], output_names=["out"],
        dynamic_shapes={"x": {0: batch}, "noise_level": {0: batch}, "cond": {0: batch}},
        opset_version=18, external_data=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        x, t, c = _inputs(n, shape)
        t = 4.0 * t - 2.0
        (out,) = sess.run(None, {"x": x.numpy(), "noise_level": t.numpy(), "cond": c.numpy()})
        with torch.no_grad():
            ref = net(x, t, c).numpy()
        assert out.shape == (n, 1, *shape)
        assert np.abs(ref).max() > 1e-3
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
