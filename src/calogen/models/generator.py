"""The ``Generator`` interface every generative family implements, and its model spec.

A family is a ``torch.nn.Module`` that

* trains through :meth:`Generator.loss`, called once per *phase* per step; a phase is one
  optimiser (``("main",)`` for a VAE; ``("discriminator", "generator")`` for a GAN), so the
  trainer handles two-optimiser families without special cases;
* declares the kinds of showers it supports (:attr:`Generator.shapes`: ``"image"``,
  ``"voxels"``, ``"points"``); the model's :class:`ModelSpec` carries the geometry;
* samples in network space with :meth:`Generator.sample_network` and in physical units with
  :meth:`Generator.sample` (images: photon counts, rounded, non-negative; voxels: energies in
  MeV) or, for point clouds, :meth:`Generator.sample_points`;
* is one network pass from noise to image when ``one_step`` is true, exposing
  :meth:`Generator.decode` ``(noise [B, latent], standardised conditions [B, k]) -> log image``
  for ONNX export with the ALICE O2 signature.

Models receive tensors; they never open data files. Saving and loading is in
:mod:`calogen.models.io` (safetensors + JSON, never pickle).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from calogen.data.transforms import Transforms
from calogen.geometry import SHAPE_KINDS, Geometry, ShapeKind, geometry_from_dict
from calogen.geometry.zdc import GRIDS, FibreGrid
from calogen.models.nn.backbones import ConditionEmbedding, output_activation, resolve_hparams
from calogen.models.nn.condition_features import condition_features
from calogen.models.nn.readout import poisson_counts
from calogen.models.nn.unet import ConditionalUNet


@dataclass
class TrainBatch:
    """One training batch in network space.

    Attributes:
        x: transformed showers of the model's geometry: images ``(B, 1, H, W)`` and voxels
            ``(B, n_voxels)`` float32 ``log1p`` of the cell values (photons, MeV); point clouds
            ``(B, P, 4)`` float32 ``(x, y, z, E)`` in mm and MeV, untransformed, zero after each
            shower's points (``P`` is the largest shower of the batch).
        cond: standardised conditions ``(B, k)`` float32.
        species: species indices ``(B,)`` int64.
        condition_id: condition-group ids ``(B,)`` int64 (equal for repeats of one particle;
            the ShowerSet's ``condition_id``).
        mask: point clouds: ``(B, P)`` bool, true for real points; ``None`` for images and
            voxels.
    """

    x: Tensor
    cond: Tensor
    species: Tensor
    condition_id: Tensor
    mask: Tensor | None = None

    def to(self, device: torch.device | str) -> TrainBatch:
        return TrainBatch(self.x.to(device), self.cond.to(device), self.species.to(device),
                          self.condition_id.to(device),
                          None if self.mask is None else self.mask.to(device))

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class CalibrationData:
    """Training showers in physical units, handed to :meth:`Generator.calibrate`.

    Attributes:
        showers: images ``(N, H, W)``, voxels ``(N, n_voxels)``; point clouds the ``(P, 4)``
            points ``(x, y, z, E)`` (mm, MeV) of the ``N`` showers one after the other.
        counts: point clouds: ``(N,)`` int64 points per shower; ``None`` otherwise.
        conditions: ``(N, k)`` float32 physical conditions (the model's condition columns).
        pdg: ``(N,)`` int32 PDG codes.
    """

    showers: np.ndarray
    counts: np.ndarray | None
    conditions: np.ndarray
    pdg: np.ndarray

    def __len__(self) -> int:
        return int(len(self.conditions))


def image_geometry(shape: tuple[int, int] | list[int], name: str = "image") -> FibreGrid:
    """The image geometry of ``shape`` named ``name``: the ZN or ZP grid when ``name`` and
    ``shape`` are theirs, else a grid of 1 cm cells (the pitch is unknown).

    Used for model documents written before specs carried their geometry, and for tests."""
    rows, cols = (int(v) for v in shape)
    known = GRIDS.get(str(name).upper())
    if known is not None and known.shape == (rows, cols):
        return known
    return FibreGrid(name=str(name), shape=(rows, cols), pitch_cm=(1.0, 1.0), depth_cm=0.0,
                     quadrant_split=(rows // 2, cols // 2))


@dataclass(frozen=True)
class ModelSpec:
    """What a model is built for: the readout geometry (its kind and shower shape) and the
    fitted transforms (condition columns, species)."""

    geometry: Geometry
    transforms: Transforms

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, Geometry) or self.geometry.kind not in SHAPE_KINDS:
            raise TypeError(f"ModelSpec: geometry must be a calogen.geometry object (e.g. ZN or "
                            f"image_geometry((H, W))), got {type(self.geometry).__name__}")

    @property
    def kind(self) -> ShapeKind:
        """The kind of showers: ``"image"``, ``"voxels"`` or ``"points"``."""
        return self.geometry.kind

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one shower: ``(H, W)``, ``(n_voxels,)``, or ``(4,)`` (one point)."""
        return tuple(int(d) for d in self.geometry.shower_shape)

    @property
    def detector(self) -> str:
        """The geometry's name (``"ZN"``, ``"toy-voxels"``, ...)."""
        return str(self.geometry.name)

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        """Shape of one shower in :attr:`TrainBatch.x`: ``(1, H, W)`` or ``(n_voxels,)``;
        ``ValueError`` for point clouds (their length varies)."""
        if self.kind == "image":
            return (1, *self.shape)
        if self.kind == "voxels":
            return self.shape
        raise ValueError("point clouds have no fixed tensor shape: (B, P, 4) with a mask")

    @property
    def n_conditions(self) -> int:
        return self.transforms.n_conditions

    @property
    def n_species(self) -> int:
        return self.transforms.n_species

    def to_dict(self) -> dict[str, Any]:
        return {"geometry": self.geometry.to_dict(), "transforms": self.transforms.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; also reads the earlier form ``{"shape": [H, W],
        "detector": ...}`` (an image: :func:`image_geometry`). ``ValueError`` naming the field
        (``spec.geometry``, ``spec.shape``, ...) for a malformed entry (bounds are checked by
        :mod:`calogen.models.document`)."""
        if not isinstance(d, dict):
            raise ValueError(f"field 'spec': expected an object, found {type(d).__name__}")
        geometry: Geometry
        if "geometry" in d:
            try:
                geometry = geometry_from_dict(d["geometry"])
            except ValueError as exc:
                raise ValueError(f"field 'spec.geometry': {exc}") from None
        else:
            shape = d.get("shape")
            if not (isinstance(shape, (list, tuple)) and len(shape) == 2
                    and all(_positive_integer(v) for v in shape)):
                raise ValueError(f"field 'spec.shape': expected [H, W] (two positive integers), "
                                 f"found {shape!r:.60}")
            geometry = image_geometry((int(shape[0]), int(shape[1])),
                                      str(d.get("detector", "ZN")))
        if not isinstance(d.get("transforms"), dict):
            raise ValueError("field 'spec.transforms': expected an object")
        try:
            transforms = Transforms.from_dict(d["transforms"])
        except ValueError as exc:
            raise ValueError(f"field 'spec.transforms': {exc}") from None
        return cls(geometry, transforms)


@dataclass(frozen=True)
class BuiltOn:
    """How a family is trained on top of another trained model (:attr:`Generator.built_on`).

    Attributes:
        families: the base families accepted; the first is the one a workflow trains first
            when it has to (the quickstart).
        option: the hparam holding the base model's directory; ``calogen train --base DIR``
            fills it (``--teacher`` / ``--autoencoder`` are aliases).
        copies: architecture hparams copied from the base (they must match it).
    """

    families: tuple[str, ...]
    option: str
    copies: tuple[str, ...] = ()

    @property
    def default_family(self) -> str:
        return self.families[0]


def _positive_integer(value: Any) -> bool:
    """Whether ``value`` is an integer >= 1 (``44`` or ``44.0``; not ``True``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (isinstance(value, int) or value.is_integer()) and value >= 1


class Generator(nn.Module, ABC):
    """Base class of every generative family (see the module docstring)."""

    family: ClassVar[str] = ""
    category: ClassVar[str] = ""
    """What kind of generator it is: ``"autoencoder"``, ``"adversarial"``, ``"diffusion"``
    (iterative denoising and flow matching), ``"flow"`` (normalizing flows), ``"token"``."""
    shapes: ClassVar[frozenset[str]] = frozenset({"image"})
    """Kinds of showers the family supports (``"image"``, ``"voxels"``, ``"points"``)."""
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

    built_on: ClassVar[BuiltOn | None] = None
    """Set by families trained on top of another trained model (a teacher, an autoencoder);
    see :meth:`hparams_from_base`."""
    legacy_state_keys: ClassVar[dict[str, str]] = {}
    """Weight-name prefixes of files saved by earlier layouts mapped to today's (old
    ``"d_head."`` -> ``"discriminator.head."``), applied when weights are loaded."""

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__()
        self.spec = spec
        self.hparams = dict(hparams)
        if self.legacy_state_keys:
            self._register_load_state_dict_pre_hook(self._rename_legacy_keys)

    def _rename_legacy_keys(self, state: dict[str, Any], prefix: str, *_: Any) -> None:
        """Rename weights saved under :attr:`legacy_state_keys` in place (load hook)."""
        for key in list(state):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            for old, new in self.legacy_state_keys.items():
                if rest.startswith(old):
                    state[prefix + new + rest[len(old):]] = state.pop(key)
                    break

    @classmethod
    def hparams_from_base(cls, base: dict[str, Any], base_dir: str | PathLike[str],
                          overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Hparams of a model of this family built on the trained model whose ``model.json``
        document is ``base`` (read from ``base_dir``): the base's :attr:`BuiltOn.copies`,
        :meth:`derived_from_base`, the base's directory under :attr:`BuiltOn.option`, then
        ``overrides``. ``ValueError`` if the family is not built on another model or the base
        is of a family it does not accept."""
        spec = cls.built_on
        if spec is None:
            raise ValueError(f"{cls.family!r} is not trained on top of another model")
        if base.get("family") not in spec.families:
            raise ValueError(f"{base_dir}: a {cls.family!r} model needs one of "
                             f"{list(spec.families)} as its {spec.option}; this is a "
                             f"{base.get('family')!r} model")
        hparams = base.get("hparams", {})
        copied = {k: hparams[k] for k in spec.copies if k in hparams}
        return {**copied, **cls.derived_from_base(base), spec.option: str(Path(base_dir).resolve()),
                **(overrides or {})}

    @classmethod
    def derived_from_base(cls, base: dict[str, Any]) -> dict[str, Any]:
        """Hparams computed from the base model's document beyond the copied keys (none by
        default)."""
        return {}

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
        iterative ones with a deterministic sampler, unrolled). Image models only: the ONNX
        signature is ALICE O2's."""
        return self.one_step and self.spec.kind == "image"

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """One-step families: showers in network space from noise and standardised conditions:
        the log image ``(B, 1, H, W)`` (the ALICE O2 ONNX signature) or ``log1p`` voxel
        energies ``(B, n_voxels)``."""
        raise NotImplementedError(f"{self.family} is not a one-step generator")

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """Showers in network space (``(B, 1, H, W)`` or ``(B, n_voxels)``) for standardised
        conditions."""
        z = self.noise(len(cond), generator, cond.device)
        return self.decode(z, cond, species)

    @torch.no_grad()
    def sample(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
               generator: torch.Generator | None = None, *, batch_size: int = 4096,
               rounding: bool = True, precision: str | None = None) -> np.ndarray:
        """Showers in physical units for physical conditions (the model's condition columns).

        Images: photon counts ``(N, H, W)``, int32 when ``rounding``, else the float32 expected
        counts. How counts are made is the hparam ``readout``: ``"round"`` (nearest integer,
        the default) or ``"poisson"`` (the network's output is the expected photon count per
        fibre and the counts are drawn from a Poisson law, as the photon-counting readout does;
        it restores pixel-level fluctuations that a smooth decoder lacks). The Poisson counts
        are drawn by :func:`calogen.models.nn.readout.poisson_counts` (exact; its random
        stream differs from ``torch.poisson``'s, which calogen used before 0.17).

        Voxels: energies ``(N, n_voxels)`` float32 in MeV (never rounded).

        ``precision``: arithmetic of the network pass, one of :data:`PRECISIONS` (``None``:
        :attr:`sampling_precision`, ``"float32"`` unless set with
        :meth:`set_sampling_precision`); the readout is always float32.

        Point clouds: use :meth:`sample_points` (``ValueError`` here).
        """
        kind = self.spec.kind
        if kind == "points":
            raise ValueError(f"{self.family}: point-cloud models are sampled with "
                             f"sample_points() -> (points (P, 4), counts (N,))")
        readout = str(self.hparams.get("readout", "round"))
        if readout not in READOUTS:
            raise ValueError(f"{self.family}: hparam 'readout' must be one of {READOUTS}, "
                             f"got {readout!r}")
        precision = self.sampling_precision if precision is None else precision
        _check_precision(self.family, precision)
        was_training = self.training
        if was_training:  # train(False) walks every submodule: ~1 ms a call
            self.eval()
        net = self._network_for(precision)
        device = next(self.parameters()).device
        cond = self.spec.transforms.conditions(conditions).to(device)
        species = self.spec.transforms.species(pdg).to(device)
        out = []
        for start in range(0, len(cond), batch_size):
            c, s = cond[start:start + batch_size], species[start:start + batch_size]
            if precision == "bfloat16":
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    y = net.sample_network(c, s, generator)
            else:
                y = net.sample_network(c, s, generator)
            if kind == "voxels":
                out.append(Transforms.inverse_showers(y.float()).float().cpu())
                continue
            rate = Transforms.inverse_showers(y[:, 0].float()).float()
            if not rounding:
                out.append(rate.cpu())
            elif readout == "poisson":
                out.append(poisson_counts(rate, generator).cpu())
            else:
                out.append(rate.round().to(torch.int32).cpu())
        if was_training:
            self.train()
        if not out:
            integral = rounding and kind == "image"
            return np.zeros((0, *self.spec.shape), np.int32 if integral else np.float32)
        return (out[0] if len(out) == 1 else torch.cat(out)).numpy()

    @property
    def sampling_precision(self) -> str:
        """Arithmetic of the network pass in :meth:`sample` when none is given (not saved
        with the model): ``"float32"`` unless set with :meth:`set_sampling_precision`."""
        return str(self.__dict__.get("_sampling_precision", "float32"))

    def set_sampling_precision(self, precision: str) -> None:
        """Set :attr:`sampling_precision` (one of :data:`PRECISIONS`; ``ValueError``
        otherwise): ``"bfloat16"`` runs the network under bfloat16 autocast, ``"int8"`` a
        dynamically quantised copy (int8 weights of every ``nn.Linear``, CPU only)."""
        _check_precision(self.family, precision)
        self.__dict__["_sampling_precision"] = precision

    def _network_for(self, precision: str) -> Generator:
        """``self``, or for ``"int8"`` its dynamically quantised copy (made again when a
        weight has changed since)."""
        if precision != "int8":
            return self
        if next(self.parameters()).device.type != "cpu":
            raise ValueError(f"{self.family}: precision 'int8' runs on the CPU only")
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        cached = self.__dict__.get("_int8_copy")
        if cached is None or cached[0] != key:
            import copy
            import warnings

            from torch.ao.quantization import quantize_dynamic

            self.__dict__.pop("_int8_copy", None)
            clone = copy.deepcopy(self)
            with warnings.catch_warnings():  # torch.ao's deprecation notices
                warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
                quantised = quantize_dynamic(clone, {nn.Linear}, dtype=torch.qint8).eval()
            self.__dict__["_int8_copy"] = cached = (key, quantised)
        return cached[1]

    def sample_points(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
                      generator: torch.Generator | None = None, *, batch_size: int = 4096
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Point-cloud families: the showers for physical conditions as ``(P, 4)`` float32
        points ``(x, y, z, E)`` (mm, MeV), the showers one after the other, and ``(N,)``
        int64 points per shower (the ShowerSet's ragged form). No family implements it yet."""
        raise NotImplementedError(f"{self.family} does not generate point clouds")

    def calibrate(self, data: CalibrationData, generator: torch.Generator) -> dict[str, float]:
        """Fit what depends on the trained weights and the training data (e.g. the CaloClouds
        calibrations of the number of points), keeping it in :meth:`extra_state_dict`.

        The trainer calls it once at the end of training with the training split, on the
        weights it saves as ``last`` (the EMA weights when EMA is on) and on the ``best``
        model; it returns scalars to log. Default: nothing to fit."""
        return {}

    def extra_state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state beyond the weights (e.g. a post-processing scale)."""
        return {}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_state_dict`."""


READOUTS: tuple[str, ...] = ("round", "poisson")
"""How :meth:`Generator.sample` turns expected photon counts into counts."""

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "int8")
"""Arithmetic of the network pass in :meth:`Generator.sample` (see
:meth:`Generator.set_sampling_precision`)."""


def _check_precision(family: str, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"{family}: sampling precision must be one of {PRECISIONS}, got "
                         f"{precision!r}")

VOXEL_DEFAULTS: dict[str, Any] = {"backbone": "mlp", "recon_loss": "mse", "readout": "round"}
"""Defaults of the autoencoder families on voxels: the flat MLP backbone, a squared error in
``log1p`` energy (voxels hold energies in MeV, not photon counts) and no count readout."""


class ImageGenerator(Generator):
    """Common plumbing of the one-step image families: hparams with defaults (stored whole,
    so a saved model rebuilds the same network), the output non-linearity and clamping at
    sampling. Subclasses set :attr:`defaults` and build their networks."""

    defaults: ClassVar[dict[str, Any]] = {}
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    """Defaults that differ by kind of showers (e.g. ``{"voxels": {"backbone": "mlp"}}``),
    applied over :attr:`defaults` before the given hparams."""

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        defaults = {**self.defaults, **self.kind_defaults.get(spec.kind, {})}
        hp = resolve_hparams(self.family, defaults, hparams)
        super().__init__(spec, **hp)
        if spec.kind == "image" and (len(spec.shape) != 2 or min(spec.shape) < 1):
            raise ValueError(f"{self.family}: spec.shape must be (H, W), got {spec.shape}")
        if spec.kind == "voxels" and hp.get("readout", "round") != "round":
            raise ValueError(f"{self.family}: hparam 'readout' {hp['readout']!r} makes photon "
                             f"counts; voxel showers are sampled as energies (MeV): leave it "
                             f"'round' (unused)")
        if spec.kind == "voxels" and hp.get("recon_loss") == "poisson":
            raise ValueError(f"{self.family}: hparam 'recon_loss' 'poisson' is the likelihood "
                             f"of photon counts; voxel showers hold energies (MeV): use 'mse'")

    @property
    def shape(self) -> tuple[int, int]:
        """The image shape ``(H, W)``; ``ValueError`` for voxels (see :attr:`shower_shape`)."""
        if self.spec.kind != "image":
            raise ValueError(f"{self.family}: a {self.spec.kind} model has no image shape")
        return (int(self.spec.shape[0]), int(self.spec.shape[1]))

    @property
    def shower_shape(self) -> tuple[int, ...]:
        """Shape of one shower: ``(H, W)`` for images, ``(n_voxels,)`` for voxels."""
        return self.spec.shape

    def condition_embedding(self) -> ConditionEmbedding:
        """A new condition embedding sized by the spec and hparams."""
        t = self.spec.transforms
        mode = str(self.hparams.get("condition_features", "raw"))
        if mode == "auto" and (self.spec.kind != "image"
                               or str(self.spec.detector).upper() not in GRIDS):
            mode = "raw"  # the impact point is on a ZDC's face: the ZDC grids only
        features = condition_features(mode, t.condition_columns, t.condition_mean,
                                      t.condition_std)
        return ConditionEmbedding(self.spec.n_conditions, self.spec.n_species,
                                  int(self.hparams["cond_dim"]), bool(self.hparams["use_species"]),
                                  features)

    def activate(self, y: Tensor) -> Tensor:
        """Decoder pre-activation -> ``log1p`` image or voxels (:func:`output_activation`)."""
        return output_activation(y, str(self.hparams["output"]))

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """Showers in network space, clamped to ``>= 0`` (``log1p`` of counts)."""
        return super().sample_network(cond, species, generator).clamp(min=0)


@dataclass(frozen=True)
class SamplingOption:
    """One sampling option a family declares: a name, a type (``int``, ``float`` or ``str``)
    and a short help; its default is the hparam of the same name saved with the model."""

    name: str
    type: type
    help: str = ""

    def parse(self, text: str) -> Any:
        """The value of ``text`` for this option; ``ValueError`` naming the expected type."""
        try:
            if self.type is int:
                return int(text)
            if self.type is float:
                value = float(text)
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError
                return value
            return str(text)
        except ValueError:
            raise ValueError(f"sampling option {self.name!r} takes {self.type.__name__}, got "
                             f"{text!r}") from None


STEPS = SamplingOption("steps", int, "network-call steps of the sampler (>= 1)")
SAMPLER = SamplingOption("sampler", str, "the integration method")


class SamplingOptions:
    """Mixin for generators whose sampling options (:attr:`sampling_options`, stored in the
    hparams as the defaults saved with the model) can change after training."""

    family: ClassVar[str]
    hparams: dict[str, Any]
    sampling_options: ClassVar[tuple[SamplingOption, ...]] = (STEPS, SAMPLER)
    samplers: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def sampling_keys(cls) -> tuple[str, ...]:
        """Names of the sampling options."""
        return tuple(o.name for o in cls.sampling_options)

    @classmethod
    def parse_sampling(cls, pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
        """Typed options from ``key=value`` strings (``calogen generate --sample``);
        ``ValueError`` for an unknown key or a value of the wrong type, listing the accepted
        options."""
        known = {o.name: o for o in cls.sampling_options}
        out: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"--sample {pair!r}: expected key=value")
            if key not in known:
                raise ValueError(f"{cls.family}: no sampling option {key!r}; accepted: "
                                 f"{cls.describe_sampling()}")
            try:
                out[key] = known[key].parse(value.strip())
            except ValueError as exc:
                raise ValueError(f"{cls.family}: {exc}; accepted: "
                                 f"{cls.describe_sampling()}") from None
        return out

    @classmethod
    def describe_sampling(cls) -> str:
        """``"steps (int), sampler (str: ddim)"``: the options and their types (and the
        sampler names)."""
        parts = []
        for o in cls.sampling_options:
            extra = f": {'/'.join(cls.samplers)}" if o.name == "sampler" and cls.samplers else ""
            parts.append(f"{o.name} ({o.type.__name__}{extra})")
        return ", ".join(parts)

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
        keys = self.sampling_keys()
        unknown = sorted(set(given) - set(keys))
        if unknown:
            raise ValueError(f"{self.family}: no sampling option(s) {unknown}; this family "
                             f"has {list(keys)}")
        merged = {**self.hparams, **given}
        self._check_sampling(merged)
        self.hparams.update(given)
        return {k: self.hparams[k] for k in keys}


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
