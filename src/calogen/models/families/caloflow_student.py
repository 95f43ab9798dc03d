"""The CaloFlow II student (family ``"caloflow-student"``; Krause & Shih, arXiv:2110.11377).

An IAF stage II distilled from a trained ``caloflow`` teacher (``calogen train --model
caloflow-student --base DIR``): the student's layer ``k`` learns the inverse of the teacher's
layer ``k`` by matching, on training data mapped to noise by the teacher, the data and every
intermediate value, and on its own samples the noise the teacher assigns them (CaloFlow II's x-,
intermediate- and z-space losses, all mean squared errors). Stage I and the preprocessing are
the teacher's (copied at the first step, frozen). Sampling is one pass per layer; its own
likelihood is sequential (use the teacher's for ``loglik``). On voxels (the teacher's design
chosen from ``spec.kind``) the teacher's fitted voxel preprocessing is copied as well.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from calogen.models.families.caloflow import ARCHITECTURE_KEYS, CaloFlow
from calogen.models.generator import BuiltOn, ModelSpec, TrainBatch
from calogen.models.nn.flows import distillation_losses
from calogen.models.registry import register_family

__all__ = ["CaloFlowStudent"]


@register_family
class CaloFlowStudent(CaloFlow):
    """IAF student of a ``caloflow`` teacher (module docstring). Hparams: the teacher's
    architecture (:attr:`built_on`), ``teacher`` (its directory, needed to
    train), ``state_weight`` (1.0, intermediate values), ``z_weight`` (1.0, noise of the
    student's samples)."""

    family: ClassVar[str] = "caloflow-student"
    built_on: ClassVar[BuiltOn | None] = BuiltOn(("caloflow",), "teacher", ARCHITECTURE_KEYS)
    validate_by_sampling: ClassVar[bool] = True
    defaults = {
        **CaloFlow.defaults, "stage2_arrangement": "iaf", "teacher": "", "state_weight": 1.0,
        "z_weight": 1.0,
    }
    allowed_arrangements: ClassVar[tuple[str, ...]] = ("iaf",)

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        self._teacher: CaloFlow | None = None

    def teacher(self) -> CaloFlow:
        """The MAF teacher (loaded on first use, frozen, never saved with the student)."""
        if self._teacher is None:
            from calogen.models.io import load_teacher

            teacher = load_teacher(self, "caloflow", ARCHITECTURE_KEYS, self.anchor.device)
            if not isinstance(teacher, CaloFlow):
                raise ValueError(f"{self.hparams['teacher']}: not a caloflow model")
            object.__setattr__(self, "_teacher", teacher)  # not a submodule: not saved
        assert self._teacher is not None
        return self._teacher

    def _initialise_from_teacher(self) -> None:
        """Copy the teacher's preprocessing, stage I and embeddings (frozen afterwards)."""
        teacher = self.teacher()
        fitted: tuple[str, ...] = ("anchor", "keep", "y_mean", "y_scale", "x_mean", "x_scale")
        if self.voxels:
            fitted += ("vox_u0_scale", "vox_threshold", "le_mean", "le_scale")
        for name in fitted:
            getattr(self, name).copy_(getattr(teacher, name))
        for name in ("embed1", "embed2", "stage1"):
            getattr(self, name).load_state_dict(getattr(teacher, name).state_dict())
        self.initialised.fill_(1)

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """Stage II only (stage I and the embeddings are the teacher's)."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        return list(self.stage2.parameters())

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        """Distillation loss (x-space + intermediate values + z-space mean squared errors)."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        if int(self.initialised) == 0:
            if not (self.training and torch.is_grad_enabled()):
                raise RuntimeError("caloflow-student: not trained yet (the teacher is copied "
                                   "in at the first training step)")
            self._initialise_from_teacher()
        teacher = self.teacher()
        v = self._noisy(self._counts(batch))
        with torch.no_grad():
            y, x, _ = self._to_network(v, batch.cond)
            c2 = teacher._context2(batch.cond, batch.species, y)
        loss_x, loss_states, loss_z = distillation_losses(teacher.stage2, self.stage2, x, c2)
        loss = (loss_x + float(self.hparams["state_weight"]) * loss_states
                + float(self.hparams["z_weight"]) * loss_z)
        return loss, {"loss": loss.item(), "mse_x": loss_x.item(),
                      "mse_states": loss_states.item(), "mse_z": loss_z.item()}
