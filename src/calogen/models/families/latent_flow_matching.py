"""Conditional flow matching in a trained autoencoder's latent space (family
``"latent-flow-matching"``).

The route of the ZDC flow-matching study (Dubinski et al., "Even Faster Simulations with Flow
Matching", arXiv:2507.18811; latent diffusion: Rombach et al., arXiv:2112.10752): the image is
compressed once by an autoencoder, and the generative model only has to learn the
low-dimensional distribution of the codes given the conditions. Here

* the autoencoder is a trained calogen ``vae`` (latent = a draw from the posterior
  ``q(z | x, c)``, or its mean with ``latent_source="mean"``) or ``ae-noise`` (latent = the
  deterministic code); it is frozen and stored *inside* this model (architecture in the hparams
  ``ae_family``/``ae_hparams``, weights under ``ae.*``), so a saved model never refers to
  another directory;
* a small MLP ``v(z_t, t, c)`` regresses the straight-path velocity ``z - n`` at
  ``z_t = (1 - t) n + t z`` (Lipman et al., arXiv:2210.02747; Liu et al., arXiv:2209.03003) in
  standardised latent units (mean and standard deviation per latent coordinate, estimated on
  the first training batch and stored as buffers);
* sampling integrates ``dz/dt = v`` from Gaussian noise with ``steps`` Euler / midpoint / Heun
  steps (each an MLP call on a ``latent``-sized vector: microseconds per shower) and decodes once
  with the autoencoder's decoder; the counts are read out as the autoencoder does (``readout``).
* on voxels (a ``vae`` / ``ae-noise`` trained on voxels, MLP backbone) the same: the decoder
  returns ``log1p`` energies ``(B, n_voxels)`` in MeV.

Train with ``calogen train --model latent-flow-matching --base DIR`` (a ``vae`` or
``ae-noise`` model directory): :meth:`LatentFlowMatching.derived_from_base` copies the
autoencoder's family and hparams; its weights are copied in at the first training step.
Deterministic sampling exports to ONNX with the steps unrolled (noise of the latent size +
conditions -> image, the ALICE O2 signature).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from calogen.models.generator import (
    BuiltOn,
    Generator,
    ImageGenerator,
    ModelSpec,
    SamplingOptions,
    TrainBatch,
)
from calogen.models.nn.rate_noise import FittedRateNoise
from calogen.models.nn.samplers import (
    ODE_METHODS,
    TIME_SAMPLINGS,
    flow_matching_pair,
    flow_matching_times,
    network_calls,
    ode_sample,
)
from calogen.models.registry import make_model, register_family

__all__ = ["AUTOENCODER_FAMILIES", "LatentFlowMatching", "LatentVelocityField"]

AUTOENCODER_FAMILIES: tuple[str, ...] = ("vae", "ae-noise")
"""Families whose latent space this family can model."""

LATENT_SOURCES: tuple[str, ...] = ("posterior", "mean")


class LatentVelocityField(nn.Module):
    """MLP ``v(z_t, t, c)``: ``[z_t, Fourier(t), c] -> hidden (x depth, SiLU) -> dim``.

    ``t`` enters through ``sin/cos(2 pi f_k t)`` with ``time_features / 2`` frequencies
    ``f_k`` geometric in ``[1, 64]``; the last layer starts at zero (velocity 0)."""

    freqs: Tensor

    def __init__(self, dim: int, cond_dim: int, hidden: int = 256, depth: int = 3,
                 time_features: int = 32) -> None:
        super().__init__()
        if depth < 1 or hidden < 1 or time_features < 2 or time_features % 2:
            raise ValueError("LatentVelocityField: depth, hidden >= 1; time_features even >= 2")
        half = time_features // 2
        self.register_buffer("freqs", 2 * math.pi * torch.logspace(0, math.log10(64), half))
        layers: list[nn.Module] = []
        width = dim + time_features + cond_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        out = nn.Linear(width, dim)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*layers, out)

    def forward(self, z: Tensor, t: Tensor, c: Tensor) -> Tensor:
        """``z (B, dim)``, ``t (B,)`` in [0, 1], ``c (B, cond_dim)`` -> velocity ``(B, dim)``."""
        phase = t.unsqueeze(1) * self.freqs
        return self.net(torch.cat([z, torch.sin(phase), torch.cos(phase), c], dim=1))


@register_family
class LatentFlowMatching(FittedRateNoise, SamplingOptions, ImageGenerator):
    """Flow matching in a frozen autoencoder's latent space. Hparams: ``autoencoder`` (model
    directory, needed to train), ``ae_family``, ``ae_hparams`` (the autoencoder's, from
    :meth:`derived_from_base`), ``latent_source`` (vae only: ``"posterior"`` draw or
    ``"mean"``), ``hidden`` (256), ``depth`` (3), ``time_features`` (32), ``time_sampling``
    (``"uniform"`` or ``"logit-normal"``), sampling ``steps`` (4) and ``sampler``
    (``"euler"``, ``"midpoint"``, ``"heun"``; midpoint), ``cond_dim``, ``use_species``,
    ``readout`` (the autoencoder's), ``rate_noise`` (``"fit"``: after training, the vae's Cox
    readout of :mod:`calogen.models.nn.rate_noise` fitted on this model's own samples; or
    ``"off"``)."""

    family: ClassVar[str] = "latent-flow-matching"
    category: ClassVar[str] = "diffusion"
    built_on: ClassVar[BuiltOn | None] = BuiltOn(AUTOENCODER_FAMILIES, "autoencoder")
    one_step: ClassVar[bool] = False
    shapes: ClassVar[frozenset[str]] = frozenset({"image", "voxels"})
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {"voxels": {"readout": "round"}}
    samplers: ClassVar[tuple[str, ...]] = ODE_METHODS
    defaults = {
        "autoencoder": "", "ae_family": "", "ae_hparams": {}, "latent_source": "posterior",
        "hidden": 256, "depth": 3, "time_features": 32, "time_sampling": "uniform",
        "steps": 4, "sampler": "midpoint", "cond_dim": 64, "use_species": False,
        "readout": "poisson", "output": "linear", "rate_noise": "fit",
    }

    z_mean: Tensor
    z_std: Tensor
    initialised: Tensor

    @classmethod
    def derived_from_base(cls, base: dict[str, Any]) -> dict[str, Any]:
        """The autoencoder's family and hparams (its weights are copied at the first training
        step), and its ``readout`` and ``use_species``."""
        from calogen.models.io import saved_hparams  # io imports the registry

        hp = saved_hparams(str(base["family"]), base["hparams"])
        return {"ae_family": base["family"], "ae_hparams": hp,
                "readout": hp.get("readout", "round"), "use_species": bool(hp.get("use_species"))}

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        if hp["ae_family"] not in AUTOENCODER_FAMILIES:
            raise ValueError(f"latent-flow-matching: ae_family must be one of "
                             f"{AUTOENCODER_FAMILIES} (build the hparams with "
                             f"hparams_from_autoencoder()), got {hp['ae_family']!r}")
        if hp["latent_source"] not in LATENT_SOURCES:
            raise ValueError(f"latent-flow-matching: latent_source must be one of "
                             f"{LATENT_SOURCES}, got {hp['latent_source']!r}")
        if hp["time_sampling"] not in TIME_SAMPLINGS:
            raise ValueError(f"latent-flow-matching: time_sampling must be one of "
                             f"{TIME_SAMPLINGS}")
        self._check_sampling(hp)
        self.ae: Generator = make_model(str(hp["ae_family"]), spec, **dict(hp["ae_hparams"]))
        self.ae.requires_grad_(False)
        d = self.latent_dim
        self.cond_embed = self.condition_embedding()
        self.velocity_net = LatentVelocityField(d, int(hp["cond_dim"]), int(hp["hidden"]),
                                                int(hp["depth"]), int(hp["time_features"]))
        self.register_buffer("z_mean", torch.zeros(d))
        self.register_buffer("z_std", torch.ones(d))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int64))
        self.check_rate_noise()

    # -- the autoencoder --------------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        """Size of the autoencoder's latent (= the noise of the ODE)."""
        key = "latent_dim" if self.hparams["ae_family"] == "vae" else "code_dim"
        return int(self.ae.hparams[key])

    def _ae_species(self, species: Tensor | None) -> Tensor | None:
        return species if self.ae.hparams.get("use_species") else None

    def encode_latent(self, x: Tensor, cond: Tensor, species: Tensor | None) -> Tensor:
        """The autoencoder's latent of log images ``x`` (unstandardised), ``(B, latent_dim)``."""
        s = self._ae_species(species)
        if self.hparams["ae_family"] == "vae":
            mu, logvar = self.ae.encode(x, cond, s)  # type: ignore[operator]
            if self.hparams["latent_source"] == "mean":
                return mu
            return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.ae.encode(x, cond, s)  # type: ignore[operator]

    def decode_latent(self, z: Tensor, cond: Tensor, species: Tensor | None) -> Tensor:
        """Log image ``(B, 1, H, W)`` from an (unstandardised) latent."""
        s = self._ae_species(species)
        if self.hparams["ae_family"] == "vae":
            return self.ae.decode_latent(z, cond, s)  # type: ignore[operator]
        return self.ae.decode_code(z, cond, s)  # type: ignore[operator]

    def _initialise(self, batch: TrainBatch) -> None:
        """Copy the autoencoder's weights in and standardise the latent on ``batch``."""
        from calogen.models.io import load_model

        path = str(self.hparams["autoencoder"])
        if not path:
            raise ValueError("latent-flow-matching: training needs a trained autoencoder "
                             "(hparam 'autoencoder', or `calogen train --model "
                             "latent-flow-matching --base DIR`)")
        device = batch.x.device
        ae = load_model(path, map_location=device)
        if ae.family != self.hparams["ae_family"] or ae.hparams != self.ae.hparams:
            raise ValueError(f"{path}: this autoencoder differs from the one the model was "
                             f"built for; build the hparams with "
                             f"calogen.models.io.hparams_on_top_of()")
        self.ae.load_state_dict(ae.state_dict())
        with torch.no_grad():
            z = self.encode_latent(batch.x, batch.cond, batch.species)
            self.z_mean.copy_(z.mean(0))
            self.z_std.copy_(z.std(0).clamp(min=1e-3) if z.shape[0] > 1 else torch.ones_like(
                self.z_std))
        self.initialised.fill_(1)

    # -- training ---------------------------------------------------------------------------

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """The velocity field and its condition embedding (the autoencoder is frozen)."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        return [*self.cond_embed.parameters(), *self.velocity_net.parameters()]

    def velocity(self, z: Tensor, t: Tensor, c: Tensor) -> Tensor:
        """Velocity in standardised latent units; ``t (B,)`` (0 = noise, 1 = data)."""
        return self.velocity_net(z, t, c)

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        if int(self.initialised) == 0:
            if not (self.training and torch.is_grad_enabled()):
                raise RuntimeError("latent-flow-matching: not trained yet (the autoencoder "
                                   "is copied in at the first training step)")
            self._initialise(batch)
        species = batch.species if self.hparams["use_species"] else None
        with torch.no_grad():
            self.ae.eval()
            z1 = (self.encode_latent(batch.x, batch.cond, batch.species) - self.z_mean) \
                / self.z_std
        t = flow_matching_times(z1.shape[0], str(self.hparams["time_sampling"]), z1.device)
        zt, target = flow_matching_pair(z1, torch.randn_like(z1), t)
        pred = self.velocity(zt, t, self.cond_embed(batch.cond, species))
        loss = (pred - target).pow(2).mean()
        return loss, {"loss": loss.item()}

    # -- sampling ---------------------------------------------------------------------------

    def network_calls(self) -> int:
        """Velocity-field calls per shower (the decoder adds one image-sized pass)."""
        return network_calls("ode", int(self.hparams["steps"]), str(self.hparams["sampler"]))

    def exportable(self) -> bool:
        """Image models (the ALICE O2 signature); voxel models are sampled in Python."""
        return self.spec.kind == "image"

    def rate_noise_ready(self) -> bool:
        """The rate noise is fitted on samples: only once the autoencoder is copied in."""
        return int(self.initialised) == 1

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Log image ``(B, 1, H, W)`` from Gaussian noise ``(B, latent_dim)``: integrate the
        latent ODE with the current sampling options, then decode once."""
        c = self.cond_embed(cond, species if self.hparams["use_species"] else None)
        z = ode_sample(lambda x, t: self.velocity(x, t, c), noise, int(self.hparams["steps"]),
                       str(self.hparams["sampler"]))
        return self.decode_latent(z * self.z_std + self.z_mean, cond, species)
