"""Numbers as the HTML pages show them (shared by the report and the leaderboard)."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["fmt", "fmt_std"]


def fmt(value: Any) -> str:
    """A number with 3-4 significant digits (scientific outside 1e-3..1e5); ``-`` for None."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "&#8239;") if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if value == 0.0:
            return "0"
        a = abs(value)
        if a >= 1e5 or a < 1e-3:
            mant, exp = f"{value:.3e}".split("e")
            return f"{float(mant):.4g}&times;10<sup>{int(exp)}</sup>"
        return f"{value:.4g}"
    return html.escape(str(value))


def fmt_std(value: Any, std: Any) -> str:
    """``value ± std`` (std to 2 significant digits) or the bare value."""
    if std is None or value is None:
        return fmt(value)
    s = float(std)
    std_text = fmt(float(f"{s:.2g}")) if s != 0 else "0"
    return f"{fmt(value)} &plusmn; {std_text}"
