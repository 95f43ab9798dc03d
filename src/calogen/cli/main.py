"""The ``calogen`` command. Thin: parses arguments and calls the library layers.

Each command group lives in its own module with a ``register(app)`` function.
"""

from __future__ import annotations

import typer

from calogen import __version__
from calogen.cli import (
    baseline_cmd,
    calibrate_cmd,
    compare_cmd,
    convert_cmd,
    evaluate_cmd,
    inspect_cmd,
    loglik_cmd,
    quickstart_cmd,
    simulate_cmd,
    train_cmd,
)
from calogen.processes import raise_on_sigterm

app = typer.Typer(
    name="calogen",
    help="Fast simulation of calorimeter responses with generative neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"calogen {__version__}")
        raise typer.Exit()


OWN_SIGTERM_HANDLING = frozenset({"train", "quickstart"})
"""Commands whose trainer handles SIGTERM itself (it stops at a step boundary and saves a
checkpoint, and installs its handler only where nobody else has one)."""


@app.callback()
def _main(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """calogen: simulate, train, generate, evaluate and export calorimeter fast simulation."""
    if ctx.invoked_subcommand not in OWN_SIGTERM_HANDLING:
        # SIGTERM raises for the duration of the command, so atomic writers delete their
        # temporaries at once (exit status 143) instead of leaving them to the next run.
        ctx.with_resource(raise_on_sigterm())


simulate_cmd.register(app)
inspect_cmd.register(app)
convert_cmd.register(app)
evaluate_cmd.register(app)
calibrate_cmd.register(app)
baseline_cmd.register(app)
train_cmd.register(app)
loglik_cmd.register(app)
quickstart_cmd.register(app)
compare_cmd.register(app)

if __name__ == "__main__":
    app()
