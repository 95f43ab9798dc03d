"""The one place where calogen's plot style and backend are chosen.

Figures are built on :class:`matplotlib.figure.Figure` with an explicit Agg canvas, never through
``pyplot``: that works headless, keeps no global figure state and does not switch the backend of
a user's interactive session. The look is the ALICE style of mplhep, with font sizes scaled down
for multi-panel figures (the stock style is tuned for a single 12 x 9 inch plot).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import mplhep
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calogen.atomic import atomic_path

HEP_STYLE = "ALICE"
"""mplhep style the report uses (mplhep 1.3 offers ALICE, ATLAS, CMS, LHCb, ROOT, DUNE, ...)."""

PANEL_RC: dict[str, Any] = {
    "font.size": 10,
    "axes.labelsize": 11,
    "axes.titlesize": 10,
    "axes.labelpad": 4,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "xtick.major.size": 5,
    "xtick.minor.size": 2.5,
    "ytick.major.size": 5,
    "ytick.minor.size": 2.5,
    "legend.fontsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": 100,
}
"""Overrides of the HEP style for figures with many small panels."""


@contextmanager
def hep_style(**overrides: Any) -> Iterator[None]:
    """Apply the HEP style (plus :data:`PANEL_RC` and ``overrides``) inside a ``with`` block.

    The previous rcParams are restored on exit. Build *and save* figures inside the block:
    some parameters are only read when the figure is drawn.
    """
    with matplotlib.rc_context():
        mplhep.style.use(HEP_STYLE)
        rc: Any = matplotlib.rcParams  # typed with literal keys; ours are checked at run time
        rc.update(PANEL_RC)
        rc.update(overrides)
        yield


def new_figure(**kwargs: Any) -> Figure:
    """A new figure attached to an Agg canvas (headless; no pyplot involved)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save ``fig`` atomically: write to a temporary file beside ``path``, then rename.

    The temporary name keeps the suffix of ``path`` so that matplotlib picks the same format.
    A killed job therefore never leaves a half-written image under the final name.

    Returns:
        The path written.
    """
    out = Path(path)
    if not out.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "output directory does not exist", str(out.parent))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, **kwargs)
    return out
