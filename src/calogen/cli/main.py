"""The ``calogen`` command. Thin: parses arguments and calls the library layers.

Each command group lives in its own module with a ``register(app)`` function.
"""

from __future__ import annotations

import typer

from calogen import __version__
from calogen.cli import (
    baseline_cmd,
    convert_cmd,
    evaluate_cmd,
    inspect_cmd,
    loglik_cmd,
    quickstart_cmd,
    simulate_cmd,
    train_cmd,
)

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


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """calogen: simulate, train, generate, evaluate and export calorimeter fast simulation."""


simulate_cmd.register(app)
inspect_cmd.register(app)
convert_cmd.register(app)
evaluate_cmd.register(app)
baseline_cmd.register(app)
train_cmd.register(app)
loglik_cmd.register(app)
quickstart_cmd.register(app)

if __name__ == "__main__":
    app()
