"""Turning stored values into what people read: template markdown and durations.

Template instructions and descriptions are markdown written by template admins and may carry
prospect-entered values (through variables), so their HTML is always sanitised before it is shown.
"""

from __future__ import annotations

import re
from datetime import timedelta

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

# Enough for instructions: text, lists, links, code and simple tables. No images (they would
# load from elsewhere, which the Content-Security-Policy forbids anyway), no raw HTML blocks.
_ALLOWED_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "dd",
    "dl",
    "dt",
    "em",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}
_URL_SCHEMES = {"http", "https", "mailto"}
# Headings one and two belong to the page itself; markdown's own levels shift down under them.
_HEADING = re.compile(r"<(/?)h([1-6])>")


def markdown_to_html(text: str) -> SafeString:
    """Markdown as sanitised HTML, safe to put into a page as it is."""
    if not text.strip():
        return mark_safe("")
    html = markdown.markdown(
        text, extensions=["fenced_code", "tables", "sane_lists"], output_format="html"
    )
    html = _shift_headings(html)
    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
    )
    return mark_safe(cleaned)  # noqa: S308 - nh3 has just sanitised it


def _shift_headings(html: str) -> str:
    return _HEADING.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + 2, 6)}>", html)


def format_duration(value: timedelta | float | None, *, precise: bool = False) -> str:
    """A duration as people say it: "42 s", "3 min 5 s", "2 h 15 min", "3 days".

    `precise` keeps seconds up to ten minutes (progress steps); otherwise seconds only show
    under a minute.
    """
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(seconds, 0.0)
    if seconds < 10 and precise:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if precise and secs and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"
