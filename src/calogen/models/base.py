"""The ``Generator`` interface every generative family implements, and the family registry.

A family is a ``torch.nn.Module`` that

* trains through :meth:`Generator.loss`, called once per *phase* per step; a phase is one
  optimiser (``("main",)`` for a VAE; ``("discriminator", "generator")`` for a GAN), so the
  trainer handles two-optimiser families without special cases;
* samples in network space with :meth:`Generator.sample_network` and in physical units with
  :meth:`Generator.sample` (photon counts, rounded to integers, non-negative);
* is one network pass from noise to image when ``one_step`` is true, exposing
  :meth:`Generator.decode` ``(noise [B, latent], standardised conditions [B, k]) -> log image``
  for ONNX export with the ALICE O2 signature.

Models receive tensors; they never open data files. Saving and loading is in
:mod:`calogen.models.io` (safetensors + JSON, never pickle).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from calogen.models.budget import ModelTooLarge, build_budget, largest_sizes
from calogen.models.transforms import Transforms


@dataclass
class TrainBatch:
    """One training batch in network space.

    Attributes:
        x: transformed showers ``(B, 1, H, W)`` float32 (``log1p`` of photon counts).
        cond: standardised conditions ``(B, k)`` float32.
        species: species indices ``(B,)`` int64.
        group: condition-group ids ``(B,)`` int64 (equal for repeats of one particle).
    """

    x: Tensor
    cond: Tensor
    species: Tensor
    group: Tensor

    def to(self, device: torch.device | str) -> TrainBatch:
        return TrainBatch(self.x.to(device), self.cond.to(device), self.species.to(device),
                          self.group.to(device))

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class ModelSpec:
    """What a model is built for: image shape, condition count, species count, transforms."""

    shape: tuple[int, int]
    transforms: Transforms
    detector: str = "ZN"

    @property
    def n_conditions(self) -> int:
        return self.transforms.n_conditions

    @property
    def n_species(self) -> int:
        return self.transforms.n_species

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "detector": self.detector,
                "transforms": self.transforms.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming the field (``spec.shape``, ...)
        for a malformed entry (bounds are checked by :mod:`calogen.models.document`)."""
        if not isinstance(d, dict):
            raise ValueError(f"field 'spec': expected an object, found {type(d).__name__}")
        shape = d.get("shape")
        if not (isinstance(shape, (list, tuple)) and len(shape) == 2
                and all(_positive_integer(v) for v in shape)):
            raise ValueError(f"field 'spec.shape': expected [H, W] (two positive integers), "
                             f"found {shape!r:.60}")
        if not isinstance(d.get("transforms"), dict):
            raise ValueError("field 'spec.transforms': expected an object")
        try:
            transforms = Transforms.from_dict(d["transforms"])
        except ValueError as exc:
            raise ValueError(f"field 'spec.transforms': {exc}") from None
        return cls((int(shape[0]), int(shape[1])), transforms, str(d.get("detector", "ZN")))


def _positive_integer(value: Any) -> bool:
    """Whether ``value`` is an integer >= 1 (``44`` or ``44.0``; not ``True``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (isinstance(value, int) or value.is_integer()) and value >= 1


class Generator(nn.Module, ABC):
    """Base class of every generative family (see the module docstring)."""

    family: ClassVar[str] = ""
    phases: ClassVar[tuple[str, ...]] = ("main",)
    one_step: ClassVar[bool] = True
    validate_by_sampling: ClassVar[bool] = True
    """Whether sampling the validation subset during training is affordable; families whose
    sampling takes seconds per shower (a MAF) are validated by their loss instead."""
    onnx_tolerance: ClassVar[float] = 1e-4
    """Largest accepted ``|onnx - torch|`` of the exported log image (absolute plus relative)
    in the parity check every export runs."""
    optimizer_defaults: ClassVar[dict[str, Any]] = {}
    """Recommended AdamW settings (``lr``, ``betas``) where they differ from the trainer's
    defaults; ``calogen train`` uses them unless ``--lr`` / ``--betas`` are given."""

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__()
        self.spec = spec
        self.hparams = dict(hparams)

    # -- training ---------------------------------------------------------------------------

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """Parameters the optimiser of ``phase`` updates (default: all, for one phase)."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        return [p for p in self.parameters() if p.requires_grad]

    @abstractmethod
    def loss(self, batch: TrainBatch, phase: str) -> tuple[Tensor, dict[str, float]]:
        """Scalar loss of ``phase`` on ``batch`` and scalars to log."""

    # -- sampling ---------------------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        """Size of the noise vector of one-step families."""
        return int(self.hparams.get("latent_dim", 0))

    def noise(self, n: int, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """Standard normal noise ``(n, latent_dim)``."""
        device = device or next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def network_calls(self) -> int:
        """Network evaluations per generated shower with the current sampling options (1 for
        the one-step families; iterative families override it)."""
        if self.one_step:
            return 1
        raise NotImplementedError(f"{self.family}: network_calls() not implemented")

    def exportable(self) -> bool:
        """Whether :meth:`decode` maps (noise, conditions) to an image deterministically, so
        that :func:`calogen.models.export_onnx.export_onnx` can write it (one-step families;
        iterative ones with a deterministic sampler, unrolled)."""
        return self.one_step

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """One-step families: log image ``(B, 1, H, W)`` from noise and standardised
        conditions (the ALICE O2 ONNX signature)."""
        raise NotImplementedError(f"{self.family} is not a one-step generator")

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """Showers in network space ``(B, 1, H, W)`` for standardised conditions."""
        z = self.noise(len(cond), generator, cond.device)
        return self.decode(z, cond, species)

    @torch.no_grad()
    def sample(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
               generator: torch.Generator | None = None, *, batch_size: int = 4096,
               rounding: bool = True) -> np.ndarray:
        """Showers in physical units for physical conditions (O2 order and units).

        Returns photon counts ``(N, H, W)``: int32 when ``rounding``, else the float32 expected
        counts. How counts are made is the hparam ``readout``: ``"round"`` (nearest integer,
        the default) or ``"poisson"`` (the network's output is the expected photon count per
        fibre and the counts are drawn from a Poisson law, as the photon-counting readout does;
        it restores pixel-level fluctuations that a smooth decoder lacks).
        """
        readout = str(self.hparams.get("readout", "round"))
        if readout not in READOUTS:
            raise ValueError(f"{self.family}: hparam 'readout' must be one of {READOUTS}, "
                             f"got {readout!r}")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        cond = self.spec.transforms.conditions(conditions).to(device)
        species = self.spec.transforms.species(pdg).to(device)
        out = []
        for start in range(0, len(cond), batch_size):
            y = self.sample_network(cond[start:start + batch_size],
                                    species[start:start + batch_size], generator)
            rate = Transforms.inverse_showers(y[:, 0]).float()
            if not rounding:
                out.append(rate.cpu())
            elif readout == "poisson":
                out.append(torch.poisson(rate, generator=generator).to(torch.int32).cpu())
            else:
                out.append(rate.round().to(torch.int32).cpu())
        self.train(was_training)
        if not out:
            h, w = self.spec.shape
            return np.zeros((0, h, w), np.int32 if rounding else np.float32)
        return torch.cat(out).numpy()

    def extra_state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state beyond the weights (e.g. a post-processing scale)."""
        return {}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_state_dict`."""


READOUTS: tuple[str, ...] = ("round", "poisson")
"""How :meth:`Generator.sample` turns expected photon counts into counts."""

FAMILIES: dict[str, type[Generator]] = {}
"""Registered families by name (filled by :func:`register_family`)."""


def register_family(cls: type[Generator]) -> type[Generator]:
    """Class decorator adding a family to :data:`FAMILIES` under ``cls.family``."""
    if not cls.family:
        raise ValueError(f"{cls.__name__} must set a non-empty `family`")
    FAMILIES[cls.family] = cls
    return cls


def family_class(family: str) -> type[Generator]:
    """The registered class of ``family``; ``ValueError`` listing the known families."""
    _import_families()
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}") from None


def make_model(family: str, spec: ModelSpec, **hparams: Any) -> Generator:
    """A new model of ``family``; ``ValueError`` listing the known families otherwise.

    The build runs within :func:`calogen.models.budget.build_budget`: hyperparameters asking
    for more memory or tensors than its limits raise
    :class:`~calogen.models.budget.ModelTooLarge` (a ``ValueError``) naming the largest sizes
    given, before the memory is taken.
    """
    cls = family_class(family)
    try:
        with build_budget():
            return cls(spec, **hparams)
    except ModelTooLarge as exc:
        sizes = largest_sizes({"hparams": hparams, "spec": {"shape": list(spec.shape)}})
        raise ModelTooLarge(f"{family}: {exc}; the largest sizes asked for: {sizes} "
                            f"(CALOGEN_MAX_MODEL_BYTES / CALOGEN_MAX_MODEL_TENSORS raise the "
                            f"limits)") from None


def optimizer_defaults(family: str) -> dict[str, Any]:
    """The family's recommended AdamW settings (may be empty); ``ValueError`` if unknown."""
    return dict(family_class(family).optimizer_defaults)


def _import_families() -> None:
    """Import the modules that register families (lazily: torch-heavy)."""
    import importlib

    for module in ("calogen.models.vae", "calogen.models.ae_noise", "calogen.models.gan",
                   "calogen.models.diffusion", "calogen.models.consistency",
                   "calogen.models.latent_fm", "calogen.models.caloflow", "calogen.models.vq"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
