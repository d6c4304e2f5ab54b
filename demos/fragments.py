"""Rendered HTML kept in each process's memory, with holes for what changes per request.

Lists and the catalog repeat the same markup on every view: a row of My demos, a catalog card.
Each is rendered once and kept in the "fragments" cache (local memory: no round trip, nothing
lost when Redis is away), keyed by everything it shows, so a kept fragment is never stale.

What differs from one request to the next is left as a hole and filled in per request, escaped:
a time written in words, a form's one-time token, and the reader's CSRF token, which must never
reach anyone else. Holes are HTML comments (or, for the CSRF token, Django's whole hidden
field), which no escaped text a person typed can produce.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from django.core.cache import caches
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# Everything a key says is in the key, so keeping a fragment longer never serves it stale: this
# only frees the memory of fragments nobody asks for any more.
KEEP_SECONDS = 600
# What a kept fragment's forms carry instead of the reader's CSRF token (as `csrf_token` in its
# context); the whole field it makes is swapped for the reader's.
CSRF_PLACEHOLDER = "csrf-placeholder"


def hole(name: str) -> SafeString:
    """Where `name` goes in a kept fragment: pass it to the template in the value's place."""
    return mark_safe(f"<!--hole:{name}-->")  # noqa: S308 (a constant comment)


def _csrf_field(value: str) -> str:
    """The hidden field Django's `{% csrf_token %}` writes."""
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', value)


def _cache_key(shows: object) -> str:
    return "fragment:" + hashlib.blake2b(repr(shows).encode(), digest_size=20).hexdigest()


class Kept:
    """The fragments of one response, filled in for its reader."""

    def __init__(self, request: HttpRequest) -> None:
        self._csrf = (_csrf_field(CSRF_PLACEHOLDER), _csrf_field(get_token(request)))

    def many(
        self, items: list[tuple[object, Callable[[], str], Mapping[str, str]]]
    ) -> list[SafeString]:
        """For each (what it shows, how to render it, its holes' values): the fragment, kept
        or rendered now. `what it shows` must name everything the rendering reads but the
        holes (its `repr` is the key)."""
        store = caches["fragments"]
        keys = [_cache_key(shows) for shows, _render, _fills in items]
        found = store.get_many(keys)
        html = []
        for key, (_shows, render, fills) in zip(keys, items, strict=True):
            text = found.get(key)
            if text is None:
                text = render()
                store.set(key, text, KEEP_SECONDS)
            html.append(self._filled(text, fills))
        return html

    def one(self, shows: object, render: Callable[[], str], fills: Mapping[str, str]) -> SafeString:
        return self.many([(shows, render, fills)])[0]

    def _filled(self, text: str, fills: Mapping[str, str]) -> SafeString:
        text = text.replace(*self._csrf)
        for name, value in fills.items():
            text = text.replace(hole(name), escape(value))
        return mark_safe(text)  # noqa: S308 (rendered by a template, its holes filled escaped)
