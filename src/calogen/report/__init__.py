"""calogen.report: plots and reports (never computes metrics itself).

* :mod:`calogen.report.style` -- the HEP plot style, headless Agg figures, atomic saving.
* :mod:`calogen.report.showerset_plots` -- :func:`plot_showerset`, the ``calogen show`` figure.
* :mod:`calogen.report.evaluation_plots` -- the figures of an evaluation (observables, channels
  per species, correlations, examples, mean images).
* :mod:`calogen.report.evaluation_report` -- :func:`write_report` (``metrics.json``, figures,
  ``report.html``) and :func:`validate_metrics_json` (the ``metrics_schema.json`` check).
"""

from calogen.report.evaluation_report import validate_metrics_json, write_report
from calogen.report.showerset_plots import plot_showerset

__all__ = ["plot_showerset", "validate_metrics_json", "write_report"]
