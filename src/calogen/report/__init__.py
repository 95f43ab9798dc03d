"""calogen.report: plots and reports (never computes metrics itself).

* :mod:`calogen.report.style` -- the HEP plot style, headless Agg figures, atomic saving.
* :mod:`calogen.report.showerset_plots` -- :func:`plot_showerset`, the ``calogen show`` figure.
"""

from calogen.report.showerset_plots import plot_showerset

__all__ = ["plot_showerset"]
