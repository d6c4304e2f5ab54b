"""Rendered HTML kept in each process's memory, with holes for what changes per request.

Lists and the catalog repeat the same markup on every view: a row of My demos, a catalog card.
Each is rendered once and kept in the "fragments" cache (local memory: no round trip, nothing
lost when Redis is away) and in "shared_fragments" (Redis), where the other processes, and a
worker started afresh, find it; keyed by everything it shows, so a kept fragment is never stale.

What differs from one request to the next is left as a hole and filled in per request, escaped:
a time written in words, a form's one-time token, and the reader's CSRF token, which must never
reach anyone else. Holes are HTML comments (or, for the CSRF token, Django's whole hidden
field), which no escaped text a person typed can produce.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Mapping

from django.core.cache import caches
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

# Everything a key says is in the key, so keeping a fragment longer never serves it stale: this
# only frees the memory of fragments nobody asks for any more.
KEEP_SECONDS = 600
# What a kept fragment's forms carry instead of the reader's CSRF token (as `csrf_token` in its
# context); the whole field it makes is swapped for the reader's.
CSRF_PLACEHOLDER = "csrf-placeholder"
_HOLE = "<!--hole:{}-->"


def hole(name: str) -> SafeString:
    """Where `name` goes in a kept fragment: pass it to the template in the value's place."""
    return mark_safe(_HOLE.format(name))  # noqa: S308 (a constant comment)


def _csrf_field(value: str) -> str:
    """The hidden field Django's `{% csrf_token %}` writes."""
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', value)


def _cache_key(shows: object) -> str:
    return "fragment:" + hashlib.blake2b(repr(shows).encode(), digest_size=20).hexdigest()


# Every hole, and the placeholder CSRF field: found in one pass over a fragment.
_HOLES = re.compile(
    re.escape(_HOLE).replace(r"\{\}", r"([a-z_]+)") + "|" + re.escape(_csrf_field(CSRF_PLACEHOLDER))
)


class Kept:
    """The fragments of one response, filled in for its reader."""

    def __init__(self, request: HttpRequest) -> None:
        self._csrf = _csrf_field(get_token(request))

    def many(
        self, items: list[tuple[object, Callable[[], str], Mapping[str, str]]]
    ) -> list[SafeString]:
        """For each (what it shows, how to render it, its holes' values): the fragment, kept
        or rendered now. `what it shows` must name everything the rendering reads but the
        holes (its `repr` is the key)."""
        local, shared = caches["fragments"], caches["shared_fragments"]
        keys = [_cache_key(shows) for shows, _render, _fills in items]
        found = local.get_many(keys)
        missing = [key for key in keys if key not in found]
        if missing:  # another process may have rendered them: one round trip for all
            from_shared = shared.get_many(missing)
            local.set_many(from_shared, KEEP_SECONDS)
            found.update(from_shared)
        pieces, rendered = [], {}
        for key, (_shows, render, fills) in zip(keys, items, strict=True):
            text = found.get(key)
            if text is None:
                text = found[key] = rendered[key] = render()
            pieces.append(self._filled(text, fills))
        if rendered:
            local.set_many(rendered, KEEP_SECONDS)
            shared.set_many(rendered, KEEP_SECONDS)
        return pieces

    def one(self, shows: object, render: Callable[[], str], fills: Mapping[str, str]) -> SafeString:
        return self.many([(shows, render, fills)])[0]

    def _filled(self, text: str, fills: Mapping[str, str]) -> SafeString:
        # One pass with a lookup per hole: a row has a handful of holes in 2 kB of markup, and
        # a replace per hole (with Django's lazy-aware escape) cost more than the rest of it.
        def fill(found: re.Match[str]) -> str:
            name = found.group(1)
            if name is None:
                return self._csrf
            return html.escape(str(fills[name])) if name in fills else found.group(0)

        return mark_safe(_HOLES.sub(fill, text))  # noqa: S308 (a template's, holes escaped)
