"""Turn user errors into one-line messages and exit code 2 (no traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

USER_ERROR_EXIT_CODE = 2


@contextmanager
def fail_on_user_errors() -> Iterator[None]:
    """Report ``ValueError`` (including ``ShowerSetError``) and ``OSError`` as
    ``error: <message>`` on stderr and exit with code 2."""
    try:
        yield
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(USER_ERROR_EXIT_CODE) from None
