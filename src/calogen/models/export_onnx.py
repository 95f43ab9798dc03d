"""Export one-step generators to ONNX with the ALICE O2 signature.

The ONNX graph maps ``noise [B, latent]`` and standardised ``conditions [B, k]`` to the log
image ``log_image [B, 1, H, W]`` (``log1p`` of photon counts), as the ZDC fast simulation in
ALICE O2 runs it through ONNX Runtime (``Detectors/ZDC/fastsimulation``). Beside the model a
JSON file carries what the caller needs to prepare inputs and read outputs: the condition
columns, means and scales (standardise as (c - mean) / scale), the latent size, the image
shape and the output transform (photons = max(expm1(y), 0)).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from calogen.atomic import atomic_path, write_text_atomic
from calogen.models.generator import Generator

OPSET = 18


class _O2Signature(nn.Module):
    """(noise, standardised conditions) -> log image, species-free."""

    def __init__(self, model: Generator) -> None:
        super().__init__()
        self.model = model

    def forward(self, noise: Tensor, conditions: Tensor) -> Tensor:
        return self.model.decode(noise, conditions, None)


@dataclass(frozen=True)
class ExportResult:
    """Files written by :func:`export_onnx`."""

    onnx: Path
    scales: Path


def scales_path_for(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.scales.json``."""
    p = Path(onnx_path)
    return p.with_name(p.stem + ".scales.json")


PARITY_TOLERANCE = Generator.onnx_tolerance
"""Default parity tolerance (families may set their own ``onnx_tolerance``)."""


def check_parity(wrapper: nn.Module, onnx_file: str | Path, batches: tuple[int, ...] = (1, 3),
                 seed: int = 0, tolerance: float = PARITY_TOLERANCE) -> float:
    """Run ``onnx_file`` in onnxruntime on random inputs of each batch size and compare with
    ``wrapper`` (PyTorch); returns the largest absolute difference. ``RuntimeError`` if a batch
    size is refused (a batch dimension fixed at export, e.g. by ``len(tensor)`` in a forward) or
    the outputs differ by more than ``tolerance`` (absolute plus relative; default
    :data:`PARITY_TOLERANCE`, a family may set its own ``onnx_tolerance``)."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    worst = 0.0
    for b in batches:
        feed = {name: rng.normal(size=(b, *shape[1:])).astype(np.float32)
                for name, shape in shapes.items()}
        try:
            (got,) = sess.run(None, feed)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RuntimeError(f"ONNX export: the exported graph refuses batch size {b} "
                               f"({exc}); the batch dimension must stay dynamic") from None
        with torch.no_grad():
            ref = wrapper(*(torch.from_numpy(feed[k]) for k in ("noise", "conditions"))).numpy()
        diff = np.abs(got - ref)
        if not np.all(diff <= tolerance * (1 + np.abs(ref))):
            raise RuntimeError(f"ONNX export: onnxruntime and PyTorch outputs differ by up to "
                               f"{diff.max():.3g} at batch {b}")
        worst = max(worst, float(diff.max()))
    return worst


def check_scales(model: Generator, source: str | Path | None = None) -> None:
    """Refuse condition scales that the caller could not standardise with.

    The scales file tells the caller to feed ``(c - mean) / scale``; a scale of 0 (or a
    negative or non-finite one, or a non-finite mean) turns every condition of that column into
    inf or NaN, and the exported network into NaN images. :meth:`Transforms.fit` never writes
    such a column (a constant column gets scale 1), so the model was edited or corrupted.
    ``ValueError`` naming ``source`` (the model directory, when known) and the column.
    """
    t = model.spec.transforms
    where = f"{source}: " if source is not None else f"this {model.family} model: "
    for i, (name, mean, std) in enumerate(zip(t.condition_columns, t.condition_mean,
                                              t.condition_std, strict=True)):
        if not (math.isfinite(std) and std > 0):
            raise ValueError(f"{where}field 'spec.transforms.condition_std[{i}]' (column "
                             f"{name!r}): expected a standard deviation > 0, found {std!r}; "
                             f"the exported scales would divide condition {name!r} by it")
        if not math.isfinite(mean):
            raise ValueError(f"{where}field 'spec.transforms.condition_mean[{i}]' (column "
                             f"{name!r}): expected a finite number, found {mean!r}")


def export_onnx(model: Generator, out: str | Path, *, opset: int = OPSET,
                source: str | Path | None = None) -> ExportResult:
    """Write ``model`` as ONNX (atomically) and its input/output description as JSON.

    Raises ``ValueError`` for models of voxels or point clouds, for families that are not one
    network pass from noise to image, or
    that need the species as an input (the O2 signature has none), and for condition scales
    that cannot standardise (:func:`check_scales`; ``source``, the model directory, is named
    in the message). The exported file is run in onnxruntime at batch sizes 1 and 3 and
    compared with PyTorch before it is moved into place (:func:`check_parity`).
    """
    check_scales(model, source)
    if model.spec.kind != "image":
        where = "" if source is None else f"{source}: "
        raise ValueError(f"{where}this {model.family!r} model generates {model.spec.kind} "
                         f"showers (geometry {model.spec.detector!r}); ONNX export writes the "
                         f"ALICE O2 image signature and takes image models only (for now)")
    if not model.exportable():
        raise ValueError(f"this {model.family!r} model is not a deterministic function of "
                         f"(noise, conditions) with its sampling options; only one-step "
                         f"families and deterministic samplers (unrolled) export to the ALICE "
                         f"O2 signature")
    if model.hparams.get("use_species"):
        raise ValueError(f"this {model.family} model uses a species embedding; the ALICE O2 "
                         f"ONNX signature (noise, conditions) has no species input")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    wrapper = _O2Signature(model).eval()
    noise = torch.zeros(2, model.latent_dim)
    cond = torch.zeros(2, model.spec.n_conditions)
    batch = torch.export.Dim("batch", min=1)
    with atomic_path(out) as tmp:
        torch.onnx.export(
            wrapper, (noise, cond), str(tmp), input_names=["noise", "conditions"],
            output_names=["log_image"], opset_version=opset, dynamo=True,
            dynamic_shapes={"noise": {0: batch}, "conditions": {0: batch}},
            external_data=False)
        check_parity(wrapper, tmp, tolerance=model.onnx_tolerance)
    t = model.spec.transforms
    scales = scales_path_for(out)
    doc = {
        "format": "calogen.onnx-scales", "format_version": 1, "family": model.family,
        "inputs": {"noise": [None, model.latent_dim],
                   "conditions": [None, t.n_conditions]},
        "output": {"log_image": [None, 1, *model.spec.shape],
                   "transform": "expected photons = max(expm1(log_image), 0)",
                   "readout": model.hparams.get("readout", "round") + ": "
                   + ("counts ~ Poisson(expected photons)"
                      if model.hparams.get("readout") == "poisson"
                      else "counts = nearest integer")},
        "noise": "standard normal",
        "condition_columns": t.condition_columns,
        "condition_mean": t.condition_mean, "condition_scale": t.condition_std,
        "detector": model.spec.detector,
    }
    write_text_atomic(scales, json.dumps(doc, indent=2))
    return ExportResult(out, scales)
