"""Classifier two-sample test: null and shifted Gaussians, no test-split leakage, determinism."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.special import expit
from scipy.stats import norm
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from calogen.metrics import classifier as clf
from calogen.metrics.classifier import (
    CALOCHALLENGE_2022,
    CALOGEN_DEFAULT,
    ClassifierConfig,
    classifier_test,
    high_level_features,
    low_level_features,
    split_indices,
)

TINY = ClassifierConfig(hidden=(32,), lr=1e-2, batch_size=256, max_epochs=5, patience=2,
                        n_seeds=2, max_samples_per_class=3000, device="cpu")


def _gauss(n: int, d: int = 10, seed: int = 0, shift: float = 0.0, scale: float = 1.0
           ) -> np.ndarray:
    """n rows of N(0, 1)^d float32; dimension 3 gets mean ``shift`` and std ``scale``."""
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    x[:, 3] = x[:, 3] * scale + shift
    return x


# --------------------------------------------------------------------------------- statistics


def test_identical_distributions_give_auc_half_and_jsd_zero() -> None:
    # no cap: 2 x 1600 validation rows keep the isotonic calibration from over-fitting the noise
    cfg = replace(TINY, max_samples_per_class=None)
    res = classifier_test(_gauss(8000, seed=1), _gauss(8000, seed=2), cfg, seed=0)
    assert abs(res.auc_mean - 0.5) < 0.05
    assert abs(res.jsd_mean) < 0.05


def test_mean_shift_matches_analytic_auc() -> None:
    delta = 1.0
    expected = float(norm.cdf(delta / math.sqrt(2.0)))  # optimal AUC for a 1-sigma shift: 0.760
    res = classifier_test(_gauss(4000, seed=1), _gauss(4000, seed=2, shift=delta), TINY, seed=0)
    assert res.auc_mean == pytest.approx(expected, abs=0.05)
    assert res.jsd_mean > 0.05


def test_width_change_is_detected() -> None:
    # optimal AUC for a std ratio of 2 in one dimension: (2/pi) arctan(2) = 0.705
    res = classifier_test(_gauss(4000, seed=1), _gauss(4000, seed=2, scale=2.0), TINY, seed=0)
    assert res.auc_mean > 0.62
    assert res.jsd_mean > 0.02


# ---------------------------------------------------------------------------------- splitting


def test_split_indices_partition() -> None:
    train, val, test = split_indices(1001, (0.6, 0.2, 0.2), np.random.default_rng(4))
    assert (train.size, val.size, test.size) == (601, 200, 200)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1001))
    for idx in (train, val, test):
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    again = split_indices(1001, (0.6, 0.2, 0.2), np.random.default_rng(4))
    for a, b in zip((train, val, test), again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = split_indices(1001, (0.6, 0.2, 0.2), np.random.default_rng(5))
    assert not np.array_equal(train, other[0])


@pytest.mark.parametrize("fractions", [(0.6, 0.2), (0.6, 0.3, 0.2), (0.8, 0.2, 0.0)])
def test_split_indices_rejects_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        split_indices(100, fractions, np.random.default_rng(0))  # type: ignore[arg-type]


def test_steps_see_only_their_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standardisation sees train only; epoch choice train+val; calibration val; test is unseen."""
    ref, gen = _gauss(700, seed=1), _gauss(500, seed=2, shift=0.5)
    owner = {r.tobytes(): ("ref", i) for i, r in enumerate(ref)}
    owner |= {r.tobytes(): ("gen", i) for i, r in enumerate(gen)}
    seen: dict[str, list[np.ndarray]] = {}

    def spy(fn_name: str, **positions: int) -> None:
        fn = getattr(clf, fn_name)

        def wrapped(*args, **kwargs):
            for name, pos in positions.items():
                seen.setdefault(name, []).append(np.array(args[pos], copy=True))
            return fn(*args, **kwargs)

        monkeypatch.setattr(clf, fn_name, wrapped)

    spy("_fit_standardiser", standardise=0)
    spy("_train_mlp", train=0, train_val=2)
    spy("_fit_calibrator", calibrate=1)
    spy("_evaluate", test=2)
    res = classifier_test(ref, gen, replace(TINY, n_seeds=2, max_samples_per_class=None), seed=3)

    def rows(x: np.ndarray) -> set[tuple[str, int]]:
        keys = [owner[r.tobytes()] for r in x]
        assert len(set(keys)) == len(keys)  # no row used twice inside one split
        return set(keys)

    assert all(len(v) == 2 for v in seen.values())  # once per seed
    for k in range(2):
        train, val = rows(seen["train"][k]), rows(seen["train_val"][k])
        test = rows(seen["test"][k])
        assert rows(seen["standardise"][k]) == train
        assert rows(seen["calibrate"][k]) == val
        assert not train & val and not train & test and not val & test
        # balanced: min(N, M) = 500 per class, 300/100/100 per class
        for split, n in ((train, 300), (val, 100), (test, 100)):
            assert sum(c == "ref" for c, _ in split) == n
            assert sum(c == "gen" for c, _ in split) == n
    assert (res.n_train, res.n_val, res.n_test) == (600, 200, 200)
    # a different seed draws a different reference subsample and split
    assert rows(seen["test"][0]) != rows(seen["test"][1])


def test_best_epoch_and_early_stopping_follow_validation_loss(
        monkeypatch: pytest.MonkeyPatch) -> None:
    scripted = iter([0.60, 0.50, 0.55, 0.52, 0.40, 0.30])
    calls: list[float] = []
    real_bce = clf._bce_logits

    def fake_bce(logits: np.ndarray, y: np.ndarray) -> float:
        calls.append(real_bce(logits, y))
        return next(scripted)

    monkeypatch.setattr(clf, "_bce_logits", fake_bce)
    res = classifier_test(_gauss(600, seed=1), _gauss(600, seed=2),
                          replace(TINY, n_seeds=1, max_epochs=6, patience=2), seed=0)
    assert len(calls) == 4  # epochs 3 and 4 did not improve on epoch 2: stop after epoch 4
    assert res.best_epochs == [2]
    assert res.val_loss_per_seed == [0.50]


def test_best_epoch_weights_are_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = replace(TINY, lr=0.3, max_epochs=6, patience=None, n_seeds=1)
    x_tr, x_va = _gauss(400, seed=1), _gauss(400, seed=2)
    y = (np.arange(400) % 2).astype(np.float64)  # labels unrelated to x: training overfits
    losses: list[float] = []
    real_bce = clf._bce_logits

    def recording(logits: np.ndarray, yy: np.ndarray) -> float:
        losses.append(real_bce(logits, yy))
        return losses[-1]

    monkeypatch.setattr(clf, "_bce_logits", recording)
    model, best_epoch, best_loss = clf._train_mlp(x_tr, y, x_va, y, cfg,
                                                  torch.Generator().manual_seed(0),
                                                  torch.device("cpu"))
    assert len(losses) == 6
    assert best_epoch == int(np.argmin(losses)) + 1 and best_loss == min(losses)
    assert best_epoch < 6  # otherwise restoring the best weights would be untested
    recomputed = real_bce(clf._predict_logits(model, x_va, torch.device("cpu")), y)
    assert recomputed == pytest.approx(best_loss, rel=1e-6)


# ------------------------------------------------------------------- determinism, result, config


def test_same_seed_same_result_and_n_seeds() -> None:
    ref, gen = _gauss(1500, seed=1), _gauss(1500, seed=2, shift=0.3)
    cfg = replace(TINY, n_seeds=3)
    a = classifier_test(ref, gen, cfg, seed=7)
    b = classifier_test(ref, gen, cfg, seed=7)
    c = classifier_test(ref, gen, cfg, seed=8)
    assert a.to_dict() == b.to_dict()
    assert a.auc_per_seed != c.auc_per_seed
    for lst in (a.auc_per_seed, a.jsd_per_seed, a.best_epochs, a.val_loss_per_seed):
        assert len(lst) == 3
    assert a.auc_mean == pytest.approx(np.mean(a.auc_per_seed))
    assert a.auc_std == pytest.approx(np.std(a.auc_per_seed, ddof=1))
    assert all(1 <= e <= cfg.max_epochs for e in a.best_epochs)


def test_result_to_dict_is_json_safe() -> None:
    res = classifier_test(_gauss(500, seed=1), _gauss(800, seed=2),
                          replace(TINY, n_seeds=1, calibration="none"), progress=True)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["config"]["hidden"] == [32] and d["config"]["calibration"] == "none"
    assert d["n_train"] == 600 and d["n_test"] == 200 and d["device"] == "cpu"
    assert d["auc_std"] == 0.0 and len(d["auc_per_seed"]) == 1


def test_subsampling_caps_samples_per_class() -> None:
    res = classifier_test(_gauss(2000, seed=1), _gauss(3000, seed=2),
                          replace(TINY, n_seeds=1, max_samples_per_class=1000))
    assert (res.n_train, res.n_val, res.n_test) == (1200, 400, 400)


def test_threads_restored() -> None:
    before = torch.get_num_threads()
    classifier_test(_gauss(300, seed=1), _gauss(300, seed=2), replace(TINY, n_seeds=1, threads=1))
    assert torch.get_num_threads() == before


def test_presets_have_documented_fields() -> None:
    cc = CALOCHALLENGE_2022
    assert cc.hidden == (2048, 2048, 2048) and cc.negative_slope == 0.01
    assert cc.lr == 2e-4 and cc.batch_size == 1000 and cc.max_epochs == 50
    assert cc.split_fractions == (0.6, 0.2, 0.2) and cc.n_seeds == 10
    assert cc.max_samples_per_class is None and cc.calibration == "isotonic"
    d = CALOGEN_DEFAULT
    assert d.hidden == (256, 256) and d.lr == 1e-3 and d.batch_size == 1024
    assert d.max_epochs == 10 and d.patience == 2 and d.n_seeds == 5
    assert d.max_samples_per_class == 50_000 and d.split_fractions == (0.6, 0.2, 0.2)
    assert d.calibration == "isotonic" and d.device == "auto" and d.threads is None
    assert classifier_test.__kwdefaults__ == {"seed": 0, "progress": False}
    assert classifier_test.__defaults__ == (CALOGEN_DEFAULT,)


@pytest.mark.parametrize("bad", [{"hidden": ()}, {"lr": 0.0}, {"patience": 0},
                                 {"split_fractions": (0.5, 0.2, 0.2)}, {"calibration": "platt"},
                                 {"device": "gpu-please"}, {"n_seeds": 0}])
def test_config_validation(bad: dict) -> None:
    with pytest.raises(ValueError, match="ClassifierConfig"):
        ClassifierConfig(**bad)


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="generated: expected 10 features"):
        classifier_test(_gauss(100), _gauss(100, d=9), TINY)
    bad = _gauss(100)
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="reference: contains NaN"):
        classifier_test(bad, _gauss(100), TINY)


# ---------------------------------------------------------------------------------- features


def test_low_level_features() -> None:
    showers = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    cond = np.array([[1.0, -2.0], [3.0, 4.0]])
    f = low_level_features(showers, cond)
    assert f.shape == (2, 14) and f.dtype == np.float32
    np.testing.assert_allclose(f[:, :12], np.log10(1.0 + showers.reshape(2, 12)), rtol=1e-6)
    np.testing.assert_array_equal(f[:, 12:], cond.astype(np.float32))
    assert low_level_features(showers.reshape(2, 12)).shape == (2, 12)
    with pytest.raises(ValueError, match="non-negative"):
        low_level_features(-showers, cond)
    with pytest.raises(ValueError, match="conditions"):
        low_level_features(showers, cond[:1])


def test_high_level_features() -> None:
    obs = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    f = high_level_features(obs, np.array([[7.0], [8.0]]))
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, [[1, 2, 3, 7], [4, 5, 6, 8]])
    with pytest.raises(ValueError, match="observables: contains NaN"):
        high_level_features(np.array([[np.inf, 1.0]]), np.zeros((1, 1)))


# ------------------------------------------------------ the official protocol, option by option


def test_calochallenge_preset_is_the_official_protocol() -> None:
    """Its DNN with --cls_n_layer 2: input layer + 2 hidden = 3 hidden layers of 2048."""
    cc = CALOCHALLENGE_2022
    net = clf._MLP(np.zeros(7), np.ones(7), cc.hidden, cc.negative_slope,
                   torch.Generator().manual_seed(0), cc.dropout).net
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [
        (7, 2048), (2048, 2048), (2048, 2048), (2048, 1)]
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in net) == 3
    assert (cc.select_epoch_by, cc.auc_from, cc.prob_floor) == ("accuracy", "calibrated", 1e-6)
    assert (cc.split_sizes, cc.calibration_input, cc.standardise) == ("floor", "probabilities",
                                                                      False)
    d = CALOGEN_DEFAULT
    assert (d.select_epoch_by, d.auc_from, d.prob_floor) == ("val_loss", "scores", 1e-7)
    assert (d.split_sizes, d.calibration_input, d.standardise, d.dropout) == (
        "round", "logits", True, 0.0)


def test_dropout_layers() -> None:
    net = clf._MLP(np.zeros(3), np.ones(3), (8, 8), 0.01, torch.Generator(), 0.2).net
    drops = [m for m in net if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2 and all(m.p == 0.2 for m in drops)


def test_split_sizes_floor_as_official() -> None:
    rng = np.random.default_rng(4)
    sizes = [a.size for a in split_indices(1001, (0.6, 0.2, 0.2), rng, "floor")]
    assert sizes == [600, 200, 201]  # int(0.6 n), int(0.2 n), the rest


def _scripted_accuracy(monkeypatch: pytest.MonkeyPatch, values: list[float]) -> list[float]:
    scripted = iter(values)
    calls: list[float] = []

    def fake(logits: np.ndarray, y: np.ndarray) -> float:
        calls.append(next(scripted))
        return calls[-1]

    monkeypatch.setattr(clf, "_accuracy", fake)
    return calls


def test_select_epoch_by_accuracy_keeps_first_best(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _scripted_accuracy(monkeypatch, [0.6, 0.7, 0.7, 0.65, 0.55])
    cfg = replace(TINY, n_seeds=1, max_epochs=5, patience=None, select_epoch_by="accuracy")
    res = classifier_test(_gauss(600, seed=1), _gauss(600, seed=2), cfg)
    assert len(calls) == 5 and res.best_epochs == [2]


def test_select_epoch_by_accuracy_stops_at_one(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _scripted_accuracy(monkeypatch, [0.9, 1.0, 0.5, 0.5, 0.5, 0.5])
    cfg = replace(TINY, n_seeds=1, max_epochs=6, patience=None, select_epoch_by="accuracy")
    res = classifier_test(_gauss(600, seed=1), _gauss(600, seed=2), cfg)
    assert len(calls) == 2 and res.best_epochs == [2]


def test_accuracy_is_rounded_sigmoid() -> None:
    logits = np.array([-2.0, 0.0, 0.1, 3.0])
    assert clf._accuracy(logits, np.array([0.0, 0.0, 1.0, 0.0])) == 0.75


def _fake_model(monkeypatch: pytest.MonkeyPatch, logits: np.ndarray) -> None:
    monkeypatch.setattr(clf, "_predict_logits", lambda model, x, device: logits[: len(x)])


@pytest.mark.parametrize("floor", [1e-7, 1e-6])
def test_prob_floor_bounds_the_jsd_of_a_perfect_classifier(
        floor: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Perfectly separated: calibrated p = floor or 1 - floor, BCE = -ln(1 - floor)."""
    y = (np.arange(200) % 2).astype(np.float64)
    logits = np.where(y > 0, 1.0, -1.0) * np.linspace(1.0, 5.0, 200)
    _fake_model(monkeypatch, logits)
    x = np.zeros((200, 1), dtype=np.float32)
    cal = clf._fit_calibrator(None, x, y, replace(TINY, prob_floor=floor),  # type: ignore
                              torch.device("cpu"))
    np.testing.assert_array_equal(np.unique(cal(logits)), [floor, 1 - floor])
    auc, jsd = clf._evaluate(None, cal, x, y, torch.device("cpu"))  # type: ignore[arg-type]
    assert auc == 1.0
    assert jsd == pytest.approx((math.log(2) + math.log1p(-floor)) / math.log(2), rel=1e-12,
                                abs=0)


def test_auc_from_calibrated_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    y = (np.arange(400) % 2).astype(np.float64)
    logits = rng.normal(size=400) + 0.8 * y
    _fake_model(monkeypatch, logits)
    x = np.zeros((400, 1), dtype=np.float32)
    cal = clf._fit_calibrator(None, x, y, replace(TINY, calibration="isotonic"),  # type: ignore
                              torch.device("cpu"))
    p = cal(logits)
    assert np.unique(p).size < 200  # isotonic plateaus: the two AUCs differ
    dev = torch.device("cpu")
    auc_s, _ = clf._evaluate(None, cal, x, y, dev, "scores")  # type: ignore[arg-type]
    auc_c, _ = clf._evaluate(None, cal, x, y, dev, "calibrated")  # type: ignore[arg-type]
    assert auc_s == roc_auc_score(y, logits) and auc_c == roc_auc_score(y, p)
    assert auc_s != auc_c


def test_calibration_on_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the official script: IsotonicRegression(y_min=floor, y_max=1-floor) on sigmoid(logit)."""
    rng = np.random.default_rng(1)
    y = (np.arange(300) % 2).astype(np.float64)
    logits = 3.0 * rng.normal(size=300) + 2.0 * y
    _fake_model(monkeypatch, logits)
    x = np.zeros((300, 1), dtype=np.float32)
    cfg = replace(TINY, calibration_input="probabilities", prob_floor=1e-6)
    cal = clf._fit_calibrator(None, x, y, cfg, torch.device("cpu"))  # type: ignore[arg-type]
    iso = IsotonicRegression(y_min=1e-6, y_max=1 - 1e-6, out_of_bounds="clip")
    iso.fit(expit(logits), y)
    new = np.linspace(-6, 6, 97)
    np.testing.assert_array_equal(cal(new), iso.predict(expit(new)))
    on_logits = clf._fit_calibrator(None, x, y, replace(cfg, calibration_input="logits"),
                                    torch.device("cpu"))  # type: ignore[arg-type]
    assert not np.array_equal(on_logits(new), cal(new))  # interpolation differs between points


def test_standardise_off_feeds_features_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[int] = []
    monkeypatch.setattr(clf, "_fit_standardiser", lambda x: called.append(1) or (0, 1))
    cfg = replace(TINY, n_seeds=1, max_epochs=1, standardise=False)
    model, _, _ = clf._train_mlp(_gauss(200, seed=1) * 5 + 3, np.arange(200) % 2,
                                 _gauss(100, seed=2), np.arange(100) % 2, cfg,
                                 torch.Generator().manual_seed(0), torch.device("cpu"))
    assert not called
    assert torch.all(model.mean == 0) and torch.all(model.inv_std == 1)
