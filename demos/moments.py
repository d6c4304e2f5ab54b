"""Moments as pages write them relative to now: "5 min ago", "for 2 h 3 min", and the seconds a
browser's clock counts on from (static/js/portal.js follows the same rules). The template
filters of the same names (demos.templatetags.demo_ui) are these functions."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from demos.durations import format_duration

# Under a minute, "ago" reads "just now": "0 s ago" or "12 s ago" only make a reader count.
JUST_NOW = timedelta(minutes=1)


def since(moment: datetime | None) -> str:
    """`{{ demo.ended_at|since }} ago`: the time from `moment` to now, as `duration` writes it."""
    return format_duration(timezone.now() - moment) if moment else "—"


def ago(moment: datetime | None) -> str:
    """`Requested {{ demo.requested_at|ago }}`: "just now", or "5 min ago" (the browser's clocks
    follow the same rule for `data-ago`)."""
    if moment is None:
        return "—"
    passed = timezone.now() - moment
    return "just now" if passed < JUST_NOW else f"{format_duration(passed)} ago"


def seconds_since(moment: datetime | None) -> str:
    """`data-elapsed="{{ demo.requested_at|seconds_since }}"`: for a clock the browser counts on,
    so a poll need not re-send a row just to move it."""
    return f"{(timezone.now() - moment).total_seconds():.1f}" if moment else ""
