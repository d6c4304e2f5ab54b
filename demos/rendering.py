"""Template markdown as people read it: sanitised HTML.

Template instructions and descriptions are markdown written by template admins and may carry
prospect-entered values (through variables), so their HTML is always sanitised before it is shown.
"""

from __future__ import annotations

import re
from functools import lru_cache

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
_ALLOWED_ATTRIBUTES = {"a": {"href", "title", "target"}, "th": {"align"}, "td": {"align"}}
_URL_SCHEMES = {"http", "https", "mailto"}
# Headings one and two belong to the page itself; markdown's own levels shift down under them.
_HEADING = re.compile(r"<(/?)h([1-6])>")
# A bare web address in text (markdown escapes "<" and ">" as "&lt;" and "&gt;", so those end it),
# and what usually follows one in a sentence rather than belonging to it.
_BARE_URL = re.compile(r"https?://(?:(?!&lt;|&gt;|&quot;)[^\s<>\"'])+")
_TRAILING = re.compile(r"[.,;:!?)\]]+$")
_TAG = re.compile(r"(<[^>]*>)")
# Inside these, an address is already a link, or is code to copy as it is.
_NO_LINKS_IN = {"a", "code", "pre"}


# A template's instructions are the same text on every view of each of its demos: converted once
# per process (2 ms each), for as many texts as a portal has templates and then some.
@lru_cache(maxsize=256)
def markdown_to_html(text: str) -> SafeString:
    """Markdown as sanitised HTML, safe to put into a page as it is."""
    if not text.strip():
        return mark_safe("")
    html = markdown.markdown(
        text, extensions=["fenced_code", "tables", "sane_lists"], output_format="html"
    )
    html = _link_bare_urls(_shift_headings(html))
    # Every link opens in a new tab, as the demo's own link does: the instructions stay open.
    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return mark_safe(cleaned)  # noqa: S308 - nh3 has just sanitised it


def _shift_headings(html: str) -> str:
    return _HEADING.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + 2, 6)}>", html)


def _link_bare_urls(html: str) -> str:
    """Addresses written as plain text ("open https://shop.example.com") become links, except
    inside links and code. The result is sanitised afterwards like all the rest."""
    parts = _TAG.split(html)
    inside: list[str] = []
    for index, part in enumerate(parts):
        if index % 2:  # a tag
            words = part.strip("</>").split(maxsplit=1)
            name = words[0].lower() if words else ""
            if name in _NO_LINKS_IN:
                if part.startswith("</"):
                    if name in inside:
                        inside.remove(name)
                elif not part.endswith("/>"):
                    inside.append(name)
        elif not inside and "://" in part:
            parts[index] = _BARE_URL.sub(_link, part)
    return "".join(parts)


def _link(match: re.Match[str]) -> str:
    url = match[0]
    trailing = _TRAILING.search(url)
    tail = trailing[0] if trailing else ""
    url = url[: len(url) - len(tail)]
    return f'<a href="{url}">{url}</a>{tail}'
