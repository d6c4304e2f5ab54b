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

import functools
import hashlib
import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from django.conf import settings
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
    key = hashlib.blake2b(repr(shows).encode(), digest_size=20).hexdigest()
    return f"fragment:{release()}:{key}"


def digest_of(files: Iterable[Path]) -> str:
    """A short digest of the files' names and contents."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(files):
        digest.update(path.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def release() -> str:
    """What this release renders fragments with: the project's templates and code, and the
    names its static files are served under. Part of every key: a fragment says what it shows,
    but not in which markup, so without it a release would take from Redis the fragments its
    predecessor rendered, with markup (and hashed asset names) that are no longer served."""
    root = Path(settings.BASE_DIR)
    files = [
        *(root / "templates").rglob("*.html"),
        *(path for package in ("demos", "portal") for path in (root / package).rglob("*.py")),
    ]
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    return digest_of([*files, manifest] if manifest.is_file() else files)


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
        keys = [_cache_key(shows) for shows, _render, _fills in items]
        found = self._found(keys)
        rendered = {}
        for key, (_shows, render, _fills) in zip(keys, items, strict=True):
            if key not in found:  # the same fragment twice in one response is rendered once
                found[key] = rendered[key] = render()
        self._keep(rendered)
        return [self.fill(found[key], fills) for key, (*_, fills) in zip(keys, items, strict=True)]

    def find(self, shows: Sequence[object]) -> list[str | None]:
        """The kept text of each fragment named by what it shows (holes unfilled), or None."""
        keys = [_cache_key(each) for each in shows]
        found = self._found(keys)
        return [found.get(key) for key in keys]

    def keep(self, rendered: Sequence[tuple[object, str]]) -> None:
        """Keep each (what it shows, its text with holes unfilled) for later responses."""
        self._keep({_cache_key(shows): text for shows, text in rendered})

    def _found(self, keys: list[str]) -> dict[str, str]:
        """The kept texts of `keys`: this process's first, then, in one round trip for all it
        lacks, those another process rendered."""
        local, shared = caches["fragments"], caches["shared_fragments"]
        found = local.get_many(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            from_shared = shared.get_many(missing)
            local.set_many(from_shared, KEEP_SECONDS)
            found.update(from_shared)
        return found

    def _keep(self, texts: dict[str, str]) -> None:
        if texts:
            caches["fragments"].set_many(texts, KEEP_SECONDS)
            caches["shared_fragments"].set_many(texts, KEEP_SECONDS)

    def fill(self, text: str, fills: Mapping[str, str]) -> SafeString:
        """`text` with its holes filled: `fills` by name, escaped, and the reader's CSRF field."""

        # One pass with a lookup per hole: a row has a handful of holes in 2 kB of markup, and
        # a replace per hole (with Django's lazy-aware escape) cost more than the rest of it.
        def fill(found: re.Match[str]) -> str:
            name = found.group(1)
            if name is None:
                return self._csrf
            return html.escape(str(fills[name])) if name in fills else found.group(0)

        return mark_safe(_HOLES.sub(fill, text))  # noqa: S308 (a template's, holes escaped)
