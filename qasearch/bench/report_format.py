"""How report.md writes a figure: one place, so that every section reads alike."""

from __future__ import annotations


def figure(value: object, digits: int = 1, unit: str = "") -> str:
    """A number with thousands separators (floats to ``digits``), "–" for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def ratio(value: float | None) -> str:
    """``1.23x``; "–" for none."""
    return "–" if value is None else f"{value:.2f}x"


def duration(seconds: float | None) -> str:
    """Seconds, minutes or hours, whichever reads best."""
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
