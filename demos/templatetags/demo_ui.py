"""Template filters and tags for showing demos: status badges, durations, markdown."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from demos import roles
from demos.durations import format_duration
from demos.models import KEPT, WORKING, Status
from demos.moments import ago, seconds_since, since
from demos.rendering import markdown_to_html
from demos.sales import panel
from demos.sales.account import time_zone_of
from demos.sharing.agents import VisitGroup, group_visits

register = template.Library()


def status_tone(status: str) -> str:
    """The badge colour family of a status. Badges always carry the status text as well."""
    if status == Status.READY:
        return "success"
    if status == Status.FAILED:
        return "danger"
    if status == Status.QUEUED:
        return "waiting"
    if status in WORKING:
        return "progress"
    if status in KEPT:
        return "kept"
    if status == Status.ASLEEP:
        return "asleep"
    return "ended"


@register.inclusion_tag("demos/status_badge.html")
def status_badge(status: str, label: str) -> dict[str, Any]:
    """`{% status_badge demo.status demo.get_status_display %}`."""
    return {
        "tone": status_tone(status),
        "label": label,
        "working": status in WORKING or status == Status.QUEUED,
    }


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    return markdown_to_html(text or "")


@register.filter
def duration(value: timedelta | float | None) -> str:
    """`{{ demo.lifetime|duration }}`: "3 min 5 s" (see demos.durations)."""
    return format_duration(value)


# Moments relative to now, in words (demos.moments).
register.filter("since", since)
register.filter("ago", ago)
register.filter("seconds_since", seconds_since)


@register.filter
def visit_groups(visits: Any) -> list[VisitGroup]:
    """`{% for group in visits|visit_groups %}`: a link's visits as "Chrome on macOS · 2 visits"
    (demos.sharing.agents), not raw user-agent strings."""
    return group_visits(visits)


@register.filter
def chart_names(charts: Any) -> str:
    """`{{ demo.spec.charts|chart_names }}` or `{{ template.charts.all|chart_names }}`: "Shop,
    Payments", what a salesperson needs to know of the charts (versions and release names are
    for the people who run them)."""
    specs = [
        chart if isinstance(chart, dict) else {"chart": chart.chart, "name": chart.release_name}
        for chart in charts or []
    ]
    return panel.chart_names(specs)


@register.filter
def until(moment: datetime | None) -> str:
    """`{{ demo.expires_at|until }}`: the time from now until `moment`, as `duration` writes it."""
    return format_duration(moment - timezone.now()) if moment else "—"


# The ways a moment is written, each with the zone's short name when it has a time of day:
# "3 Dec, 18:44 CET". The server writes them in UTC; static/js/portal.js rewrites each in the zone
# in use (`data-local` names the way), so both must spell them alike.
LOCAL_FORMATS = {
    "datetime": "j M, H:i T",
    "time": "H:i T",
    "seconds": "j M, H:i:s T",
    "date": "j M Y",
    "full": "j M Y, H:i T",
}


@register.simple_tag
def local_time(moment: datetime | None, style: str = "datetime") -> str:
    """`{% local_time demo.expires_at "time" %}`: a <time> the browser shows in the zone in use,
    with the UTC text for a browser that runs no script. Nothing when there is no moment."""
    if moment is None:
        return ""
    in_utc = timezone.localtime(moment, timezone.UTC)
    return format_html(
        '<time datetime="{}" data-local="{}">{}</time>',
        in_utc.isoformat(),
        style,
        dateformat.format(in_utc, LOCAL_FORMATS[style]),
    )


@register.filter
def time_zone(user: Any) -> str:
    """`data-time-zone="{{ user|time_zone }}"`: the zone the person chose, "" for their
    browser's (full pages only: see demos.sales.account)."""
    return time_zone_of(user)


@register.filter
def is_template_admin(user: Any) -> bool:
    """`{% if user|is_template_admin %}`: whether the navigation offers the template studio (the
    studio's own check, from the person's cached groups rather than a permissions query)."""
    return roles.is_template_admin(user)


@register.filter
def can_view_fleet(user: Any) -> bool:
    """`{% if user|can_view_fleet %}`: whether the navigation offers the fleet view."""
    return roles.can_view_fleet(user)
