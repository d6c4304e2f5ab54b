"""Template filters and tags for showing demos: status badges, durations, markdown."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString

from demos import roles
from demos.durations import format_duration
from demos.models import KEPT, WORKING, Status
from demos.rendering import markdown_to_html

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


@register.filter
def since(moment: datetime | None) -> str:
    """`{{ demo.ended_at|since }} ago`: the time from `moment` to now, as `duration` writes it."""
    return format_duration(timezone.now() - moment) if moment else "—"


@register.filter
def seconds_since(moment: datetime | None) -> str:
    """`data-elapsed="{{ demo.requested_at|seconds_since }}"`: for a clock the browser counts on
    (static/js/portal.js), so a poll need not re-send a row just to move it."""
    return f"{(timezone.now() - moment).total_seconds():.1f}" if moment else ""


@register.filter
def until(moment: datetime | None) -> str:
    """`{{ demo.expires_at|until }}`: the time from now until `moment`, as `duration` writes it."""
    return format_duration(moment - timezone.now()) if moment else "—"


@register.filter
def is_template_admin(user: Any) -> bool:
    """`{% if user|is_template_admin %}`: whether the navigation offers the template studio (the
    studio's own check, from the person's cached groups rather than a permissions query)."""
    return roles.is_template_admin(user)


@register.filter
def can_view_fleet(user: Any) -> bool:
    """`{% if user|can_view_fleet %}`: whether the navigation offers the fleet view."""
    return roles.can_view_fleet(user)
