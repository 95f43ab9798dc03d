"""The quickstart's step budget: the same weights for a seed however slow the clock runs; the
budget split between a base model and the model on top; the verdict against the shuffled
baseline for each headline metric."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from calogen.pipelines import quickstart
from calogen.train import trainer as trainer_module


class SlowClock:
    """Stands in for the ``time`` module of the trainer: every reading is an hour later."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.calls = 0

    def monotonic(self) -> float:
        self.calls += 1
        self.now += 3600.0
        return self.now

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


def _seconds_column(run_dir: Path) -> list[float]:
    with (run_dir / "log.csv").open() as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_step_budget_gives_identical_weights_whatever_the_wall_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {"n_events": 1500, "steps": 30, "seed": 3, "progress": False,
              "log": lambda line: None}
    fast = quickstart.run_quickstart(tmp_path / "fast", **kwargs)
    clock = SlowClock()
    monkeypatch.setattr(trainer_module, "time", clock)
    slow = quickstart.run_quickstart(tmp_path / "slow", **kwargs)
    monkeypatch.undo()
    # the slow clock was live in the trainer: its run "took" hours
    assert clock.calls > 0
    assert max(_seconds_column(tmp_path / "slow" / "run_vae")) > 3600.0
    assert max(_seconds_column(tmp_path / "fast" / "run_vae")) < 3600.0
    for kept in ("last", fast.model_dir.name):
        a = (tmp_path / "fast" / "run_vae" / kept / "model.safetensors").read_bytes()
        b = (tmp_path / "slow" / "run_vae" / kept / "model.safetensors").read_bytes()
        assert a == b, kept
    assert quickstart.headline_rows(fast) == quickstart.headline_rows(slow)


def test_default_budget_is_steps_and_its_estimate_fits_ten_minutes() -> None:
    minutes = quickstart.expected_minutes(quickstart.DEFAULT_STEPS, 30_000)
    assert 4.0 < minutes <= 10.0
    assert quickstart.expected_minutes(2 * quickstart.DEFAULT_STEPS, 30_000) > minutes


@pytest.mark.parametrize(("steps", "minutes", "base", "top"), [
    (40, None, (30, None), (10, None)),
    (2, None, (1, None), (1, None)),
    (3, None, (2, None), (1, None)),
    (None, 4.0, (None, 3.0), (None, 1.0)),
    (100, 4.0, (75, 3.0), (25, 1.0)),
])
def test_split_budget_gives_each_model_a_share_and_at_least_one_step(steps, minutes, base,
                                                                    top) -> None:
    assert quickstart.split_budget(steps, minutes) == (base, top)


def _result(model: dict[str, float | None], shuffled: dict[str, float | None]) -> object:
    def side(values: dict[str, float | None]) -> SimpleNamespace:
        return SimpleNamespace(summary=[SimpleNamespace(name=k, value=v, floor=0.0)
                                        for k, v in values.items()])
    return SimpleNamespace(model=side(model), shuffled=side(shuffled))


W1, MAE, AUC_HL, AUC_LL = quickstart.HEADLINE


def test_verdicts_say_beats_when_smaller_distance_or_auc_nearer_chance() -> None:
    res = _result({W1: 10.2, MAE: 30.0, AUC_HL: 0.73, AUC_LL: 0.45},
                  {W1: 17.5, MAE: 20.0, AUC_HL: 0.88, AUC_LL: 0.56})
    got = {v.metric: v for v in quickstart.verdicts(res)}  # type: ignore[arg-type]
    assert list(got) == list(quickstart.HEADLINE)
    assert got[W1].beats is True and got[MAE].beats is False
    assert got[AUC_HL].beats is True
    assert got[AUC_LL].beats is True  # 0.45 is 0.05 from chance, 0.56 is 0.06
    assert got[W1].line("vae") == (f"{W1}: vae 10.2 vs shuffled baseline 17.5: beats it")
    assert got[MAE].line("vae") == (f"{MAE}: vae 30 vs shuffled baseline 20: "
                                    f"does not beat it")


def test_verdicts_an_auc_farther_from_chance_or_a_tie_does_not_beat() -> None:
    res = _result({W1: 17.5, MAE: None, AUC_HL: 0.94, AUC_LL: 0.40},
                  {W1: 17.5, MAE: 20.0, AUC_HL: 0.88, AUC_LL: 0.55})
    got = {v.metric: v for v in quickstart.verdicts(res)}  # type: ignore[arg-type]
    assert got[W1].beats is False
    assert got[AUC_HL].beats is False and got[AUC_LL].beats is False
    assert got[MAE].beats is None and "cannot tell" in got[MAE].line()
