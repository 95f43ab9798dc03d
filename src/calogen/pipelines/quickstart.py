"""``calogen quickstart``: the whole chain on the built-in default, in minutes on a laptop.

1. simulate a small ZN set with the reference simulator (each particle twice, so paired metrics
   and the diversity at identical conditions have a floor);
2. train the default fast model for a fixed number of steps, so a seed gives the same model
   whatever the machine's load (a family trained on top of another, e.g.
   ``latent-flow-matching``, gets its base model trained first, within the same budget); a
   wall-clock budget (``minutes``) stays available and makes the result load-dependent;
3. generate for the held-out (test-split) conditions;
4. evaluate against the held-out reference, beside the shuffled baseline built from the same
   training split, and write the report; :func:`verdicts` says, for each headline metric,
   whether the model beats that baseline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from calogen.baselines import make_baseline
from calogen.data.showerset import ShowerSet
from calogen.data.split import grouped_split, write_rows
from calogen.metrics.classifier import CALOGEN_DEFAULT
from calogen.metrics.evaluate import EvaluationConfig, EvaluationResult, evaluate
from calogen.models.io import hparams_on_top_of, load_model
from calogen.models.registry import family_class, optimizer_defaults
from calogen.pipelines.reference import simulate_to_file
from calogen.pipelines.validation import validator_for
from calogen.report import write_report
from calogen.train.generation import generate_to_showerset, model_sampler
from calogen.train.run import train_model
from calogen.train.trainer import TrainConfig

DEFAULT_MODEL = "vae"
"""The family the quickstart trains by default: the conditional VAE (Poisson likelihood, flow
prior), the closest to the floor of the fast families (``benchmarks/README.md``)."""

DEFAULT_HPARAMS: dict[str, object] = {"backbone": "mlp"}
"""The fast MLP backbone (tens of steps per second on a laptop CPU) for every family with a
selectable backbone; every other choice is the family's default
(:class:`calogen.models.families.vae.ConditionalVAE`)."""

DEFAULT_STEPS = 5000
"""Training budget of the quickstart (optimiser steps at batch 256), the same on any machine:
about 5 min of training on an idle 2-core machine and the whole chain under 10 min
(:func:`expected_minutes`; the timing is in ``benchmarks/README.md``, section "Quickstart")."""

SECONDS_PER_STEP = 0.062
"""Wall seconds per training step of the default model (validation and checkpoints included)
on an idle 2-core machine, used only for the expected minutes printed up front; measured as
recorded in ``benchmarks/README.md`` (section "Quickstart"). Other families' steps cost
differently; the progress bar's ETA gives the real figure."""

SECONDS_PER_EVENT = 0.004
"""Wall seconds per simulated event of everything but training (simulate, generate, evaluate
with the shuffled baseline) on an idle 2-core machine: about 2 minutes for 30,000 events."""

THREADS = 2
"""Torch threads of the training: fixed, so a machine's core count does not change the order
of floating-point reductions, hence the weights."""

EMA_DECAY = 0.999
"""The model is the exponential moving average of the weights (validation and the kept
checkpoint use it): with a constant learning rate there is no schedule to anneal (and a
wall-clock budget has no known horizon), and the average steadies the validation metric
between checkpoints."""

SPLIT = (0.8, 0.1, 0.1)

BASE_SHARE = 0.75
"""Share of the training budget given to the base model of a family trained on top of another
(``latent-flow-matching`` on a VAE, ``consistency`` on an EDM teacher): the latent model is a
small MLP that converges in a minute."""


def default_hparams(family: str) -> dict[str, object]:
    """The quickstart's hparams for ``family``: :data:`DEFAULT_HPARAMS` (the MLP backbone)
    for the families with a selectable backbone, the family's own defaults otherwise."""
    has_backbone = "backbone" in getattr(family_class(family), "defaults", {})
    return dict(DEFAULT_HPARAMS) if has_backbone else {}


MIN_EVENTS = 100
"""Fewest simulated events the chain can split into train, validation and test sets."""


def check_options(model: str, hparams: dict[str, object] | None, *, n_events: int,
                  steps: int | None = None, minutes: float | None = None,
                  seed: int = 0) -> None:
    """``ValueError`` naming the first bad option of :func:`run_quickstart`: an unknown
    family, hparams the family does not know, too few events, a budget that is not positive
    (or too few steps for a base model and the model on top of it), a negative seed."""
    cls = family_class(model)
    defaults = getattr(cls, "defaults", None)
    if hparams is not None and isinstance(defaults, dict):
        unknown = sorted(set(hparams) - set(defaults))
        if unknown:
            raise ValueError(f"{model}: unknown hparams {unknown}; known: {sorted(defaults)}")
    if isinstance(n_events, bool) or not isinstance(n_events, int) or n_events < MIN_EVENTS:
        raise ValueError(f"n_events must be an integer >= {MIN_EVENTS}, got {n_events!r}")
    if steps is not None:
        least = 2 if cls.built_on is not None else 1
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < least:
            raise ValueError(f"steps must be an integer >= {least} for {model}, got {steps!r}")
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise ValueError(f"minutes must be a positive, finite number, got {minutes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def expected_minutes(steps: int, n_events: int) -> float:
    """Expected wall minutes of the whole quickstart of the default model on an idle 2-core
    machine for ``steps`` training steps and ``n_events`` simulated events."""
    return (steps * SECONDS_PER_STEP + n_events * SECONDS_PER_EVENT) / 60.0


def split_budget(steps: int | None, minutes: float | None) -> tuple[
        tuple[int | None, float | None], tuple[int | None, float | None]]:
    """(base, top) budgets, each ``(steps, minutes)``, of a family trained on top of a base
    model: :data:`BASE_SHARE` of each to the base, the rest (at least one step) to the top."""
    base_steps = top_steps = None
    if steps is not None:
        base_steps = min(steps - 1, max(1, round(BASE_SHARE * steps)))
        top_steps = steps - base_steps
    base_minutes = top_minutes = None
    if minutes is not None:
        base_minutes, top_minutes = BASE_SHARE * minutes, (1 - BASE_SHARE) * minutes
    return (base_steps, base_minutes), (top_steps, top_minutes)


def describe_budget(steps: int | None, minutes: float | None) -> str:
    """``"5000 steps"``, ``"2 min (wall clock)"`` or both, for the log."""
    parts = [f"{steps} steps"] if steps is not None else []
    if minutes is not None:
        parts.append(f"{minutes:g} min (wall clock)")
    return " or ".join(parts)


def _kept(run_dir: Path) -> Path:
    """The model a run keeps: ``best`` (by validation) if written, else ``last``."""
    return run_dir / "best" if (run_dir / "best").exists() else run_dir / "last"


@dataclass(frozen=True)
class QuickstartResult:
    """Where the quickstart wrote its results, and its headline numbers."""

    out_dir: Path
    report: Path
    model_dir: Path
    model: EvaluationResult
    shuffled: EvaluationResult
    seconds: float


def run_quickstart(out_dir: str | Path = "quickstart", *, model: str = DEFAULT_MODEL,
                   hparams: dict[str, object] | None = None,
                   n_events: int = 30_000, steps: int | None = None,
                   minutes: float | None = None, seed: int = 0,
                   progress: bool = True, log=print) -> QuickstartResult:  # noqa: ANN001
    """Run the chain; see the module docstring. ``log`` receives the expected duration, then
    one line per stage.

    Training stops after ``steps`` optimiser steps (:data:`DEFAULT_STEPS` when neither
    budget is given): the same seed gives the same weights however loaded the machine is.
    ``minutes`` adds a wall-clock limit (alone: the only one), which makes the result depend on
    the load. Every option is checked before anything is simulated or written
    (``ValueError``).
    """
    if steps is None and minutes is None:
        steps = DEFAULT_STEPS
    check_options(model, hparams, n_events=n_events, steps=steps, minutes=minutes, seed=seed)
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if steps is not None:
        estimate = expected_minutes(steps, n_events)
        log(f"expected: about {estimate:.1f} min on an idle 2-core machine ({steps} training "
            f"steps of the default model; the training bar's ETA gives this machine's time)"
            + ("" if minutes is None else f"; stops earlier if {minutes:g} min of training "
               f"pass (wall clock: the model then depends on the machine's load)"))
    else:
        log(f"expected: {minutes:g} min of training plus about "
            f"{n_events * SECONDS_PER_EVENT / 60:.1f} min; a wall-clock budget makes the model "
            f"depend on the machine's load (a step budget, --steps, does not)")
    data = out / "zn.h5"
    log(f"[1/4] simulating {n_events} ZN responses (reference simulator) -> {data}")
    simulate_to_file(data, n=n_events, seed=seed, repeats=2, workers=2, overwrite=True,
                     progress=progress)

    def config_for(family: str, budget: tuple[int | None, float | None]) -> TrainConfig:
        return TrainConfig(max_steps=budget[0], max_minutes=budget[1], batch_size=256,
                           seed=seed, schedule="constant", val_every=250,
                           checkpoint_every=500, val_events=2000, ema_decay=EMA_DECAY,
                           num_threads=THREADS, **optimizer_defaults(family))

    budget: tuple[int | None, float | None] = (steps, minutes)
    if hparams is None:
        hparams = default_hparams(model)
    need = family_class(model).built_on
    if need is not None:  # train the base model first, with its share of the budget
        base_family = need.default_family
        base_budget, budget = split_budget(steps, minutes)
        base_dir = out / f"run_{base_family}"
        log(f"[2/4] training {base_family} ({need.option} of {model}) for "
            f"{describe_budget(*base_budget)} -> {base_dir}")
        train_model(base_family, data, base_dir,
                    config=config_for(base_family, base_budget), split_seed=seed,
                    overwrite=True, hparams=default_hparams(base_family),
                    val_metric=validator_for(base_family, "ZN"), progress=progress)
        hparams = hparams_on_top_of(model, _kept(base_dir), hparams)
    config = config_for(model, budget)
    run_dir = out / f"run_{model}"
    log(f"[2/4] training {model} for {describe_budget(*budget)} -> {run_dir}")
    train_model(model, data, run_dir, config=config, split_seed=seed, overwrite=True,
                hparams=hparams, val_metric=validator_for(model, "ZN"), progress=progress)
    best = _kept(run_dir)
    net = load_model(best)

    with ShowerSet.open(data) as ss:
        split = grouped_split(ss.condition_ids(), SPLIT, seed=seed)
        train_batch = ss.take(split["train"])
    test = write_rows(data, split["test"], out / "test_reference.h5", overwrite=True)
    generated = out / f"generated_{model}.h5"
    log(f"[3/4] generating for the {len(split['test'])} held-out conditions -> {generated}")
    generate_to_showerset(model_sampler(net), test, generated, producer={
        "name": f"calogen.models.{model}", "model": str(best.resolve()),
        "note": f"quickstart {model}"}, seed=seed, overwrite=True, progress=progress)
    shuffled = make_baseline("shuffled").fit(train_batch.showers, train_batch.conditions,
                                             train_batch.pdg)
    shuffled_path = generate_to_showerset(
        shuffled.sample, test, out / "generated_shuffled.h5",
        producer={"name": "calogen.baselines.shuffled", "note": shuffled.describe()},
        seed=seed, overwrite=True, progress=progress)

    report_dir = out / "report"
    log(f"[4/4] evaluating against the held-out reference -> {report_dir}")
    cfg = EvaluationConfig(progress=progress, seed=seed,
                           classifier=replace(CALOGEN_DEFAULT, n_seeds=3))
    res_model = evaluate(test, generated, config=cfg)
    paths = write_report(res_model, report_dir)
    res_shuffled = evaluate(test, shuffled_path, config=replace(cfg, n_null=10,
                                                                n_null_fpd_kpd=3))
    write_report(res_shuffled, out / "report_shuffled")
    return QuickstartResult(out, paths.html, best, res_model, res_shuffled,
                            time.perf_counter() - t0)


HEADLINE = ("channel Wasserstein (mean of 5 channels)", "channel MAE paired by condition",
            "classifier AUC (high-level)", "classifier AUC (low-level)")


def headline_rows(result: QuickstartResult) -> list[tuple[str, float | None, float | None,
                                                          float | None]]:
    """(metric, model, shuffled baseline, floor) for the headline metrics."""
    m = {r.name: r for r in result.model.summary}
    s = {r.name: r for r in result.shuffled.summary}
    return [(k, m[k].value, s[k].value, m[k].floor) for k in HEADLINE if k in m]




@dataclass(frozen=True)
class Verdict:
    """Whether the model beats the shuffled baseline on one headline metric (``beats`` is
    ``None`` when either value is missing)."""

    metric: str
    model: float | None
    shuffled: float | None
    beats: bool | None

    def line(self, name: str = "model") -> str:
        """``"<metric>: <name> 10.2 vs shuffled baseline 17.5: beats it"``."""
        if self.beats is None:
            return f"{self.metric}: {name} {_fmt(self.model)} vs shuffled baseline " \
                   f"{_fmt(self.shuffled)}: cannot tell (missing value)"
        word = "beats" if self.beats else "does not beat"
        return (f"{self.metric}: {name} {_fmt(self.model)} vs shuffled baseline "
                f"{_fmt(self.shuffled)}: {word} it")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


AUC_CHANCE = 0.5
"""A classifier AUC is better the closer it is to chance (it can fall below 0.5 by noise)."""


def verdicts(result: QuickstartResult) -> list[Verdict]:
    """One :class:`Verdict` per headline metric: distances (W1, MAE) beat the baseline when
    smaller; a classifier AUC when closer to 0.5. A tie does not beat it."""
    out = []
    for name, m, s, _floor in headline_rows(result):
        beats = None
        if m is not None and s is not None:
            if name.startswith("classifier AUC"):
                beats = abs(m - AUC_CHANCE) < abs(s - AUC_CHANCE)
            else:
                beats = m < s
        out.append(Verdict(name, m, s, beats))
    return out
