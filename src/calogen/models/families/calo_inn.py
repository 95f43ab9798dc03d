"""CaloINN (family ``"calo-inn"``; Ernst et al., arXiv:2312.09290): the two-stage flow of
:mod:`calogen.models.families.caloflow` with a stage II of affine coupling blocks, one pass both
ways, exportable to ONNX (images). On voxels it is CaloINN's home ground: the voxel design of
:class:`~calogen.models.families.caloflow.CaloFlow` with the coupling stage II."""

from __future__ import annotations

from typing import ClassVar

from calogen.models.families.caloflow import CaloFlow
from calogen.models.registry import register_family

__all__ = ["CaloINN"]


@register_family
class CaloINN(CaloFlow):
    """The coupling-block variant (CaloINN): stage II of ``stage2_layers`` (8) affine coupling
    blocks with hyper-networks ``stage2_hidden`` ([256]); one pass both ways."""

    family: ClassVar[str] = "calo-inn"
    validate_by_sampling: ClassVar[bool] = True
    defaults = {
        **CaloFlow.defaults, "stage2_arrangement": "coupling", "stage2_layers": 8,
        "stage2_hidden": [256],
    }
