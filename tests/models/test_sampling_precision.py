"""Generator.sample: the readout and the arithmetic of the network pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.models.generator import PRECISIONS


def _inputs(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    cond = np.random.default_rng(1).normal(size=(n, 9)).astype(np.float32)
    return cond, np.full(n, 2112, np.int32)


def test_round_readout_is_the_decoded_image_rounded(toy_model) -> None:  # noqa: ANN001
    cond, pdg = _inputs()
    got = toy_model.sample(cond, pdg, torch.Generator().manual_seed(4), batch_size=16)
    g = torch.Generator().manual_seed(4)
    c = toy_model.spec.transforms.conditions(cond)
    want = []
    with torch.no_grad():
        for a in range(0, len(c), 16):
            y = toy_model.decode(toy_model.noise(len(c[a:a + 16]), g, "cpu"), c[a:a + 16])
            want.append(Transforms.inverse_showers(y[:, 0]).round().to(torch.int32))
    assert got.dtype == np.int32 and np.array_equal(got, torch.cat(want).numpy())


def test_poisson_readout_draws_around_the_expected_counts(toy_model) -> None:  # noqa: ANN001
    toy_model.hparams["readout"] = "poisson"
    cond, pdg = np.repeat(_inputs(1)[0], 4000, 0), np.full(4000, 2112, np.int32)
    with torch.no_grad():
        toy_model.net.bias.fill_(0.5)   # rates expm1(softplus(0.5)) ~ 1.7 per cell
        toy_model.net.weight.zero_()   # the same rates for every row
    rate = toy_model.sample(cond[:1], pdg[:1], rounding=False)[0]
    counts = toy_model.sample(cond, pdg, torch.Generator().manual_seed(7), batch_size=1000)
    assert counts.dtype == np.int32
    se = np.sqrt(rate / 4000)
    assert np.all(np.abs(counts.mean(0) - rate) < 5 * se + 1e-6)
    assert np.all(np.abs(counts.var(0) / rate - 1) < 0.15)
    again = toy_model.sample(cond, pdg, torch.Generator().manual_seed(7), batch_size=1000)
    assert np.array_equal(counts, again)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_lower_precision_stays_close_to_float32(toy_model, precision: str) -> None:  # noqa: ANN001
    cond, pdg = _inputs(200)
    ref = toy_model.sample(cond, pdg, torch.Generator().manual_seed(2), rounding=False)
    low = toy_model.sample(cond, pdg, torch.Generator().manual_seed(2), rounding=False,
                           precision=precision)
    assert not np.array_equal(ref, low)                  # the precision did change the pass
    assert np.allclose(low, ref, rtol=0.05, atol=0.05)   # but not the showers
    toy_model.set_sampling_precision(precision)
    assert toy_model.sampling_precision == precision
    again = toy_model.sample(cond, pdg, torch.Generator().manual_seed(2), rounding=False)
    assert np.array_equal(again, low)


def test_int8_copy_follows_the_weights(toy_model) -> None:  # noqa: ANN001
    cond, pdg = _inputs(20)
    a = toy_model.sample(cond, pdg, torch.Generator().manual_seed(0), rounding=False,
                         precision="int8")
    with torch.no_grad():
        toy_model.net.bias.add_(1.0)
    b = toy_model.sample(cond, pdg, torch.Generator().manual_seed(0), rounding=False,
                         precision="int8")
    assert b.mean() > a.mean() * 1.5


def test_unknown_precision_is_refused(toy_model) -> None:  # noqa: ANN001
    assert toy_model.sampling_precision == "float32" and "bfloat16" in PRECISIONS
    with pytest.raises(ValueError, match="precision must be one of"):
        toy_model.sample(*_inputs(2), precision="float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        toy_model.set_sampling_precision("fp8")
