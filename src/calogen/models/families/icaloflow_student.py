"""The iCaloFlow student (family ``"icaloflow-student"``; Buckley, Krause, Pang, Shih,
arXiv:2305.11934, distilled as CaloFlow II, Krause & Shih, arXiv:2110.11377).

IAF flows I, II and III distilled from a trained ``icaloflow`` teacher (``calogen train --model
icaloflow-student --teacher DIR``) with the losses of ``caloflow-student``
(:func:`calogen.models.nn.flows.distillation_losses`): on training showers mapped to noise by
the teacher, the data and every intermediate value; on the student's own samples, the noise the
teacher assigns them (mean squared errors). Flow III is distilled on every pair of consecutive
layers at once. The preprocessing and the standardisation are the teacher's (copied at the first
step). Sampling is one pass per flow layer and calorimeter layer; the student's own likelihood
is sequential (use the teacher's).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from calogen.models.families.icaloflow import ARCHITECTURE_KEYS, ICaloFlow
from calogen.models.generator import BuiltOn, ModelSpec, TrainBatch
from calogen.models.nn.flows import distillation_losses
from calogen.models.registry import register_family

__all__ = ["ICaloFlowStudent"]


@register_family
class ICaloFlowStudent(ICaloFlow):
    """IAF student of an ``icaloflow`` teacher (module docstring). Hparams: the teacher's
    architecture (:attr:`built_on`), ``teacher`` (its directory, needed to train),
    ``state_weight`` (1.0, intermediate values), ``z_weight`` (1.0, noise of the student's
    samples)."""

    family: ClassVar[str] = "icaloflow-student"
    built_on: ClassVar[BuiltOn | None] = BuiltOn(("icaloflow",), "teacher", ARCHITECTURE_KEYS)
    validate_by_sampling: ClassVar[bool] = True
    defaults = {**ICaloFlow.defaults, "arrangement": "iaf", "teacher": "",
                "state_weight": 1.0, "z_weight": 1.0}
    allowed_arrangements: ClassVar[tuple[str, ...]] = ("iaf",)
    flow1_arrangement: ClassVar[str] = "iaf"

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        self._teacher: ICaloFlow | None = None

    def teacher(self) -> ICaloFlow:
        """The MAF teacher (loaded on first use, frozen, never saved with the student)."""
        if self._teacher is None:
            from calogen.models.io import load_teacher

            teacher = load_teacher(self, "icaloflow", ARCHITECTURE_KEYS, self.anchor.device)
            if not isinstance(teacher, ICaloFlow):
                raise ValueError(f"{self.hparams['teacher']}: not a icaloflow model")
            object.__setattr__(self, "_teacher", teacher)  # not a submodule: not saved
        assert self._teacher is not None
        return self._teacher

    def _initialise_from_teacher(self) -> None:
        """Copy the teacher's preprocessing and standardisation."""
        teacher = self.teacher()
        for name in ("anchor", "keep", "u_mean", "u_scale", "x_mean", "x_scale", "le_mean",
                     "le_scale", "loge_stats", "initialised"):
            getattr(self, name).copy_(getattr(teacher, name))
        self.load_extra_state_dict(teacher.extra_state_dict())

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        """Distillation loss of the three flows (x-space + intermediate values + z-space)."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        if int(self.initialised) == 0:
            if not (self.training and torch.is_grad_enabled()):
                raise RuntimeError(f"{self.family}: not trained yet (the teacher is copied in "
                                   f"at the first training step)")
            with torch.no_grad():
                self._initialise_from_teacher()
        teacher = self.teacher()
        v = self.preprocessing.add_noise(self._showers(batch))
        with torch.no_grad():
            yu, xs, le, loge, _ = self._to_network(v, self.e_inc_mev(batch.cond))
            c1 = self._context1(batch.cond, loge)
            c2 = self._context2(c1, yu)
            layers = torch.arange(1, self.n_layers, device=v.device)
            c3 = self._context3(c1, xs[:, :-1], le, layers)
        parts = [distillation_losses(teacher.flow1, self.flow1, yu, c1),
                 distillation_losses(teacher.flow2, self.flow2, xs[:, 0], c2),
                 distillation_losses(teacher.flow3, self.flow3,
                                     xs[:, 1:].reshape(-1, self.per_layer - 1), c3)]
        loss_x, loss_states, loss_z = (sum(terms, xs.new_zeros(()))
                                         for terms in zip(*parts, strict=True))
        loss = (loss_x + float(self.hparams["state_weight"]) * loss_states
                + float(self.hparams["z_weight"]) * loss_z)
        return loss, {"loss": loss.item(), "mse_x": loss_x.item(),
                      "mse_states": loss_states.item(), "mse_z": loss_z.item()}
