"""``calogen info`` and ``calogen show``: look inside a ShowerSet file.

Thin: the numbers come from :func:`calogen.data.summary.summarize`, the figure from
:func:`calogen.report.showerset_plots.plot_showerset`. A bad or unreadable file stops with a
one-line message on stderr naming the file, and exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from calogen.cli.common import NO_VALIDATE_HELP, InputFile, validate_inputs

if TYPE_CHECKING:
    from calogen.data.summary import ShowerSetSummary

ConventionOption = Literal["o2", "warsaw"]

EXIT_BAD_INPUT = 2
"""Exit code for a bad input file (same as a usage error)."""


def _fail(command: str, path: Path, exc: BaseException) -> NoReturn:
    """Print a one-line error naming ``path`` to stderr and exit with :data:`EXIT_BAD_INPUT`."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        message = exc.strerror
    if str(path) not in message:
        message = f"{path}: {message}"
    message = " ".join(message.split())  # one line
    typer.echo(f"calogen {command}: error: {message}", err=True)
    raise typer.Exit(code=EXIT_BAD_INPUT)


def _console() -> Console:
    """Console for tables: the terminal's width (or ``$COLUMNS``), else 100 columns."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(highlight=False, width=100)
    return console


def _num(value: float | int | None) -> str:
    """Compact number formatting for tables (integers stay integers)."""
    if value is None:
        return "-"
    x = float(value)
    if x != x:  # NaN
        return "-"
    if x.is_integer() and abs(x) < 1e9:
        return f"{int(x)}"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.3g}"
    if abs(x) >= 1000:
        return f"{x:.0f}"
    return f"{x:.4g}"


def _producer_text(producer: dict[str, Any]) -> str:
    """Scalar producer fields as ``key=value``; nested ones only named (they are in --json)."""
    scalars = [f"{k}={v}" for k, v in producer.items()
               if k != "note" and not isinstance(v, dict | list)]
    nested = [k for k, v in producer.items() if isinstance(v, dict | list)]
    text = ", ".join(scalars)
    if nested:
        text += f"  (+ {', '.join(nested)}: see --json)"
    return text


def _quantile_text(q: dict[str, float | None]) -> str:
    return "  ".join(f"{k} {_num(v)}" for k, v in q.items())


def _print_overview(console: Console, s: ShowerSetSummary) -> None:
    units = s.shower_units
    sum_name = "photon sum" if s.kind == "image" else "energy sum"
    overview = Table(title=f"ShowerSet {s.path or ''}", box=box.SIMPLE_HEAD, show_header=False,
                     title_justify="left")
    overview.add_column("field", style="bold")
    overview.add_column("value")
    if s.kind == "points":
        shape_text = f"point clouds: x, y, z in mm, E in {units}"
    else:
        shape_text = f"{s.kind}: shower shape {tuple(s.shower_shape)}, {units}"
    overview.add_row("detector", f"{s.detector}  ({shape_text})")
    overview.add_row("events", str(s.n_events))
    overview.add_row("producer", _producer_text(s.producer) or "-")
    overview.add_row("created", s.created or "-")
    cell = "voxels" if s.kind == "voxels" else "pixels"
    if s.kind != "points":
        zero = s.zero_pixel_fraction
        overview.add_row(f"zero {cell}", "-" if zero is None else f"{100.0 * zero:.2f} %")
    if s.hottest_pixel is not None:
        hp = s.hottest_pixel
        where = (f"voxel {hp.position[0]}" if s.kind == "voxels"
                 else f"(row, col) = {tuple(hp.position)}")
        overview.add_row(f"hottest {cell[:-1]}",
                         f"{_num(hp.value)} {units} in event {hp.event} at {where}")
    if s.n_points is not None:
        overview.add_row("points", f"{s.n_points} in total")
        overview.add_row("points per shower", _quantile_text(s.points_per_shower))
        if s.outside_energy_fraction is not None:
            overview.add_row("outside layers", f"{100.0 * s.outside_energy_fraction:.2f} % of "
                                               "the energy")
    overview.add_row(f"mean {sum_name}", f"{_num(s.photon_sum_mean)} {units}")
    if s.energy:
        overview.add_row(f"{s.energy_column or 'E'} [{s.energy_units or '?'}]",
                         _quantile_text(s.energy))
    if s.energy_ratio:
        overview.add_row(f"sum / {s.energy_column}", _quantile_text(s.energy_ratio))
    console.print(overview)


def _print_summary(console: Console, s: ShowerSetSummary) -> None:
    """Render a :class:`~calogen.data.summary.ShowerSetSummary` as rich tables."""
    units = s.shower_units
    e_units = s.energy_units or "?"
    _print_overview(console, s)

    sum_name = "photon sum" if s.kind == "image" else "energy sum"
    yield_unit = f"ph/{e_units}" if s.kind == "image" else f"{units}/{e_units}"
    species = Table(title=f"Species ({sum_name} in {units})", box=box.SIMPLE_HEAD,
                    title_justify="left")
    species.add_column("species")
    species.add_column("count", justify="right")
    species.add_column("frac", justify="right")
    for key in ("p25", "p50", "p75", "p99", "max"):
        species.add_column(key, justify="right")
    species.add_column(f"{s.energy_column or 'E'} p50 [{e_units}]", justify="right")
    species.add_column(f"{yield_unit} ± spread", justify="right")
    for sp in s.species:
        q = sp.photon_sum
        if sp.photons_per_gev is None:
            light = "-"
        elif sp.photons_per_gev_spread is None:
            light = f"{sp.photons_per_gev:.3g}"
        else:
            light = f"{sp.photons_per_gev:.3g} ± {100.0 * sp.photons_per_gev_spread:.0f}%"
        species.add_row(sp.name, str(sp.count), f"{100.0 * sp.fraction:.1f}%",
                        *(_num(q.get(k)) for k in ("p25", "p50", "p75", "p99", "max")),
                        _num(sp.energy_median), light)
    console.print(species)

    if s.channel_names:
        channels = Table(title=f"PMT channels ({s.convention} convention, {units} per event)",
                         box=box.SIMPLE_HEAD, title_justify="left")
        channels.add_column("")
        for name in s.channel_names:
            channels.add_column(name, justify="right")
        channels.add_row("mean", *(_num(v) for v in s.channel_mean))
        channels.add_row("std", *(_num(v) for v in s.channel_std))
        console.print(channels)

    if s.layer_ids:
        layers = Table(title=f"Energy per layer ({units} per event)", box=box.SIMPLE_HEAD,
                       title_justify="left")
        for name in ("layer", "mean", "std", "share"):
            layers.add_column(name, justify="right")
        total = sum(v for v in s.layer_energy_mean if v == v)
        for lid, mean, std in zip(s.layer_ids, s.layer_energy_mean, s.layer_energy_std,
                                  strict=True):
            share = f"{100.0 * mean / total:.1f}%" if total > 0 and mean == mean else "-"
            layers.add_row(str(lid), _num(mean), _num(std), share)
        console.print(layers)

    note = s.producer.get("note")
    if note:
        console.print(f"[bold yellow]note:[/] {note}")


def register(app: typer.Typer) -> None:
    """Add the ``info`` and ``show`` commands to ``app``."""

    @app.command("info")
    def info(
        file: Annotated[Path, typer.Argument(help="ShowerSet file (HDF5).")],
        convention: Annotated[ConventionOption, typer.Option(
            "--convention", help="PMT channel convention: o2 (ALICE O2) or warsaw.")] = "o2",
        json_out: Annotated[Path | None, typer.Option(
            "--json", help="Also write the summary as JSON to this file.")] = None,
        progress: Annotated[bool, typer.Option(
            "--progress", help="Show a progress bar.")] = False,
        no_validate: Annotated[bool, typer.Option("--no-validate", help=NO_VALIDATE_HELP)] = False,
    ) -> None:
        """Summarise a ShowerSet: species, sums, light yield; PMT channels and the hottest pixel
        of ZDC images; energy per layer of voxels; points per shower of point clouds."""
        from calogen.data.showerset import ShowerSet
        from calogen.data.summary import summarize

        if no_validate:  # the scan is part of the summary's single pass
            validate_inputs("info", [InputFile(file)], skip=True)
        try:
            with ShowerSet.open(file) as ss:
                summary = summarize(ss, convention=convention, progress=progress,
                                    validate=not no_validate)
        except (ValueError, OSError, KeyError) as exc:
            _fail("info", file, exc)
        console = _console()
        _print_summary(console, summary)
        if json_out is not None:
            try:
                written = summary.write_json(json_out)
            except OSError as exc:
                _fail("info", json_out, exc)
            typer.echo(f"wrote summary to {Path(written).resolve()}")

    @app.command("show")
    def show(
        file: Annotated[Path, typer.Argument(help="ShowerSet file (HDF5).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output image (PNG).")],
        examples: Annotated[int, typer.Option(
            "--examples", "-n", min=1, help="Number of example responses to draw.")] = 12,
        seed: Annotated[int, typer.Option(
            "--seed", min=0, help="Seed for the choice of examples and histogram sample.")] = 0,
        convention: Annotated[ConventionOption, typer.Option(
            "--convention", help="PMT channel convention: o2 (ALICE O2) or warsaw.")] = "o2",
        max_events: Annotated[int | None, typer.Option(
            "--max-events", min=1,
            help="Events sampled for the histograms (default 200000).")] = None,
        no_validate: Annotated[bool, typer.Option("--no-validate", help=NO_VALIDATE_HELP)] = False,
    ) -> None:
        """Draw example responses and channel / photon-sum distributions to a PNG."""
        from calogen.report.showerset_plots import plot_showerset

        try:
            validate_inputs("show", [InputFile(file)], skip=no_validate)
            written = plot_showerset(file, out, n_examples=examples, convention=convention,
                                     seed=seed, max_events=max_events)
        except (ValueError, KeyError) as exc:
            _fail("show", file, exc)
        except OSError as exc:
            _fail("show", Path(exc.filename) if exc.filename else file, exc)
        typer.echo(f"wrote {Path(written).resolve()}")
