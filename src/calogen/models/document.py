"""The model document (``model.json``): its schema, its bounds and its validation.

A model directory may come from anyone, so ``model.json`` is checked before anything is built
from it: the type of every top-level field, the spec (image shape, condition transforms) and
the hyperparameters (a JSON object of bounded scalars, short lists and small nested objects).
The bounds below refuse absurd sizes early; the allocation budget of
:mod:`calogen.models.budget` then refuses any network that would be too large to build, whatever
its family. Every error names the field, what was expected and what was found.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from os import PathLike
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

MAX_AXIS = 2**20
"""Largest image axis (cells) in ``spec.shape``."""

MAX_IMAGE_SIZE = 2**22
"""Largest number of cells per shower, ``H * W`` or ``n_voxels`` (a CaloChallenge dataset 3
shower has 40 500 voxels, a ZN image 1 936)."""

MAX_LAYERS = 1024
"""Most layers of a voxel geometry or a point-cloud volume."""

MAX_EDGES = 4096
"""Most radial bin edges of one voxel layer."""

MAX_CONDITIONS = 256
"""Largest number of condition columns."""

MAX_SPECIES = 4096
"""Largest number of species codes."""

MAX_HPARAM_NUMBER = 2**31 - 1
"""Largest magnitude of a number in ``hparams`` (fits a signed 32-bit integer)."""

MAX_HPARAM_LIST = 64
"""Longest list in ``hparams`` (e.g. layer widths)."""

MAX_HPARAM_KEYS = 256
"""Most keys of ``hparams`` or of an object nested in it."""

MAX_HPARAM_DEPTH = 6
"""Deepest nesting of lists and objects in ``hparams``."""

MAX_STRING = 4096
"""Longest string in ``hparams`` and ``spec`` (paths included)."""


class ModelFileError(ValueError):
    """A model directory that cannot be loaded; the message names the file and the problem.

    Attributes:
        path: the file concerned, when known.
        field: the dotted field concerned (``spec.shape[0]``), when known.
    """

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.field = field

    @classmethod
    def bad_field(cls, path: str | PathLike[str] | None, field: str, expected: str,
                  found: str) -> ModelFileError:
        """The standard message ``"<path>: field '<field>': expected ..., found ..."``."""
        where = "<in memory>" if path is None else str(path)
        return cls(f"{where}: field '{field}': expected {expected}, found {found}",
                   path=path, field=field)


_VALUE_TYPES = ["null", "boolean", "number", "string", "array", "object"]


MODEL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "description": "a JSON object",
    "required": ["format", "format_version", "family", "hparams", "spec"],
    "properties": {
        "format": {"type": "string", "description": "a string"},
        "format_version": {"type": "integer", "description": "an integer"},
        "family": {"type": "string", "minLength": 1, "maxLength": 100,
                   "description": "a family name (a string of 1 to 100 characters)"},
        "hparams": {"$ref": "#/$defs/object",
                    "description": "an object of hyperparameters"},
        "spec": {
            "type": "object",
            "description": "an object with 'geometry' (or the earlier 'shape') and 'transforms'",
            "required": ["transforms"],
            "anyOf": [{"required": ["geometry"]}, {"required": ["shape"]}],
            "properties": {
                "geometry": {"$ref": "#/$defs/geometry"},
                "shape": {
                    "type": "array", "minItems": 2, "maxItems": 2,
                    "description": f"[H, W], two integers in 1..{MAX_AXIS}",
                    "items": {"type": "integer", "minimum": 1, "maximum": MAX_AXIS,
                              "description": f"an integer in 1..{MAX_AXIS}"},
                },
                "detector": {"type": "string", "maxLength": 100,
                             "description": "a detector name (<= 100 characters)"},
                "transforms": {
                    "type": "object",
                    "description": "an object with the condition columns, means and stds",
                    "required": ["condition_columns", "condition_mean", "condition_std"],
                    "properties": {
                        "condition_columns": {
                            "type": "array", "maxItems": MAX_CONDITIONS,
                            "description": f"a list of <= {MAX_CONDITIONS} column names",
                            "items": {"type": "string", "maxLength": 100,
                                      "description": "a column name (<= 100 characters)"}},
                        "condition_mean": {
                            "type": "array", "maxItems": MAX_CONDITIONS,
                            "description": f"a list of <= {MAX_CONDITIONS} numbers",
                            "items": {"type": "number", "description": "a number"}},
                        "condition_std": {
                            "type": "array", "maxItems": MAX_CONDITIONS,
                            "description": f"a list of <= {MAX_CONDITIONS} positive numbers",
                            "items": {"type": "number", "exclusiveMinimum": 0,
                                      "description": "a standard deviation > 0 (a constant "
                                                     "column is stored with std 1)"}},
                        "species_codes": {
                            "type": "array", "maxItems": MAX_SPECIES,
                            "description": f"a list of <= {MAX_SPECIES} PDG codes",
                            "items": {"type": "integer", "minimum": -(2**31),
                                      "maximum": 2**31 - 1,
                                      "description": "a PDG code (32-bit integer)"}},
                        "shower": {"const": "log1p", "description": "'log1p'"},
                    },
                },
            },
        },
        "extra": {"type": "object", "description": "an object"},
        "calogen_version": {"type": "string", "description": "a string"},
        "training_data": {"type": "object", "description": "an object"},
        "created": {"type": "string", "description": "a string"},
    },
    "$defs": {
        "number": {"type": "number", "description": "a number"},
        "pair": {"type": "array", "minItems": 2, "maxItems": 2,
                 "items": {"$ref": "#/$defs/number"}, "description": "two numbers"},
        "geometry": {
            "type": "object",
            "description": "an object describing the readout geometry (kind, name, ...)",
            "properties": {
                "kind": {"enum": ["image", "voxels", "points"],
                         "description": "'image', 'voxels' or 'points'"},
                "name": {"type": "string", "maxLength": 100,
                         "description": "a geometry name (<= 100 characters)"},
            },
            "allOf": [
                {"if": {"properties": {"kind": {"const": "voxels"}}, "required": ["kind"]},
                 "then": {"required": ["layers"], "properties": {"layers": {
                     "type": "array", "minItems": 1, "maxItems": MAX_LAYERS,
                     "description": f"a list of 1..{MAX_LAYERS} layers",
                     "items": {
                         "type": "object", "required": ["id", "r_edges_mm", "n_alpha"],
                         "description": "an object with id, r_edges_mm and n_alpha",
                         "properties": {
                             "id": {"type": "integer", "minimum": -(2**31),
                                    "maximum": 2**31 - 1, "description": "an integer"},
                             "r_edges_mm": {"type": "array", "minItems": 2,
                                            "maxItems": MAX_EDGES,
                                            "items": {"$ref": "#/$defs/number"},
                                            "description": f"2..{MAX_EDGES} radial edges (mm)"},
                             "n_alpha": {"type": "integer", "minimum": 1,
                                         "maximum": MAX_AXIS,
                                         "description": f"an integer in 1..{MAX_AXIS}"},
                         }}}}}},
                {"if": {"properties": {"kind": {"const": "points"}}, "required": ["kind"]},
                 "then": {"required": ["layer_edges_mm"], "properties": {
                     "layer_edges_mm": {"type": "array", "minItems": 2,
                                        "maxItems": MAX_LAYERS + 1,
                                        "items": {"$ref": "#/$defs/number"},
                                        "description": f"2..{MAX_LAYERS + 1} layer edges (mm)"},
                     "x_range_mm": {"$ref": "#/$defs/pair"},
                     "y_range_mm": {"$ref": "#/$defs/pair"},
                     "cell_size_mm": {"$ref": "#/$defs/pair"},
                     "cell_offset_mm": {"$ref": "#/$defs/pair"}}}},
                {"if": {"anyOf": [{"not": {"required": ["kind"]}},
                                  {"properties": {"kind": {"const": "image"}}}]},
                 "then": {"required": ["shape"], "properties": {
                     "shape": {"type": "array", "minItems": 2, "maxItems": 2,
                               "description": f"[H, W], two integers in 1..{MAX_AXIS}",
                               "items": {"type": "integer", "minimum": 1, "maximum": MAX_AXIS,
                                         "description": f"an integer in 1..{MAX_AXIS}"}},
                     "pitch_cm": {"$ref": "#/$defs/pair"}}}},
            ],
        },
        "object": {
            "type": "object", "maxProperties": MAX_HPARAM_KEYS,
            "description": f"an object of <= {MAX_HPARAM_KEYS} keys",
            "propertyNames": {"maxLength": 100, "description": "keys of <= 100 characters"},
            "additionalProperties": {"$ref": "#/$defs/value"},
        },
        "value": {
            "type": _VALUE_TYPES,
            "description": "null, a boolean, a number, a string, a list or an object",
            "allOf": [
                {"if": {"type": "number"},
                 "then": {"minimum": -MAX_HPARAM_NUMBER, "maximum": MAX_HPARAM_NUMBER,
                          "description": f"a number of magnitude <= {MAX_HPARAM_NUMBER}"}},
                {"if": {"type": "string"},
                 "then": {"maxLength": MAX_STRING,
                          "description": f"a string of <= {MAX_STRING} characters"}},
                {"if": {"type": "array"},
                 "then": {"maxItems": MAX_HPARAM_LIST, "items": {"$ref": "#/$defs/value"},
                          "description": f"a list of <= {MAX_HPARAM_LIST} values"}},
                {"if": {"type": "object"}, "then": {"$ref": "#/$defs/object"}},
            ],
        },
    },
}
"""JSON schema of ``model.json`` (format version 1)."""

_VALIDATOR = Draft202012Validator(MODEL_SCHEMA)


def field_name(parts: Any) -> str:
    """``["spec", "shape", 0]`` -> ``"spec.shape[0]"``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<document>"


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of ``value``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _depth_and_numbers(value: Any, parts: list[Any], depth: int
                       ) -> Iterator[tuple[list[Any], str, str]]:
    """(field parts, expected, found) for too deep nesting and non-finite numbers."""
    if depth > MAX_HPARAM_DEPTH:
        yield parts, f"nesting of <= {MAX_HPARAM_DEPTH} levels", "a deeper nesting"
        return
    if isinstance(value, float) and not math.isfinite(value):
        yield parts, "a finite number", repr(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _depth_and_numbers(item, [*parts, key], depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _depth_and_numbers(item, [*parts, i], depth + 1)


def _column_hint(doc: Any, parts: list[Any]) -> str:
    """`` (column 'vz')`` when ``parts`` points into a per-column list of the transforms."""
    if (len(parts) == 4 and parts[:2] == ["spec", "transforms"] and isinstance(parts[3], int)
            and parts[2] in ("condition_mean", "condition_std")):
        columns = doc["spec"]["transforms"].get("condition_columns")
        if isinstance(columns, list) and parts[3] < len(columns):
            return f" (column {short(columns[parts[3]])})"
    return ""


def _schema_error(doc: Any, path: str | PathLike[str] | None,
                  error: ValidationError) -> ModelFileError:
    """The :class:`ModelFileError` of a schema violation (the field, its expectation)."""
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        return ModelFileError.bad_field(path, field_name([*parts, missing[0]]),
                                        "a value (the field is required)", "nothing")
    schema = error.schema if isinstance(error.schema, dict) else {}
    expected = str(schema.get("description") or f"{error.validator} {error.validator_value}")
    return ModelFileError.bad_field(path, field_name(parts), expected,
                                    short(error.instance) + _column_hint(doc, parts))


def check_model_document(doc: Any, path: str | PathLike[str] | None = None) -> None:
    """Validate a parsed ``model.json`` against :data:`MODEL_SCHEMA` and the bounds above.

    The format and version fields are checked by the caller first (a foreign file deserves a
    different message). Raises :class:`ModelFileError` naming ``path`` and the field.
    """
    try:
        error = best_match(_VALIDATOR.iter_errors(doc))
    except RecursionError:
        raise ModelFileError.bad_field(path, "<document>", "a shallow JSON document",
                                       "nesting too deep to validate") from None
    if error is not None:
        raise _schema_error(doc, path, error)
    for section in ("hparams", "spec"):
        for parts, expected, found in _depth_and_numbers(doc[section], [section], 0):
            raise ModelFileError.bad_field(path, field_name(parts), expected,
                                           found + _column_hint(doc, parts))
    spec = doc["spec"]
    if "shape" in spec:
        h, w = spec["shape"]
        if h * w > MAX_IMAGE_SIZE:
            raise ModelFileError.bad_field(path, "spec.shape", f"at most {MAX_IMAGE_SIZE:,} "
                                           f"cells (H * W)",
                                           f"{short(spec['shape'])} = {h * w:,} cells")
    if "geometry" in spec:
        _check_geometry_size(spec["geometry"], path)
    t = spec["transforms"]
    columns, mean, std = t["condition_columns"], t["condition_mean"], t["condition_std"]
    if not len(columns) == len(mean) == len(std):
        raise ModelFileError.bad_field(
            path, "spec.transforms", "as many condition means and stds as columns",
            f"{len(columns)} columns, {len(mean)} means, {len(std)} stds")


def _check_geometry_size(geometry: dict[str, Any], path: str | PathLike[str] | None) -> None:
    """Refuse a geometry of more than :data:`MAX_IMAGE_SIZE` cells (image or voxels)."""
    kind = geometry.get("kind", "image")
    if kind == "voxels":
        cells = sum((len(layer["r_edges_mm"]) - 1) * layer["n_alpha"]
                    for layer in geometry["layers"])
        if cells > MAX_IMAGE_SIZE:
            raise ModelFileError.bad_field(path, "spec.geometry.layers", f"at most "
                                           f"{MAX_IMAGE_SIZE:,} voxels",
                                           f"{len(geometry['layers'])} layers of {cells:,} "
                                           f"voxels")
    elif kind == "image":
        h, w = geometry["shape"]
        if h * w > MAX_IMAGE_SIZE:
            raise ModelFileError.bad_field(path, "spec.geometry.shape", f"at most "
                                           f"{MAX_IMAGE_SIZE:,} cells (H * W)",
                                           f"{short(geometry['shape'])} = {h * w:,} cells")
