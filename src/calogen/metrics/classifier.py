"""Classifier two-sample test: can a neural network tell generated showers from reference ones?

An MLP is trained to separate reference rows (label 0) from generated rows (label 1). Its ROC
AUC on held-out rows is 0.5 for indistinguishable samples; from the calibrated probabilities
the JSD estimate of Krause et al. is ``(ln 2 - BCE) / ln 2`` (0 = indistinguishable, 1 =
separable). Per seed (C. Krause, D. Shih, arXiv:2106.05285, App. B; CaloChallenge 2022,
arXiv:2410.21611, Sec. 4):

1. balance the classes (``min(N, M, max_samples_per_class)`` rows each, seeded);
2. split each class into train / val / test;
3. train on train; choose the epoch on val (``select_epoch_by``);
4. fit the calibration (isotonic regression) on val;
5. report AUC and JSD on test, touched once.

The function that trains receives only train and val rows, the calibration only val rows.
The official script (``code/evaluate.py`` of CaloChallenge/homepage) follows the same order;
it names the selection split ``test`` and the reported one ``val``.

Presets: :data:`CALOGEN_DEFAULT` (practical on a laptop CPU: the epoch with the lowest val
loss, early stopping, AUC from the raw scores, which isotonic plateaus cannot tie) and
:data:`CALOCHALLENGE_2022` (the official protocol; hours per comparison on a CPU, see
``benchmarks/README.md``) and :data:`CALOCLOUDS_II` (the 32-16-8 network of CaloClouds II on
its 25 observables). Quote the preset with every number (``ClassifierResult.config``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm.auto import tqdm

__all__ = [
    "CALOCHALLENGE_2022",
    "CALOCLOUDS_II",
    "CALOGEN_DEFAULT",
    "PROB_CLIP",
    "ClassifierConfig",
    "ClassifierResult",
    "classifier_test",
    "high_level_features",
    "low_level_features",
    "split_indices",
]

#: Default floor of the calibrated probabilities: they lie in [PROB_CLIP, 1 - PROB_CLIP].
PROB_CLIP: float = 1e-7

_LN2 = math.log(2.0)
_EVAL_BATCH = 8192  # rows per forward pass when only predicting


def _check_fractions(fractions: tuple[float, ...], what: str) -> None:
    if len(fractions) != 3 or any(not f > 0 for f in fractions):
        raise ValueError(f"{what}: expected three positive fractions (train, val, test), got "
                         f"{fractions}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"{what}: fractions must sum to 1, got {sum(fractions)}")


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the classifier two-sample test (see the module docstring for the protocol).

    Attributes:
        hidden: sizes of the hidden layers of the MLP (each followed by LeakyReLU).
        negative_slope: slope of LeakyReLU for negative inputs (torch default 0.01).
        dropout: dropout probability after every hidden activation (0 = none).
        standardise: standardise every feature with the train split's mean and std inside the
            network; ``False`` feeds the features as given (pre-scaled, as the official script).
        lr: Adam learning rate.
        batch_size: training mini-batch size (rows, both classes mixed).
        max_epochs: maximum number of passes over the training split.
        patience: stop after this many epochs without a lower validation loss; ``None`` trains
            all ``max_epochs`` epochs (the best validation epoch is kept either way).
        split_fractions: (train, validation, test) fractions, applied to each class separately.
        split_sizes: ``"round"`` (train and val sizes rounded) or ``"floor"`` (rounded down, as
            the official script); the test split takes the rest.
        select_epoch_by: ``"val_loss"`` keeps the epoch with the lowest validation loss;
            ``"accuracy"`` the first epoch with the highest validation accuracy and stops when
            it reaches 1 (official).
        n_seeds: number of independent repetitions (subsample, split, initialisation, shuffling).
        max_samples_per_class: rows drawn per class (seeded, without replacement); ``None`` uses
            ``min(N, M)``. Classes are always balanced.
        calibration: ``"isotonic"`` (scikit-learn ``IsotonicRegression`` fitted on validation
            predictions) or ``"none"`` (plain sigmoid of the network output).
        calibration_input: the isotonic fit maps ``"logits"`` (no saturation ties) or
            ``"probabilities"`` (the sigmoid, as the official script; they differ only by the
            interpolation between calibration points).
        prob_floor: calibrated probabilities lie in ``[prob_floor, 1 - prob_floor]`` (1e-6
            official; it bounds the BCE of a confident mistake, so it shifts the JSD).
        auc_from: the test AUC from the raw network ``"scores"`` or from the ``"calibrated"``
            probabilities (official; isotonic plateaus create ties that pull it towards 0.5).
        device: ``"auto"`` picks CUDA when available at run time, else CPU; or a torch device
            string such as ``"cpu"`` or ``"cuda:0"``.
        threads: CPU threads for torch during the test (restored afterwards); ``None`` keeps the
            torch default.
    """

    hidden: tuple[int, ...] = (256, 256)
    negative_slope: float = 0.01
    lr: float = 1e-3
    batch_size: int = 1024
    max_epochs: int = 10
    patience: int | None = 2
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    n_seeds: int = 5
    max_samples_per_class: int | None = 50_000
    calibration: Literal["isotonic", "none"] = "isotonic"
    device: str = "auto"
    threads: int | None = None
    dropout: float = 0.0
    standardise: bool = True
    split_sizes: Literal["round", "floor"] = "round"
    select_epoch_by: Literal["val_loss", "accuracy"] = "val_loss"
    calibration_input: Literal["logits", "probabilities"] = "logits"
    prob_floor: float = PROB_CLIP
    auc_from: Literal["scores", "calibrated"] = "scores"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "split_fractions", tuple(float(f) for f in self.split_fractions))
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"ClassifierConfig.hidden: expected positive layer sizes, got "
                             f"{self.hidden}")
        if not self.negative_slope >= 0:
            raise ValueError(f"ClassifierConfig.negative_slope: expected >= 0, got "
                             f"{self.negative_slope}")
        if not self.lr > 0:
            raise ValueError(f"ClassifierConfig.lr: expected > 0, got {self.lr}")
        for name in ("batch_size", "max_epochs", "n_seeds"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ClassifierConfig.{name}: expected >= 1, got "
                                 f"{getattr(self, name)}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"ClassifierConfig.patience: expected >= 1 or None, got "
                             f"{self.patience}")
        _check_fractions(self.split_fractions, "ClassifierConfig.split_fractions")
        if self.max_samples_per_class is not None and self.max_samples_per_class < 5:
            raise ValueError(f"ClassifierConfig.max_samples_per_class: expected >= 5 or None, "
                             f"got {self.max_samples_per_class}")
        if self.calibration not in ("isotonic", "none"):
            raise ValueError(f"ClassifierConfig.calibration: expected 'isotonic' or 'none', got "
                             f"{self.calibration!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ClassifierConfig.dropout: expected 0 <= dropout < 1, got "
                             f"{self.dropout}")
        if not 0.0 < self.prob_floor < 0.5:
            raise ValueError(f"ClassifierConfig.prob_floor: expected 0 < prob_floor < 0.5, got "
                             f"{self.prob_floor}")
        for name, allowed in (("split_sizes", ("round", "floor")),
                              ("select_epoch_by", ("val_loss", "accuracy")),
                              ("calibration_input", ("logits", "probabilities")),
                              ("auc_from", ("scores", "calibrated"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"ClassifierConfig.{name}: expected one of {allowed}, got "
                                 f"{getattr(self, name)!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"ClassifierConfig.threads: expected >= 1 or None, got "
                             f"{self.threads}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError) as err:
                raise ValueError(f"ClassifierConfig.device: expected 'auto' or a torch device, "
                                 f"got {self.device!r}") from err

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of the settings (tuples become lists)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["split_fractions"] = list(self.split_fractions)
        return d


#: Practical default for a laptop CPU: 2 x 256, Adam 1e-3, batch 1024, <= 10 epochs with
#: patience 2 on the val loss, 5 seeds, <= 50k rows per class, standardised inputs.
CALOGEN_DEFAULT = ClassifierConfig()

#: The CaloChallenge 2022 protocol (arXiv:2410.21611; ``code/evaluate.py``): its ``DNN`` with
#: ``--cls_n_layer 2`` is an input layer plus 2 hidden layers, i.e. 3 hidden layers of 2048,
#: LeakyReLU, dropout 0; Adam 2e-4, batch 1000, 50 epochs, split 60/20/20 per class rounded
#: down; epoch by accuracy (stop at 1); isotonic calibration of the sigmoid floored at 1e-6;
#: AUC and JSD from the calibrated probabilities; all rows; 10 seeds (the paper's mean and std).
#: Not reproduced: its float64 network (float32 here).
CALOCHALLENGE_2022 = ClassifierConfig(
    hidden=(2048, 2048, 2048),
    negative_slope=0.01,
    dropout=0.0,
    standardise=False,
    lr=2e-4,
    batch_size=1000,
    max_epochs=50,
    patience=None,
    split_fractions=(0.6, 0.2, 0.2),
    split_sizes="floor",
    select_epoch_by="accuracy",
    n_seeds=10,
    max_samples_per_class=None,
    calibration="isotonic",
    calibration_input="probabilities",
    prob_floor=1e-6,
    auc_from="calibrated",
)

#: The high-level classifier of CaloClouds II (arXiv:2309.05704, Sec. 4.3) on its 25 shower
#: observables: hidden layers 32, 16, 8 with LeakyReLU and a sigmoid output, Adam, binary
#: cross-entropy, 10 epochs, the epoch with the lowest validation loss, an 80/10/10 split, ten
#: repeats with different splits, AUC on the test split; all rows. The paper does not state
#: the learning rate, batch size or input scaling: Adam's default 1e-3, batch 1024 and
#: standardised inputs here; no calibration (the AUC reads the raw scores).
CALOCLOUDS_II = ClassifierConfig(
    hidden=(32, 16, 8),
    lr=1e-3,
    batch_size=1024,
    max_epochs=10,
    patience=None,
    split_fractions=(0.8, 0.1, 0.1),
    select_epoch_by="val_loss",
    n_seeds=10,
    max_samples_per_class=None,
    calibration="none",
    standardise=True,
    auc_from="scores",
)


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_test`.

    ``auc_*`` is the test ROC AUC (0.5 = indistinguishable), ``jsd_*`` the JSD estimate
    ``(ln 2 - BCE) / ln 2`` (0 = indistinguishable, 1 = perfectly separable); means and standard
    deviations (``ddof=1``) over seeds. ``best_epochs`` are 1-based epoch numbers chosen on the
    validation split (``select_epoch_by``), ``val_loss_per_seed`` their validation losses.
    ``n_train``, ``n_val``, ``n_test`` count rows of both classes together per seed. ``config``
    is :meth:`ClassifierConfig.to_dict`; ``device`` the device actually used.
    """

    auc_mean: float
    auc_std: float
    jsd_mean: float
    jsd_std: float
    auc_per_seed: list[float]
    jsd_per_seed: list[float]
    best_epochs: list[int]
    n_train: int
    n_test: int
    config: dict[str, Any]
    n_val: int = 0
    device: str = "cpu"
    seed: int = 0
    val_loss_per_seed: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (plain floats, ints, lists, strings)."""
        return {
            "auc_mean": float(self.auc_mean),
            "auc_std": float(self.auc_std),
            "jsd_mean": float(self.jsd_mean),
            "jsd_std": float(self.jsd_std),
            "auc_per_seed": [float(v) for v in self.auc_per_seed],
            "jsd_per_seed": [float(v) for v in self.jsd_per_seed],
            "best_epochs": [int(v) for v in self.best_epochs],
            "val_loss_per_seed": [float(v) for v in self.val_loss_per_seed],
            "n_train": int(self.n_train),
            "n_val": int(self.n_val),
            "n_test": int(self.n_test),
            "device": str(self.device),
            "seed": int(self.seed),
            "config": copy.deepcopy(self.config),
        }


# --------------------------------------------------------------------------------------------
# Features


def low_level_features(showers: np.ndarray, conditions: np.ndarray | None = None) -> np.ndarray:
    """Low-level classifier inputs: ``log10(1 + pixel)`` flattened, then the conditions.

    Args:
        showers: ``(N, H, W)`` images or ``(N, d)`` voxels of non-negative values (for the ZDC,
            photon counts per pixel; dimensionless).
        conditions: ``(N, k)`` conditioning values (raw or already standardised; the test
            standardises every column on its train split anyway), or ``None`` for ``k = 0``.

    Returns:
        ``(N, H * W + k)`` float32 array.

    The ``log10(1 + x)`` compression follows the CaloChallenge low-level variant, which feeds
    ``log10`` of the energies to the classifier so that a few bright pixels do not dominate.
    """
    x = np.asarray(showers)
    if x.ndim < 2:
        raise ValueError(f"showers: expected shape (N, H, W) or (N, d), got {x.shape}")
    x = x.reshape(x.shape[0], -1)
    if not np.all(np.isfinite(x)):
        raise ValueError("showers: contains NaN or infinite values")
    if np.any(x < 0):
        raise ValueError("showers: expected non-negative pixel values (photon counts), found "
                         f"minimum {float(x.min())}")
    feats = np.log10(1.0 + x.astype(np.float32, copy=False))
    return _append_conditions(feats.astype(np.float32, copy=False), conditions, "showers")


def high_level_features(observables: np.ndarray, conditions: np.ndarray | None = None
                        ) -> np.ndarray:
    """High-level classifier inputs: ``(N, q)`` shower observables followed by the conditions.

    Returns a ``(N, q + k)`` float32 array; the test standardises every column on its train split.
    """
    obs = np.asarray(observables)
    if obs.ndim == 1:
        obs = obs[:, None]
    if obs.ndim != 2:
        raise ValueError(f"observables: expected shape (N, q), got {obs.shape}")
    if not np.all(np.isfinite(obs)):
        raise ValueError("observables: contains NaN or infinite values")
    return _append_conditions(obs.astype(np.float32), conditions, "observables")


def _append_conditions(feats: np.ndarray, conditions: np.ndarray | None, what: str
                       ) -> np.ndarray:
    if conditions is None:
        return np.ascontiguousarray(feats, dtype=np.float32)
    c = np.asarray(conditions)
    if c.ndim == 1:
        c = c[:, None]
    if c.ndim != 2 or c.shape[0] != feats.shape[0]:
        raise ValueError(f"conditions: expected shape ({feats.shape[0]}, k) to match {what}, got "
                         f"{c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("conditions: contains NaN or infinite values")
    return np.concatenate([feats, c.astype(np.float32)], axis=1)


# --------------------------------------------------------------------------------------------
# Splitting


def split_indices(n: int, fractions: tuple[float, float, float], rng: np.random.Generator,
                  sizes: Literal["round", "floor"] = "round"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Randomly partition ``range(n)`` into disjoint (train, val, test) index arrays.

    Sizes are ``round(f_train * n)``, ``round(f_val * n)`` (``sizes="floor"``: rounded down)
    and the rest, each at least 1. Each array is sorted int64; together they cover
    ``0 .. n-1`` exactly once.
    """
    _check_fractions(tuple(float(f) for f in fractions), "split_indices: fractions")
    fractions = (float(fractions[0]), float(fractions[1]), float(fractions[2]))
    if n < 3:
        raise ValueError(f"split_indices: need at least 3 rows to split, got n={n}")
    size = math.floor if sizes == "floor" else round
    n_train = min(max(int(size(fractions[0] * n)), 1), n - 2)
    n_val = min(max(int(size(fractions[1] * n)), 1), n - n_train - 1)
    perm = rng.permutation(n).astype(np.int64)
    train, val, test = np.split(perm, [n_train, n_train + n_val])
    return np.sort(train), np.sort(val), np.sort(test)


# --------------------------------------------------------------------------------------------
# Network, training, calibration, evaluation


class _MLP(nn.Module):
    """Standardisation (fixed buffers from the train split) followed by an MLP with one logit.

    Each hidden layer is Linear, LeakyReLU and, when ``dropout > 0``, Dropout.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: tuple[int, ...],
                 negative_slope: float, generator: torch.Generator,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.inv_std: torch.Tensor
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("inv_std", torch.as_tensor(1.0 / std, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = int(mean.shape[0])
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(negative_slope)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):  # torch's default init, drawn from our generator
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(m.in_features)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) * self.inv_std).squeeze(-1)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _fit_standardiser(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the train split; std 0 becomes 1.

    Two passes over row chunks in float64, so no full-size float64 copy is ever made.
    """
    n = x_train.shape[0]
    chunks = range(0, n, _EVAL_BATCH)
    mean = sum(x_train[i:i + _EVAL_BATCH].sum(axis=0, dtype=np.float64) for i in chunks) / n
    var = sum((((x_train[i:i + _EVAL_BATCH] - mean) ** 2).sum(axis=0)) for i in chunks) / n
    std = np.sqrt(var)
    return mean, np.where(std > 0, std, 1.0)


@torch.no_grad()
def _predict_logits(model: nn.Module, x: np.ndarray, device: torch.device) -> np.ndarray:
    """Network output (logits, float64) for every row of ``x``."""
    model.eval()
    xt = torch.from_numpy(x)
    out = [model(xt[i:i + _EVAL_BATCH].to(device)).double().cpu()
           for i in range(0, xt.shape[0], _EVAL_BATCH)]
    return torch.cat(out).numpy()


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose rounded sigmoid (1 iff logit > 0) equals the label."""
    return float(np.mean((logits > 0) == (y > 0.5)))


def _bce_logits(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of logits (numerically stable), natural log."""
    z = logits.astype(np.float64)
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def _train_mlp(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
               config: ClassifierConfig, generator: torch.Generator, device: torch.device,
               progress: bool = False) -> tuple[nn.Module, int, float]:
    """Train on the train split, choose the epoch on the validation split; never sees the test.

    ``config.select_epoch_by``: the lowest validation loss, or the first epoch with the highest
    validation accuracy (training stops once it is 1). ``patience`` counts epochs without
    improvement of that criterion. Returns the model with the weights of the chosen epoch, that
    epoch (1-based) and its validation loss.
    """
    if config.standardise:
        mean, std = _fit_standardiser(x_train)
    else:
        mean, std = np.zeros(x_train.shape[1]), np.ones(x_train.shape[1])
    model = _MLP(mean, std, config.hidden, config.negative_slope, generator,
                 config.dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train.astype(np.float32))
    n = xt.shape[0]

    by_accuracy = config.select_epoch_by == "accuracy"
    best_score, best_loss, best_epoch, best_state, stale = -math.inf, math.inf, 0, None, 0
    epochs = tqdm(range(1, config.max_epochs + 1), desc="epochs", leave=False,
                  disable=not progress)
    for epoch in epochs:
        model.train()
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, config.batch_size):
            idx = perm[i:i + config.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx].to(device)), yt[idx].to(device))
            loss.backward()
            opt.step()
        logits = _predict_logits(model, x_val, device)
        val_loss = _bce_logits(logits, y_val)
        score = _accuracy(logits, y_val) if by_accuracy else -val_loss
        epochs.set_postfix(val_loss=f"{val_loss:.4f}")
        if score > best_score:
            best_score, best_loss, best_epoch, stale = score, val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if by_accuracy and score == 1.0:
                break
        else:
            stale += 1
            if config.patience is not None and stale >= config.patience:
                break
    if best_state is None:
        raise RuntimeError("classifier training diverged: the validation loss was NaN in every "
                           "epoch (check the features for extreme values or lower the lr)")
    model.load_state_dict(best_state)
    return model, best_epoch, best_loss


class _Calibrator:
    """Maps network logits to probabilities in ``[floor, 1 - floor]`` (isotonic or sigmoid)."""

    def __init__(self, iso: IsotonicRegression | None, floor: float,
                 on_probabilities: bool = False) -> None:
        self.iso = iso
        self.floor = floor
        self.on_probabilities = on_probabilities

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        if self.iso is None:
            p = expit(logits)
        else:
            p = self.iso.predict(expit(logits) if self.on_probabilities else logits)
        return np.clip(p, self.floor, 1.0 - self.floor)


def _fit_calibrator(model: nn.Module, x_val: np.ndarray, y_val: np.ndarray,
                    config: ClassifierConfig, device: torch.device) -> _Calibrator:
    """Fit the probability calibration on VALIDATION predictions only.

    The isotonic fit is bounded to ``[prob_floor, 1 - prob_floor]`` (scikit-learn ``y_min``,
    ``y_max``), on logits or on their sigmoid (``calibration_input``).
    """
    floor = config.prob_floor
    if config.calibration == "none":
        return _Calibrator(None, floor)
    on_prob = config.calibration_input == "probabilities"
    iso = IsotonicRegression(y_min=floor, y_max=1.0 - floor, increasing=True,
                             out_of_bounds="clip")
    logits = _predict_logits(model, x_val, device)
    iso.fit(expit(logits) if on_prob else logits, y_val.astype(np.float64))
    return _Calibrator(iso, floor, on_prob)


def _evaluate(model: nn.Module, calibrator: _Calibrator, x_test: np.ndarray, y_test: np.ndarray,
              device: torch.device, auc_from: str = "scores") -> tuple[float, float]:
    """Test AUC (from raw scores or calibrated probabilities) and JSD (from calibrated
    probabilities) on the test split."""
    logits = _predict_logits(model, x_test, device)
    p = calibrator(logits)
    auc = float(roc_auc_score(y_test, p if auc_from == "calibrated" else logits))
    y = y_test.astype(np.float64)
    bce = float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
    return auc, (_LN2 - bce) / _LN2


# --------------------------------------------------------------------------------------------
# The test


def _check_inputs(reference: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference)
    gen = np.asarray(generated)
    for name, a in (("reference", ref), ("generated", gen)):
        if a.ndim != 2:
            raise ValueError(f"{name}: expected a 2-d feature array (N, d), got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{name}: expected numeric features, got dtype {a.dtype}")
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"generated: expected {ref.shape[1]} features like reference, got "
                         f"{gen.shape[1]}")
    if ref.shape[1] == 0:
        raise ValueError("reference: expected at least one feature column, got 0")
    for name, a in (("reference", ref), ("generated", gen)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: contains NaN or infinite values")
    return ref, gen


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _seed_generators(seed: int, k: int) -> tuple[np.random.Generator, torch.Generator]:
    """Independent numpy (subsample, split) and torch (init, shuffling) streams for seed k."""
    ss = np.random.SeedSequence([int(seed), int(k)])
    np_ss, torch_ss = ss.spawn(2)
    gen = torch.Generator().manual_seed(int(torch_ss.generate_state(1, dtype=np.uint64)[0] >> 1))
    return np.random.default_rng(np_ss), gen


def classifier_test(reference: np.ndarray, generated: np.ndarray,
                    config: ClassifierConfig = CALOGEN_DEFAULT, *, seed: int = 0,
                    progress: bool = False) -> ClassifierResult:
    """Classifier two-sample test of ``generated`` against ``reference``.

    Args:
        reference: ``(N, d)`` features of the reference sample (label 0), e.g. from
            :func:`low_level_features` or :func:`high_level_features`.
        generated: ``(M, d)`` features of the generated sample (label 1).
        config: protocol settings; :data:`CALOGEN_DEFAULT` or :data:`CALOCHALLENGE_2022`.
        seed: base seed; repetition ``k`` uses ``SeedSequence([seed, k])``. On CPU the result is
            identical for identical inputs, seed and thread count.
        progress: show tqdm progress bars (seeds, epochs).

    Returns:
        :class:`ClassifierResult` with the test AUC and JSD per seed, their means and stds.

    Per seed the classes are balanced to ``n = min(N, M, max_samples_per_class)`` rows, each class
    is split train/val/test separately, the epoch is chosen and the calibration fitted on the
    validation split, and the test split is used once for the reported numbers.
    """
    ref, gen = _check_inputs(reference, generated)
    n_per_class = min(ref.shape[0], gen.shape[0])
    if config.max_samples_per_class is not None:
        n_per_class = min(n_per_class, config.max_samples_per_class)
    if n_per_class < 5:
        raise ValueError(f"reference/generated: need at least 5 rows per class, got "
                         f"N={ref.shape[0]}, M={gen.shape[0]}")
    device = _resolve_device(config.device)

    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        aucs: list[float] = []
        jsds: list[float] = []
        best_epochs: list[int] = []
        val_losses: list[float] = []
        sizes = (0, 0, 0)
        for k in tqdm(range(config.n_seeds), desc="classifier seeds", disable=not progress):
            rng, tgen = _seed_generators(seed, k)
            rows = []  # per class: (train, val, test) row numbers into reference / generated
            for a in (ref, gen):
                sub = np.sort(rng.choice(a.shape[0], n_per_class, replace=False))
                rows.append([sub[s] for s in split_indices(n_per_class, config.split_fractions,
                                                           rng, config.split_sizes)])
            (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (
                _gather(ref, gen, rows[0][s], rows[1][s]) for s in range(3))
            sizes = (y_tr.size, y_va.size, y_te.size)
            model, best_epoch, best_val = _train_mlp(x_tr, y_tr, x_va, y_va, config, tgen, device,
                                                     progress)
            calibrator = _fit_calibrator(model, x_va, y_va, config, device)
            auc, jsd = _evaluate(model, calibrator, x_te, y_te, device, config.auc_from)
            aucs.append(auc)
            jsds.append(jsd)
            best_epochs.append(best_epoch)
            val_losses.append(best_val)
    finally:
        if config.threads is not None:
            torch.set_num_threads(old_threads)

    return ClassifierResult(
        auc_mean=float(np.mean(aucs)), auc_std=_std(aucs),
        jsd_mean=float(np.mean(jsds)), jsd_std=_std(jsds),
        auc_per_seed=aucs, jsd_per_seed=jsds, best_epochs=best_epochs,
        n_train=int(sizes[0]), n_test=int(sizes[2]), config=config.to_dict(),
        n_val=int(sizes[1]), device=str(device), seed=int(seed), val_loss_per_seed=val_losses,
    )


def _gather(ref: np.ndarray, gen: np.ndarray, ref_rows: np.ndarray, gen_rows: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Selected rows of both classes as one float32 array, labels 0 (reference) / 1 (generated)."""
    n_r, n_g = ref_rows.size, gen_rows.size
    x = np.empty((n_r + n_g, ref.shape[1]), dtype=np.float32)
    x[:n_r] = ref[ref_rows]
    x[n_r:] = gen[gen_rows]
    y = np.concatenate([np.zeros(n_r), np.ones(n_g)])
    return x, y
