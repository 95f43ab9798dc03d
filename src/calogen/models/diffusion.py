"""Iterative image families: DDPM/DDIM, EDM, conditional flow matching (pixel space).

All three learn to undo a noising of the ``log1p`` photon image ``x`` (scaled by the hparam
``data_scale``) given the conditions, with the conditional U-Net of
:mod:`calogen.models.unet`, and sample by integrating from pure noise with the loops of
:mod:`calogen.models.samplers`:

* ``"ddpm"`` (Ho et al., arXiv:2006.11239): ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps``,
  the network predicts ``eps`` (squared error); sampling by DDIM (Song et al.,
  arXiv:2010.02502) with ``steps`` network calls and stochasticity ``eta``.
* ``"edm"`` (Karras et al., arXiv:2206.00364): ``x + sigma n`` with ``ln sigma ~
  N(P_mean, P_std^2)``, the preconditioned denoiser ``D = c_skip x + c_out F(c_in x, c_noise)``
  trained with the weight ``lambda(sigma)``; sampling with the Karras schedule by Heun
  (``2 steps - 1`` calls), Euler, or the stochastic sampler (``s_churn``).
* ``"flow-matching"`` (Lipman et al., arXiv:2210.02747; Liu et al., arXiv:2209.03003):
  straight paths ``x_t = (1 - t) n + t x``, the network predicts the velocity ``x - n``;
  sampling by Euler, midpoint or Heun with ``steps`` steps.

How many steps and which sampler are *sampling* options: the hparams ``steps``, ``sampler``,
``eta`` hold the defaults saved with the model, and :meth:`IterativeImageGenerator.
configure_sampling` changes them for a loaded model (``calogen generate --steps --sampler
--eta``) without retraining. Samples are clamped at 0 and read out by rounding
(``readout="round"``): these models generate the counts' fluctuations themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from calogen.models.backbones import ImageGenerator
from calogen.models.base import ModelSpec, TrainBatch, register_family
from calogen.models.samplers import (
    TIME_SAMPLINGS,
    ddim_sample,
    ddpm_alpha_bar,
    edm_loss_weight,
    edm_preconditioning,
    edm_sample,
    flow_matching_pair,
    flow_matching_times,
    karras_sigma_list,
    network_calls,
    ode_sample,
)
from calogen.models.unet import ConditionalUNet

__all__ = ["DDPM", "EDM", "FlowMatching", "IterativeImageGenerator", "SamplingOptions",
           "UNET_DEFAULTS"]

PREDICTIONS: tuple[str, ...] = ("eps", "v")
"""What the DDPM network predicts (see :class:`DDPM`)."""

UNET_DEFAULTS: dict[str, Any] = {
    "unet_channels": [32, 64, 96],   # U-Net widths from full resolution to the coarsest level
    "unet_attention": True,          # self-attention at the coarsest level
    "groups": 8,
    "cond_dim": 64,                  # width of the condition embedding
    "use_species": False,
    "readout": "round",
    "output": "linear",              # samples are clamped at 0 after the last step
    "data_scale": 1.0,               # the network sees log1p(counts) / data_scale
}
"""Hparams shared by the iterative families (the U-Net and the data scaling)."""


def per_image(a: Tensor) -> Tensor:
    """Per-row coefficients ``(B,)`` -> ``(B, 1, 1, 1)`` for images."""
    return a.view(-1, 1, 1, 1)


class SamplingOptions:
    """Mixin for generators whose sampling options (:attr:`sampling_keys`, stored in the
    hparams as the defaults saved with the model) can change after training."""

    family: ClassVar[str]
    hparams: dict[str, Any]
    sampling_keys: ClassVar[tuple[str, ...]] = ("steps", "sampler")
    samplers: ClassVar[tuple[str, ...]] = ()

    def _check_sampling(self, opts: dict[str, Any]) -> None:
        if int(opts["steps"]) < 1:
            raise ValueError(f"{self.family}: steps must be >= 1, got {opts['steps']}")
        if opts["sampler"] not in self.samplers:
            raise ValueError(f"{self.family}: sampler must be one of {self.samplers}, "
                             f"got {opts['sampler']!r}")

    def configure_sampling(self, **options: Any) -> dict[str, Any]:
        """Change sampling options (``None`` values are ignored); returns the options now in
        force. ``ValueError`` for options this family does not have."""
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - set(self.sampling_keys))
        if unknown:
            raise ValueError(f"{self.family}: no sampling option(s) {unknown}; this family "
                             f"has {list(self.sampling_keys)}")
        merged = {**self.hparams, **given}
        self._check_sampling(merged)
        self.hparams.update(given)
        return {k: self.hparams[k] for k in self.sampling_keys}


class IterativeImageGenerator(SamplingOptions, ImageGenerator):
    """Base of the iterative families: a conditional U-Net, a condition embedding and
    sampling options (:attr:`sampling_keys`) that can change after training."""

    one_step: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        self.cond_embed = self.condition_embedding()
        self.net = self.make_unet()
        self._check_sampling(hp)

    def make_unet(self) -> ConditionalUNet:
        """A new U-Net built from the hparams."""
        hp = self.hparams
        return ConditionalUNet(self.shape, int(hp["cond_dim"]),
                               channels=tuple(int(c) for c in hp["unet_channels"]),
                               groups=int(hp["groups"]), attention=bool(hp["unet_attention"]))

    @property
    def latent_dim(self) -> int:
        """Size of the flattened noise image ``H * W`` (the ONNX ``noise`` input)."""
        return self.shape[0] * self.shape[1]

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """``log1p`` image ``(B, 1, H, W)`` from flattened noise ``(B, H * W)``, integrated
        with the current sampling options (deterministic samplers only: see
        :meth:`exportable`); the ONNX export unrolls the steps."""
        return self._generate(noise.reshape(-1, 1, *self.shape), cond, species, None)

    def _generate(self, noise: Tensor, cond: Tensor, species: Tensor | None,
                  generator: torch.Generator | None) -> Tensor:
        """Noise image -> ``log1p`` image (physical scale), clamped at 0."""
        c = self.cond_embed(cond, species if self.hparams["use_species"] else None)
        return (self._integrate(noise, c, generator) * self._scale()).clamp(min=0)

    # -- shared pieces ----------------------------------------------------------------------

    def _species(self, batch: TrainBatch) -> Tensor | None:
        return batch.species if self.hparams["use_species"] else None

    def _scale(self) -> float:
        return float(self.hparams["data_scale"])

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """Integrate from noise to a ``log1p`` image ``(B, 1, H, W)``, clamped at 0."""
        noise = torch.randn((cond.shape[0], 1, *self.shape), generator=generator,
                            device=cond.device)
        return self._generate(noise, cond, species, generator)

    def _integrate(self, noise: Tensor, c: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError


@register_family
class DDPM(IterativeImageGenerator):
    """DDPM trained on noise prediction, sampled by DDIM. Hparams: ``timesteps`` (1000),
    ``schedule`` (``"cosine"`` or ``"linear"``), sampling ``steps`` (50), ``eta`` (0 =
    deterministic DDIM, 1 = ancestral), ``sampler`` (``"ddim"``), ``x0_max`` (8.0: the
    predicted clean image is clamped to ``[0, x0_max]`` in network units while sampling, see
    :func:`calogen.models.samplers.ddim_sample`; ``log1p`` of 8 is ~3000 photons per fibre),
    ``prediction`` (``"v"``, the default: the network predicts
    ``v = sqrt(abar) eps - sqrt(1 - abar) x``, Salimans & Ho, arXiv:2202.00512, well
    conditioned at every noise level; ``"eps"``: the noise, as Ho et al. and the ZDC DDPM),
    plus :data:`UNET_DEFAULTS`.

    With ``prediction="eps"`` the clean image at the first DDIM step is
    ``(x - sqrt(1 - abar_T) eps) / sqrt(abar_T)`` with ``1 / sqrt(abar_T) ~ 2e4`` (cosine
    schedule): any error of the noise prediction is amplified to the clip limits. On ZN (sparse
    images, mostly zero) half the pixels of that first estimate sat at ``x0_max``, and the chain
    never recovered after 400 training steps (photon sums ~100x the reference; starting the
    chain at ``abar ~ 1e-3`` instead gave the right median). ``"v"`` removes the division:
    same U-Net, data and ~400-step CPU budget (benchmarks/diffusion_families.py), channel W1
    1105x the floor with ``"eps"``, 1.69x with ``"v"``."""

    family: ClassVar[str] = "ddpm"
    sampling_keys: ClassVar[tuple[str, ...]] = ("steps", "sampler", "eta")
    samplers: ClassVar[tuple[str, ...]] = ("ddim",)
    defaults: ClassVar[dict[str, Any]] = {
        **UNET_DEFAULTS, "timesteps": 1000, "schedule": "cosine", "steps": 50, "eta": 0.0,
        "sampler": "ddim", "x0_max": 8.0, "prediction": "v",
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        abar = ddpm_alpha_bar(int(self.hparams["timesteps"]), str(self.hparams["schedule"]))
        self.register_buffer("alpha_bar", abar.float(), persistent=False)
        self._alpha_bar_list = abar.tolist()  # Python floats: sampling loops stay exportable
        if self.hparams["prediction"] not in PREDICTIONS:
            raise ValueError(f"ddpm: prediction must be one of {PREDICTIONS}, "
                             f"got {self.hparams['prediction']!r}")

    def _check_sampling(self, opts: dict[str, Any]) -> None:
        super()._check_sampling(opts)
        if int(opts["steps"]) > int(opts["timesteps"]):
            raise ValueError(f"ddpm: steps ({opts['steps']}) exceed the {opts['timesteps']} "
                             f"training timesteps")
        if float(opts["eta"]) < 0:
            raise ValueError(f"ddpm: eta must be >= 0, got {opts['eta']}")

    def _output(self, x: Tensor, t_index: Tensor, c: Tensor) -> Tensor:
        return self.net(x, t_index.float() / float(self.hparams["timesteps"]), c)

    def _eps(self, x: Tensor, t_index: Tensor, c: Tensor) -> Tensor:
        """Predicted noise in ``x`` at ``t_index`` (from ``v`` with ``prediction="v"``:
        ``eps = sqrt(1 - abar) x + sqrt(abar) v``)."""
        out = self._output(x, t_index, c)
        if self.hparams["prediction"] == "eps":
            return out
        ab = self.alpha_bar[t_index].view(-1, 1, 1, 1).to(x.dtype)
        return (1 - ab).sqrt() * x + ab.sqrt() * out

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"ddpm: unknown phase {phase!r}; phases {self.phases}")
        x0 = batch.x / self._scale()
        t = torch.randint(0, int(self.hparams["timesteps"]), (x0.shape[0],), device=x0.device)
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)
        eps = torch.randn_like(x0)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        c = self.cond_embed(batch.cond, self._species(batch))
        if self.hparams["prediction"] == "eps":
            target = eps
        else:
            target = ab.sqrt() * eps - (1 - ab).sqrt() * x0
        loss = (self._output(xt, t, c) - target).pow(2).mean()
        return loss, {"loss": loss.item()}

    def exportable(self) -> bool:
        return float(self.hparams["eta"]) == 0.0

    def _integrate(self, noise: Tensor, c: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        return ddim_sample(lambda x, t: self._eps(x, t, c), noise, self._alpha_bar_list,
                           int(self.hparams["steps"]), float(self.hparams["eta"]), generator,
                           clip=(0.0, float(self.hparams["x0_max"])))

    def network_calls(self) -> int:
        return network_calls("ddim", int(self.hparams["steps"]))


@register_family
class EDM(IterativeImageGenerator):
    """EDM (Karras et al.). Hparams: ``sigma_data`` (0.5), ``p_mean`` (-1.2), ``p_std`` (1.2),
    ``sigma_min`` (0.002), ``sigma_max`` (80), ``rho`` (7); sampling ``steps`` (18),
    ``sampler`` (``"heun"``, ``"euler"`` or ``"stochastic"``: Heun with ``s_churn``
    (40), ``s_tmin`` (0.05), ``s_tmax`` (50), ``s_noise`` (1.003)), plus :data:`UNET_DEFAULTS`."""

    family: ClassVar[str] = "edm"
    sampling_keys: ClassVar[tuple[str, ...]] = ("steps", "sampler", "s_churn")
    samplers: ClassVar[tuple[str, ...]] = ("heun", "euler", "stochastic")
    defaults: ClassVar[dict[str, Any]] = {
        **UNET_DEFAULTS, "sigma_data": 0.5, "p_mean": -1.2, "p_std": 1.2, "sigma_min": 0.002,
        "sigma_max": 80.0, "rho": 7.0, "steps": 18, "sampler": "heun", "s_churn": 40.0,
        "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003,
    }

    def denoise(self, x: Tensor, sigma: Tensor, c: Tensor) -> Tensor:
        """Preconditioned denoiser ``D(x; sigma)`` (network space, ``sigma (B,)``)."""
        sd = float(self.hparams["sigma_data"])
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, sd)
        return per_image(c_skip) * x + per_image(c_out) * self.net(per_image(c_in) * x, c_noise, c)

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"edm: unknown phase {phase!r}; phases {self.phases}")
        x0 = batch.x / self._scale()
        hp = self.hparams
        sigma = torch.exp(float(hp["p_mean"]) + float(hp["p_std"])
                          * torch.randn(x0.shape[0], device=x0.device))
        noisy = x0 + sigma.view(-1, 1, 1, 1) * torch.randn_like(x0)
        c = self.cond_embed(batch.cond, self._species(batch))
        err = (self.denoise(noisy, sigma, c) - x0).pow(2).flatten(1).mean(1)
        loss = (edm_loss_weight(sigma, float(hp["sigma_data"])) * err).mean()
        return loss, {"loss": loss.item(), "mse": err.mean().item()}

    def sigmas(self) -> list[float]:
        """The Karras noise levels of the current sampling options (Python floats)."""
        hp = self.hparams
        return karras_sigma_list(int(hp["steps"]), float(hp["sigma_min"]),
                                 float(hp["sigma_max"]), float(hp["rho"]))

    def exportable(self) -> bool:
        return self.hparams["sampler"] != "stochastic"

    def _integrate(self, noise: Tensor, c: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        hp = self.hparams
        stochastic = hp["sampler"] == "stochastic"
        return edm_sample(lambda x, s: self.denoise(x, s, c), noise, self.sigmas(),
                          heun=hp["sampler"] != "euler",
                          s_churn=float(hp["s_churn"]) if stochastic else 0.0,
                          s_tmin=float(hp["s_tmin"]), s_tmax=float(hp["s_tmax"]),
                          s_noise=float(hp["s_noise"]), generator=generator)

    def network_calls(self) -> int:
        method = "euler" if self.hparams["sampler"] == "euler" else "heun"
        return network_calls("edm", int(self.hparams["steps"]), method)


@register_family
class FlowMatching(IterativeImageGenerator):
    """Conditional flow matching with straight paths. Hparams: ``time_sampling``
    (``"uniform"`` or ``"logit-normal"``: ``t = sigmoid(N(0, 1))``, Esser et al.,
    arXiv:2403.03206), sampling ``steps`` (10) and ``sampler`` (``"euler"``, ``"midpoint"``,
    ``"heun"``; default midpoint), plus :data:`UNET_DEFAULTS`."""

    family: ClassVar[str] = "flow-matching"
    samplers: ClassVar[tuple[str, ...]] = ("euler", "midpoint", "heun")
    defaults: ClassVar[dict[str, Any]] = {
        **UNET_DEFAULTS, "time_sampling": "logit-normal", "steps": 10, "sampler": "midpoint",
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        if self.hparams["time_sampling"] not in TIME_SAMPLINGS:
            raise ValueError(f"flow-matching: time_sampling must be one of {TIME_SAMPLINGS}")

    def velocity(self, x: Tensor, t: Tensor, c: Tensor) -> Tensor:
        """Predicted velocity at ``x``, time ``t (B,)`` in [0, 1] (0 = noise, 1 = data)."""
        return self.net(x, t, c)

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"flow-matching: unknown phase {phase!r}; phases {self.phases}")
        x1 = batch.x / self._scale()
        t = flow_matching_times(x1.shape[0], str(self.hparams["time_sampling"]), x1.device)
        xt, target = flow_matching_pair(x1, torch.randn_like(x1), t)
        c = self.cond_embed(batch.cond, self._species(batch))
        loss = (self.velocity(xt, t, c) - target).pow(2).mean()
        return loss, {"loss": loss.item()}

    def exportable(self) -> bool:
        return True

    def _integrate(self, noise: Tensor, c: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        return ode_sample(lambda x, t: self.velocity(x, t, c), noise,
                          int(self.hparams["steps"]), str(self.hparams["sampler"]))

    def network_calls(self) -> int:
        return network_calls("ode", int(self.hparams["steps"]), str(self.hparams["sampler"]))

