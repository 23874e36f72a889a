"""Numbers as a reader reads them: display units (MiB/GiB, s/ms), about three significant digits, and what one
more training language costs as text.

Figures (legends) and reports (tables) both write per-language slopes; they share this module so a figure and
the table beside it always say the same thing, and so neither has to import the other.
"""

from __future__ import annotations

import math

from bench.results.growth import ONE_SEED


def display_unit(kind: str, max_value: float, unit: str = "") -> tuple[float, str]:
    """(divisor, unit) that keeps axis numbers readable: MiB/GiB for bytes, s/ms for seconds."""
    if kind == "bytes":
        return (2**30, "GiB") if max_value >= 2**30 else (2**20, "MiB")
    if kind == "seconds":
        return (1.0, "s") if max_value >= 1 else (1e-3, "ms")
    return 1.0, unit


def fmt(value: float) -> str:
    """About three significant digits, never scientific notation for the magnitudes we report."""
    if value is None or not math.isfinite(value):
        return "–"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}" if size >= 0.01 or size == 0 else f"{value:.2g}"


def signed(value: float) -> str:
    """fmt() with an explicit sign, for differences and slopes."""
    return ("+" if value > 0 else "") + fmt(value)


def slope_text(slope: float, low: float, high: float, shape: str, kind: str) -> str:
    """A per-language slope in readable units with its interval: '+1.77 MiB [+0.677, +2.87]', 'flat [-2.63, +2.43] ms',
    '+1.9 MiB (one seed: no interval)', or 'none (the same at every L)' where no seed's runs changed with L at all
    (e.g. parameters under a fixed vocabulary). The call and its criterion: bench.results.growth."""
    if not math.isfinite(slope):
        return "–"
    if slope == low == high == 0:
        return "none (the same at every L)"
    bounded = math.isfinite(low) and math.isfinite(high)
    divisor, unit = display_unit(kind, max(abs(slope), abs(low), abs(high)) if bounded else abs(slope))
    interval = f" [{signed(low / divisor)}, {signed(high / divisor)}]" if bounded else ""
    if shape == "flat":
        return f"flat{interval} {unit}".rstrip()
    text = " ".join(part for part in (signed(slope / divisor), unit) if part) + interval  # a rate has no unit here
    return text + (" (curved)" if shape == "curved" else "" if bounded else f" ({ONE_SEED})")


def per_language_text(fit, kind: str) -> str:
    """slope_text of one growth fit (a row of `growth_fits`), and how its interval was made where that text does
    not say it already: '+1.69 MiB [+0.646, +2.74] (t over 3 seeds)', '+1.9 MiB (one seed: no interval)'; ''
    where nothing was fitted. What a figure's legend and a sweep's closing lines say."""
    if not math.isfinite(fit.slope):
        return ""
    text = slope_text(fit.slope, fit.slope_ci_low, fit.slope_ci_high, fit.shape, kind)
    return text if not fit.interval or fit.interval in text else f"{text} ({fit.interval})"
