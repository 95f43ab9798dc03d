"""Per-shower log-likelihood under a flow model, and flags for the improbable ones.

Used by ``calogen loglik --model DIR FILE``. Every shower of a ShowerSet gets the model's
lower bound on ``log P(counts | conditions)`` (nats; for voxel showers the log-density of the
energies with the model's training noise;
:meth:`calogen.models.families.caloflow.CaloFlow.log_likelihood`). A shower is *flagged* when
its log-likelihood lies below the ``quantile`` of a reference distribution: the
log-likelihoods of a reference ShowerSet (e.g. the held-out split the model was validated on)
when one is given, else of the file itself (then exactly the lowest ``quantile`` share is
flagged, which ranks rather than tests).

The table is written as CSV (``index, condition_id, loglik_nats, nats_per_pixel, flagged``),
atomically.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from calogen.atomic import write_text_atomic
from calogen.data.showerset import ShowerSet

__all__ = ["LoglikResult", "shower_log_likelihoods", "write_loglik_table"]


@dataclass(frozen=True)
class LoglikResult:
    """What :func:`write_loglik_table` computed and wrote."""

    path: Path
    loglik: NDArray[np.float64]
    threshold: float
    flagged: NDArray[np.bool_]
    reference: str


def _check_fits(model: Any, ss: ShowerSet, path: Path) -> None:
    if not hasattr(model, "log_likelihood"):
        raise ValueError(f"a {model.family!r} model has no tractable likelihood; loglik needs "
                         f"a flow model (caloflow, calo-inn, caloflow-student)")
    if tuple(ss.shower_shape) != tuple(model.spec.shape):
        raise ValueError(f"{path}: showers are {ss.shower_shape}, the model was trained on "
                         f"{tuple(model.spec.shape)}")
    want = tuple(model.spec.transforms.condition_columns)
    if tuple(ss.meta.condition_columns) != want:
        raise ValueError(f"{path}: condition columns {ss.meta.condition_columns} differ from "
                         f"the model's {want}")


def shower_log_likelihoods(model: Any, path: str | Path, *, draws: int = 4,
                           batch_size: int = 1024, seed: int = 0, max_events: int | None = None,
                           progress: bool = True) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Log-likelihood bound (nats) of every shower of the ShowerSet ``path`` (or the first
    ``max_events``), and their condition ids."""
    import torch

    path = Path(path)
    out, ids = [], []
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    with ShowerSet.open(path) as ss:
        _check_fits(model, ss, path)
        n = len(ss) if max_events is None else min(len(ss), max_events)
        bar = tqdm(total=n, desc=f"loglik {path.name}", unit="shower", disable=not progress)
        for batch in ss.iter_batches(batch_size, indices=np.arange(n)):
            out.append(model.log_likelihood(batch.showers, batch.conditions, batch.pdg,
                                            draws=draws, batch_size=batch_size, generator=gen))
            ids.append(batch.condition_id)
            bar.update(len(batch))
        bar.close()
    if not out:
        return np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(out), np.concatenate(ids).astype(np.int64)


def write_loglik_table(model: Any, path: str | Path, out: str | Path, *,
                       reference: str | Path | None = None, quantile: float = 0.01,
                       draws: int = 4, batch_size: int = 1024, seed: int = 0,
                       max_events: int | None = None, overwrite: bool = False,
                       progress: bool = True) -> LoglikResult:
    """Log-likelihoods of ``path``'s showers, flagged below the ``quantile`` of the
    reference's (or the file's own), written to the CSV ``out``."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out}: exists; pass --overwrite to replace it")
    ll, ids = shower_log_likelihoods(model, path, draws=draws, batch_size=batch_size,
                                     seed=seed, max_events=max_events, progress=progress)
    if reference is not None:
        ref, _ = shower_log_likelihoods(model, reference, draws=draws, batch_size=batch_size,
                                        seed=seed + 1, max_events=max_events,
                                        progress=progress)
        ref_name = str(reference)
    else:
        ref, ref_name = ll, str(path)
    if len(ref) == 0:
        raise ValueError(f"{ref_name}: no showers to set the flag threshold")
    threshold = float(np.quantile(ref, quantile))
    flagged = ll < threshold
    n_pix = int(np.prod(model.spec.shape))
    buf = io.StringIO()
    what = (f"lower bound on log P(counts | conditions) in nats ({draws} dequantisation draws)"
            if model.spec.kind == "image" else
            f"log-density of the voxel energies (MeV) with the training noise, in nats "
            f"(mean of {draws} noise draws)")
    buf.write(f"# calogen loglik: model family {model.family}; {what}; flagged = below the "
              f"{quantile} quantile ({threshold:.6g}) of {ref_name}\n")
    buf.write("index,condition_id,loglik_nats,nats_per_pixel,flagged\n")
    for i, (value, cid, flag) in enumerate(zip(ll, ids, flagged, strict=True)):
        buf.write(f"{i},{cid},{value:.6f},{value / n_pix:.6f},{int(flag)}\n")
    write_text_atomic(out, buf.getvalue())
    return LoglikResult(out, ll, threshold, flagged, ref_name)
