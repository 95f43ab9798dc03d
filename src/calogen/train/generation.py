"""Generate a ShowerSet for the conditions of another file, with any sampler.

Shared by every generator (baselines now, trained models later): the conditions (and PDG
codes, condition ids) of an input ShowerSet are streamed in batches, the sampler turns them
into showers in physical units, and the result is written atomically as a ShowerSet whose row
i answers row i of the input, so that the evaluation can pair them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from calogen.data.showerset import ShowerSet, ShowerSetWriter

Sampler = Callable[[NDArray[np.float32], NDArray[np.int32], np.random.Generator],
                   NDArray[np.generic]]
"""(conditions (n, k), pdg (n,), rng) -> showers (n, *shape) in physical units."""


def generate_to_showerset(sample: Sampler, conditions_path: str | Path, out: str | Path, *,
                          producer: Mapping[str, Any], seed: int = 0, batch_size: int = 8192,
                          shower_dtype: str = "int32", overwrite: bool = False,
                          progress: bool = True) -> Path:
    """Write ``sample``'s showers for every row of ``conditions_path`` to ``out``.

    The random generator is seeded once with ``seed`` and consumed batch by batch in row
    order, so the output depends on ``batch_size`` only through the sampler.
    """
    rng = np.random.default_rng(seed)
    with ShowerSet.open(conditions_path) as src:
        meta = src.meta
        with ShowerSetWriter(
            out, shower_shape=meta.shower_shape, detector=meta.detector, geometry=meta.geometry,
            condition_columns=meta.condition_columns, condition_units=meta.condition_units,
            producer={**producer, "seed": seed, "conditions_from": str(Path(conditions_path))},
            shower_dtype=shower_dtype, shower_units=meta.shower_units, overwrite=overwrite,
        ) as writer, tqdm(total=len(src), unit="ev", desc="generate",
                          disable=not progress) as bar:
            for batch in src.iter_batches(batch_size):
                showers = sample(batch.conditions, batch.pdg, rng)
                writer.append(showers, batch.conditions, batch.pdg, batch.condition_id)
                bar.update(len(batch))
    return Path(out)
