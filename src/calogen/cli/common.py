"""Pieces shared by the command modules: detector choice, user-error reporting, content
validation of the input files."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

USER_ERROR_EXIT_CODE = 2
"""Exit code for bad input files or arguments (as for a usage error)."""


class Detector(StrEnum):
    """ZDC detectors the commands know."""

    zn = "zn"
    zp = "zp"


def parse_hparams(items: list[str]) -> dict[str, object]:
    """``--hparam key=value`` pairs; values parsed as JSON when they can be (numbers, lists,
    booleans), kept as strings otherwise."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--hparam expects key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@contextmanager
def fail_on_user_errors() -> Iterator[None]:
    """Report ``ValueError`` (including ``ShowerSetError``) and ``OSError`` as
    ``error: <message>`` on stderr and exit with code 2."""
    try:
        yield
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(USER_ERROR_EXIT_CODE) from None


NO_VALIDATE_HELP = ("Skip the content scan of the input files (NaN, inf, negative or "
                    "non-integral counts, PDG code 0, negative group ids); says so on stderr.")


def no_validate_option() -> Any:
    """The ``--no-validate`` flag shared by every command that reads showers or conditions."""
    return typer.Option(False, "--no-validate", help=NO_VALIDATE_HELP)


@dataclass(frozen=True)
class InputFile:
    """A ShowerSet a command reads, and what its content must satisfy.

    Attributes:
        path: the file.
        role: the option it was given with (``"--reference"``), named in errors when a
            command reads several files.
        counts: float showers must be integral photon counts.
        showers: scan the showers (``False``: conditions, PDG codes and ids only).
        min_events: refuse a file with fewer events.
    """

    path: Path
    role: str | None = None
    counts: bool = False
    showers: bool = True
    min_events: int = 0


def validate_inputs(command: str, files: Sequence[InputFile | None], *, skip: bool,
                    progress: bool = False) -> None:
    """Scan each input's content (:func:`calogen.data.validation.validate_showerset`) before
    the command does anything else; with ``skip`` (``--no-validate``) say on stderr that the
    scan was skipped. ``None`` entries (options not given) are ignored."""
    given = [f for f in files if f is not None]
    if not given:
        return
    if skip:
        names = ", ".join(f"{f.role} {f.path}" if f.role else str(f.path) for f in given)
        typer.echo(f"calogen {command}: content validation skipped (--no-validate): {names}",
                   err=True)
        return
    from calogen.data.validation import validate_showerset

    for f in given:
        validate_showerset(f.path, counts=f.counts, showers=f.showers, min_events=f.min_events,
                           role=f.role, progress=progress)
