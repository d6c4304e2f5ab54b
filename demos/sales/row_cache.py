"""Rows of My demos: read as fingerprints, and rendered only when nothing kept matches.

A page of My demos has up to 45 rows. Loading each demo whole, with its template and owner, and
working out its buttons cost most of the page's time (11 of 16 ms of CPU on the benchmark's data
set), though from one view to the next almost nothing changes. So a list is first read as
*prints* (`RowPrint`): each row's id, state and the moments its times are written from, and a
fingerprint of everything it is rendered from: the demo's whole row, its template's whole row and
its owner's names, worked out by PostgreSQL (an md5 of the rows' text, like the status poll's
version), so a column added to any of them cannot leave a row stale.

Each rendered row is kept (`demos.fragments`, in this process and in Redis) under its
fingerprint and what else it shows:
- how the reader stands to the demo: whether they may act on it (its buttons) and whether it is
  shared with them ("Shared with you by ...");
- whether a prospect is in it now, read from Redis for the whole list at once;
- for a queued demo, why it waits and its place in the queue, which move as others start
  (worked out from the prints: `demos.engine.capacity.Queued`);
- how the list shows it: with owners or not, and the list's return address.

A row whose key is kept is filled in from its print alone; only the others are loaded (one query
for all of them) and rendered. A row whose prospect asked for more time is always loaded: when
the request cannot be granted, its badge links to the prospect's address, kept on the share
links, not in the rows the print covers. It is kept too, keyed by its badge.

What changes from one request to the next is left as holes, filled in per request: the reader's
CSRF token, and the times the row writes in words ("Ended 3 min 5 s ago", "Ends in 25 min 10 s"),
worked out now from the print (`RowTimes`). A kept row filled in is the same text as a row
rendered afresh, which the tests compare.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, QueryDict
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from demos.access import COLLEAGUE_MARK, can_act_on, is_colleague, shared_demo_ids
from demos.fragments import CSRF_PLACEHOLDER, Kept, hole
from demos.models import Demo, DemoTemplate, time_left
from demos.moments import ago
from demos.paging import Page, page_read
from demos.sales.panel import DemoRow, RowTimes

ROW_TEMPLATE = "demos/my_demos.html#demo_row"
# A kept row's times, each a hole filled with `RowTimes.of(print)`.
_TIME_HOLES = RowTimes(**{field.name: hole(field.name) for field in dataclasses.fields(RowTimes)})
# The columns a print reads before its fingerprint, in `RowPrint`'s order.
_PRINTED = (
    "pk", "status", "owner_id", "more_time_requested_at", "expires_at", "keep_until",
    "asleep_since", "ended_at", "requested_at",
    "template_id", "template__name", "template__max_concurrent",
)  # fmt: skip


class PrintedTemplate(NamedTuple):
    """What explaining a queued demo reads of its template (demos.engine.capacity.Queued)."""

    name: str
    max_concurrent: int | None


class RowPrint(NamedTuple):
    """One row of a list, as far as telling whether a kept row still shows it goes."""

    pk: int
    status: str
    owner_id: int | None
    more_time_requested_at: datetime | None
    expires_at: datetime | None
    keep_until: datetime | None
    asleep_since: datetime | None
    ended_at: datetime | None
    requested_at: datetime
    template_id: int
    template_name: str
    template_limit: int | None
    fingerprint: str
    # The reader's id when the demo is shared with them (demos.access.COLLEAGUE_MARK), so the
    # access rules answer for a print as for the demo.
    colleague_viewer_id: int | None = None

    @property
    def time_left(self) -> timedelta | None:
        return time_left(self.status, self.expires_at, self.keep_until)

    @property
    def template(self) -> PrintedTemplate:
        return PrintedTemplate(self.template_name, self.template_limit)

    @property
    def always_loaded(self) -> bool:
        """Whether the row shows what its own row does not say (see the module's docstring)."""
        return self.more_time_requested_at is not None


@cache
def _fingerprint_sql() -> str:
    """PostgreSQL's fingerprint of a list's demo: its row's text with its template's and its
    owner's names. Only quoted names from the models go into the text."""
    quote = connection.ops.quote_name
    demo, template, user = Demo._meta, DemoTemplate._meta, get_user_model()._meta
    outer = quote(demo.db_table)  # the list query's own name for its table
    names = ", ".join(
        f"u.{quote(user.get_field(name).column)}"
        for name in (user.model.USERNAME_FIELD, "first_name", "last_name")
    )
    template_id = f"{outer}.{quote(demo.get_field('template').column)}"
    template_row = (
        f"(SELECT t::text FROM {quote(template.db_table)} t"  # noqa: S608
        f" WHERE t.{quote(template.pk.column)} = {template_id})"
    )
    owner_names = (
        f"(SELECT concat_ws('|', {names}) FROM {quote(user.db_table)} u"  # noqa: S608
        f" WHERE u.{quote(user.pk.column)} = {outer}.{quote(demo.get_field('owner').column)})"
    )
    return (
        f"md5({outer}::text || '|' || COALESCE({template_row}, '')"
        f" || '|' || COALESCE({owner_names}, ''))"
    )


@cache
def _fingerprinted_columns() -> tuple[str, ...]:
    """Elsewhere than on PostgreSQL, the columns fingerprinted here instead: the demo's, its
    template's and its owner's names."""
    user = get_user_model()
    return (
        *(field.attname for field in Demo._meta.concrete_fields),
        *(f"template__{field.attname}" for field in DemoTemplate._meta.concrete_fields),
        *(f"owner__{name}" for name in (user.USERNAME_FIELD, "first_name", "last_name")),
    )


def printed(queryset: QuerySet[Demo]) -> QuerySet[Any]:
    """`queryset` (as `demos_visible_to` gives it) read as prints, for `print_page`: chosen once
    for a whole list, so each of its sections only adds a filter and an order. Choosing the
    columns and the fingerprint had been a third of the ORM's work for each section."""
    marked = COLLEAGUE_MARK in queryset.query.annotations
    extra: tuple[str, ...] = (COLLEAGUE_MARK,) if marked else ()
    if connection.vendor == "postgresql":
        # Names from the models only, no parameter (_fingerprint_sql).
        fingerprint = RawSQL(_fingerprint_sql(), ())  # noqa: S611
        queryset = queryset.annotate(row_fingerprint=fingerprint)
        columns: tuple[str, ...] = ("row_fingerprint",)
    else:
        columns = _fingerprinted_columns()
    return queryset.values_list(*_PRINTED, *extra, *columns)


def print_page(
    read: Callable[[int, int], list[tuple[Any, ...]]],
    user: Any,
    *,
    marked: bool,
    params: QueryDict,
    param: str,
    size: int,
) -> Page[RowPrint]:
    """The page of prints that `params[param]` asks for, its rows (as `printed` chooses them,
    with `COLLEAGUE_MARK` when `marked`) read by `read(start, count)`: one query that builds no
    demo."""
    page = page_read(read, params, param, size)
    shared = set() if marked else shared_demo_ids(user)
    result = []
    for row in page:
        head, rest = row[: len(_PRINTED)], row[len(_PRINTED) :]
        colleague = rest[0] == user.pk if marked else head[0] in shared
        fingerprinted = rest[1:] if marked else rest
        fingerprint = fingerprinted[0] if len(fingerprinted) == 1 else _hashed(fingerprinted)
        result.append(RowPrint(*head, fingerprint, user.pk if colleague else None))
    return dataclasses.replace(page, items=result)


def _hashed(values: Sequence[object]) -> str:
    return hashlib.blake2b(repr(tuple(values)).encode(), digest_size=16).hexdigest()


class Listing:
    """The rows of one list for one reader: kept ones found first, the rest loaded and rendered.

    listing = Listing(request, prints, present=..., notes=..., show_owner=..., next_url=...)
    demos = load(listing.to_load)       # one query, only when some row is not kept
    html = listing.rendered(row(demo) for demo in demos)    # by demo id
    """

    def __init__(
        self,
        request: HttpRequest,
        prints: Sequence[RowPrint],
        *,
        present: Iterable[int],
        notes: Mapping[int, str],
        show_owner: bool,
        next_url: str,
    ) -> None:
        self._kept = Kept(request)
        self._prints = prints
        self._show = (show_owner, next_url)
        user, present = request.user, set(present)
        self._keys = {
            print_.pk: (
                "my-demos-row",
                print_.fingerprint,
                # How the reader stands to the demo: its buttons, and "Shared with you".
                can_act_on(user, print_),
                print_.owner_id not in (None, user.pk) and is_colleague(user, print_),
                print_.pk in present,
                notes.get(print_.pk, ""),
                show_owner,
                next_url,
            )
            for print_ in prints
        }
        self._always_loaded = {p.pk: p.always_loaded for p in prints}
        kept = [p.pk for p in prints if not p.always_loaded]
        found = self._kept.find([self._keys[pk] for pk in kept])
        self._texts = {pk: text for pk, text in zip(kept, found, strict=True) if text is not None}

    @property
    def to_load(self) -> list[int]:
        """The demos whose rows must be worked out: not kept, or always loaded."""
        return [p.pk for p in self._prints if p.pk not in self._texts]

    def rendered(self, rows: Iterable[DemoRow]) -> dict[int, SafeString]:
        """Each row's HTML by demo id, given the rows of the demos `to_load`. A demo gone since
        its print was read has none."""
        keyed = [(self._key_of(row), row) for row in rows]
        # Rows loaded only because they were not kept were looked for already.
        again = [i for i, (_key, row) in enumerate(keyed) if self._always_loaded[row.demo.pk]]
        found: list[str | None] = [None] * len(keyed)
        for index, text in zip(again, self._kept.find([keyed[i][0] for i in again]), strict=True):
            found[index] = text
        fills = {p.pk: p for p in self._prints}
        rendered = []
        for (key, row), text in zip(keyed, found, strict=True):
            if text is None:
                text = _render(row, *self._show)
                rendered.append((key, text))
            self._texts[row.demo.pk] = text
            fills[row.demo.pk] = row.demo  # its times as loaded, with its text
        self._kept.keep(rendered)
        return {
            pk: self._kept.fill(text, vars(RowTimes.of(fills[pk])))
            for pk, text in self._texts.items()
        }

    def _key_of(self, row: DemoRow) -> tuple[object, ...]:
        key = self._keys[row.demo.pk]
        if not self._always_loaded[row.demo.pk]:
            return key
        # Its badge, and the one time it writes outside its holes (the badge's "asked 2 min
        # ago" is the demo page's too).
        asked = ago(row.more_time.asked_at) if row.more_time else ""
        return (*key, row.more_time, asked)


def _render(row: DemoRow, show_owner: bool, next_url: str) -> str:
    context = {
        "row": row,
        "show_owner": show_owner,
        "next_url": next_url,
        "csrf_token": CSRF_PLACEHOLDER,
        "times": _TIME_HOLES,
    }
    return render_to_string(ROW_TEMPLATE, context)
