"""Rows of My demos, rendered once and kept in each process while nothing they show changes.

A page of My demos has up to 45 rows, and rendering a row with its quick-action forms costs
about half a millisecond of template work: most of the page's time. Each process keeps the rows
it rendered in its memory (the "fragments" cache, as the catalog's cards), keyed by everything a
row shows:

- every column of the demo, its template's name, icon and last edit, and its owner's name where
  the list shows owners, all read from what the page loaded (no query);
- what the page worked out for the row: its actions and their labels, the prospect's presence, a
  request for more time, "Start again", "Shared with you";
- the list's return address.

What changes from one request to the next is left as holes in a kept row, filled in per request:
the reader's CSRF token (which must never reach anyone else), and the times the row writes in
words ("Ended 3 min 5 s ago", "Ends in 25 min 10 s"), worked out now (`RowTimes`). A kept row
filled in is the same text as a row rendered afresh, which the tests compare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

from django.core.cache import caches
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from demos.models import Demo
from demos.sales.panel import DemoRow, RowTimes
from demos.templatetags.demo_ui import ago

ROW_TEMPLATE = "demos/my_demos.html#demo_row"
# The key says everything a row shows, so a kept row is never stale: this only frees memory.
KEEP_SECONDS = 600
# What a kept row's forms carry instead of the reader's CSRF token, and the field it is swapped
# for. The whole field is matched: text a person typed (a prospect's company) is escaped, so it
# can never produce its quotes and brackets.
_PLACEHOLDER = "csrf-placeholder"


def _csrf_field(value: str) -> str:
    """The hidden field Django's `{% csrf_token %}` writes."""
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', value)


# A kept row's times: HTML comments, which no escaped text (a prospect's company) can produce.
_TIME_HOLES = RowTimes(
    **{name: mark_safe(f"<!--{name}-->") for name in RowTimes.__dataclass_fields__}  # noqa: S308
)


@cache
def _columns() -> tuple[str, ...]:
    """The demo's columns a row may show: all of them but the JSON ones, which are frozen at
    start (the spec) or are not shown in lists (progress, addresses, warnings sent)."""
    return tuple(
        field.attname
        for field in Demo._meta.concrete_fields
        if field.get_internal_type() != "JSONField"
    )


def _key(row: DemoRow, show_owner: bool, next_url: str) -> str:
    """Everything `row` shows but its holes, as a cache key."""
    demo = row.demo
    # A deferred column is absent from the instance's dict: None here, never a query.
    values = tuple(map(demo.__dict__.get, _columns()))
    template = demo.template
    owner = demo.owner if show_owner else None
    shown = (
        values,
        (template.pk, template.name, template.icon, template.updated_at),
        (owner.pk, owner.get_username(), owner.get_full_name()) if owner else None,
        tuple(row.actions),
        row.prospect_present,
        row.queue_note,
        row.shared_by,
        row.more_time,
        row.again,
        show_owner,
        next_url,
        # The one time a row writes outside its own markup (the badge is the demo page's too).
        ago(row.more_time.asked_at) if row.more_time else "",
    )
    return "my-demos-row:" + hashlib.blake2b(repr(shown).encode(), digest_size=20).hexdigest()


def _render(row: DemoRow, show_owner: bool, next_url: str) -> str:
    context = {
        "row": row,
        "show_owner": show_owner,
        "next_url": next_url,
        "csrf_token": _PLACEHOLDER,
        "times": _TIME_HOLES,
    }
    return render_to_string(ROW_TEMPLATE, context)


def rendered_rows(
    request: HttpRequest, rows: Sequence[DemoRow], *, show_owner: bool, next_url: str
) -> list[SafeString]:
    """The HTML of each of `rows`, as the list's `demo_row` partial renders it for `request`."""
    holes = _csrf_field(_PLACEHOLDER)
    field = _csrf_field(get_token(request))
    kept = caches["fragments"]
    keys = [_key(row, show_owner, next_url) for row in rows]
    found = kept.get_many(keys)
    html = []
    for row, key in zip(rows, keys, strict=True):
        text = found.get(key)
        if text is None:
            text = _render(row, show_owner, next_url)
            kept.set(key, text, KEEP_SECONDS)
        text = text.replace(holes, field)
        times = RowTimes.of(row.demo)
        for name, hole in vars(_TIME_HOLES).items():
            text = text.replace(hole, escape(getattr(times, name)))
        html.append(mark_safe(text))  # noqa: S308 (rendered here, its holes filled escaped)
    return html
