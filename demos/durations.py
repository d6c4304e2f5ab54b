"""How long things take: the one way the portal writes a duration, and percentiles of samples.

Every page, message and email writes durations with `format_duration`, and the browser's live
clocks and countdowns with `formatDuration` in static/js/portal.js, which follows the same rule
(tests/browser/test_durations_js.py runs both over one table). Pure Python, no Django: the
benchmarks use it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

# (seconds, singular, plural), largest first.
_UNITS = (
    (86400, "day", "days"),
    (3600, "h", "h"),
    (60, "min", "min"),
    (1, "s", "s"),
)


def format_duration(value: timedelta | float | None) -> str:
    """A duration in at most two units, largest first: "3 min 5 s", "1 h 1 min", "3 days".

    The rule: cut to whole seconds (never rounded up, so a countdown never shows time that is
    not left); write the largest unit that fits, then the next smaller unit unless it is zero,
    and drop everything below. Units are days, h, min and s. Negative durations read "0 s";
    no duration reads "—". So 185 s is "3 min 5 s", 3599 s "59 min 59 s", 3661 s "1 h 1 min",
    86399 s "23 h 59 min", 72 h "3 days" and 90 000 s "1 day 1 h".
    """
    if value is None:
        return "—"
    whole = value // timedelta(seconds=1) if isinstance(value, timedelta) else math.floor(value)
    left = max(whole, 0)
    index = next(i for i, (size, _one, _many) in enumerate(_UNITS) if left >= size or size == 1)
    parts = []
    for size, one, many in _UNITS[index : index + 2]:
        count = left // size
        left -= count * size
        if count or not parts:
            parts.append(f"{count} {one if count == 1 else many}")
    return " ".join(parts)


def percentile[Sample: (float, timedelta)](samples: Sequence[Sample], pct: float) -> Sample:
    """The `pct`-th percentile (0 to 100) of `samples`, seconds or timedeltas, by linear
    interpolation between the two closest ranks.

    The same method as PostgreSQL's percentile_cont, numpy's default and
    `statistics.quantiles(method="inclusive")`, so the median of an even count is the mean of the
    middle two and a figure can be checked with any of them.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} is outside 0..100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
