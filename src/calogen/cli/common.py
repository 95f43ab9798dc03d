"""Pieces shared by the command modules: detector choice, user-error reporting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

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
