"""Template markdown as people read it: sanitised HTML.

Template instructions and descriptions are markdown written by template admins and may carry
prospect-entered values (through variables), so their HTML is always sanitised before it is shown.
"""

from __future__ import annotations

import re

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
