"""Rows of My demos, rendered once and kept in each process while nothing they show changes.

A page of My demos has up to 45 rows, and rendering a row with its quick-action forms costs
about half a millisecond of template work: most of the page's time. Each process keeps the rows
it rendered (`demos.fragments`), keyed by everything a row shows:

- every column of the demo, its template's name, icon and last edit, and its owner's name where
  the list shows owners, all read from what the page loaded (no query);
- what the page worked out for the row: its actions and their labels, the prospect's presence, a
  request for more time, "Start again", "Shared with you";
- the list's return address.

What changes from one request to the next is left as holes, filled in per request: the reader's
CSRF token, and the times the row writes in words ("Ended 3 min 5 s ago", "Ends in 25 min 10 s"),
worked out now (`RowTimes`). A kept row filled in is the same text as a row rendered afresh,
which the tests compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from functools import cache, partial

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from demos.fragments import CSRF_PLACEHOLDER, Kept, hole
from demos.models import Demo
from demos.moments import ago
from demos.sales.panel import DemoRow, RowTimes

ROW_TEMPLATE = "demos/my_demos.html#demo_row"
# A kept row's times, each a hole filled with `RowTimes.of(demo)`.
_TIME_HOLES = RowTimes(**{field.name: hole(field.name) for field in fields(RowTimes)})


@cache
def _columns() -> tuple[str, ...]:
    """The demo's columns a row may show: all of them but the JSON ones, which are frozen at
    start (the spec) or are not shown in lists (progress, addresses, warnings sent)."""
    return tuple(
        field.attname
        for field in Demo._meta.concrete_fields
        if field.get_internal_type() != "JSONField"
    )


def _shows(row: DemoRow, show_owner: bool, next_url: str) -> tuple[object, ...]:
    """Everything `row` shows but its holes."""
    demo = row.demo
    # A deferred column is absent from the instance's dict: None here, never a query.
    values = tuple(map(demo.__dict__.get, _columns()))
    template = demo.template
    owner = demo.owner if show_owner else None
    return (
        "my-demos-row",
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


def _render(row: DemoRow, show_owner: bool, next_url: str) -> str:
    context = {
        "row": row,
        "show_owner": show_owner,
        "next_url": next_url,
        "csrf_token": CSRF_PLACEHOLDER,
        "times": _TIME_HOLES,
    }
    return render_to_string(ROW_TEMPLATE, context)


def rendered_rows(
    request: HttpRequest, rows: Sequence[DemoRow], *, show_owner: bool, next_url: str
) -> list[SafeString]:
    """The HTML of each of `rows`, as the list's `demo_row` partial renders it for `request`."""
    return Kept(request).many(
        [
            (
                _shows(row, show_owner, next_url),
                partial(_render, row, show_owner, next_url),
                vars(RowTimes.of(row.demo)),
            )
            for row in rows
        ]
    )
