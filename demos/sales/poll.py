"""Whether a status poll has anything new to show, answered with one small query.

The demo page polls every two seconds for as long as a demo is starting, and most polls find
nothing new. Such a poll carries the version of the panel it shows (`v`), and when the version
is still current it gets "204 No Content", which htmx leaves alone, without the demo being
loaded or anything rendered.

The version is a fingerprint of the demo's whole row, its template's `updated_at`, its newest
event and its place in the queue: everything the panel is rendered from, derived from the models
rather than listed by hand, so a column added to the panel (or a template edit) cannot leave open
pages stale. A column that changes without changing the panel costs one render, no more.
Durations that only tick (how long the demo has been starting, how long its current step has
taken) are counted on by the browser, so time passing alone does not change the panel.

PostgreSQL works the fingerprint out itself (an md5 of the row's text), so only the columns the
access check needs and 32 characters travel; on SQLite the columns are hashed here.

It is read with one raw query (a second one only while the demo is queued, for its place), so
the ORM is bypassed here on purpose: building the query costs several times what running it does
(0.75 against 0.2 ms on a 2-core machine), and this query runs for every open demo page every two
seconds. Its result is only compared with itself, never shown, so the database's own
representation of each column is as good as the model's. The query is also the request's check
that its kept database connection still works (`_fetch`), so a poll is one round trip, not two.
"""

from __future__ import annotations

import functools
import hashlib
import json
import weakref
from typing import Any, NamedTuple
from uuid import UUID

from django.db import InterfaceError, OperationalError, connection

from demos.engine.capacity import queue_position
from demos.models import SETTLED, Demo, DemoEvent, DemoTemplate, Status


class PanelState(NamedTuple):
    """What access checks and the version need, under the attribute names `can_see` reads."""

    pk: int
    owner_id: int | None
    is_spare: bool
    status: str
    version: str
    # The reader's id when they are one of the demo's colleagues (demos.access.COLLEAGUE_MARK),
    # read in the same query, so a colleague's poll costs what the owner's does.
    colleague_viewer_id: int | None = None

    def unchanged_since(self, version: str) -> bool:
        """Whether a panel of `version` is still what the demo looks like. A settled demo is
        always sent again: its answer is the one that stops the polling."""
        return bool(version) and version == self.version and self.status not in SETTLED


# What the access check reads, in this order, ahead of the fingerprint's parts.
_ACCESS = ("id", "owner_id", "is_spare", "status")


@functools.cache
def _state_sql() -> str:
    """The query: the access columns, what the version fingerprints, and whether the reader is a
    colleague. PostgreSQL fingerprints the row itself (md5 of its text), so the poll moves 32
    characters instead of the whole row and decodes none of its JSON; SQLite sends the columns,
    hashed here."""
    quote = connection.ops.quote_name
    demo, template, event = Demo._meta, DemoTemplate._meta, DemoEvent._meta
    team = Demo.colleagues.through._meta
    access = ", ".join(f"d.{quote(demo.get_field(name).column)}" for name in _ACCESS)
    updated_at = f"t.{quote(template.get_field('updated_at').column)}"
    newest_event = (
        f"(SELECT MAX(e.{quote(event.pk.column)}) FROM {quote(event.db_table)} e"  # noqa: S608
        f" WHERE e.{quote(event.get_field('demo').column)} = d.{quote(demo.pk.column)})"
    )
    if connection.vendor == "postgresql":
        # The row's text form names every column, whatever columns the model gains.
        fingerprint = (
            f"md5(d::text || '|' || {updated_at}::text || '|'"
            f" || COALESCE({newest_event}::text, ''))"
        )
    else:
        columns = ", ".join(f"d.{quote(field.column)}" for field in demo.concrete_fields)
        fingerprint = f"{columns}, {updated_at}, {newest_event}"
    # Only quoted table and column names from the models go into the text; the reader's id and
    # the demo's are parameters.
    return (
        f"SELECT {access}, {fingerprint},"  # noqa: S608
        f" EXISTS (SELECT 1 FROM {quote(team.db_table)} c"
        f"  WHERE c.{quote(team.get_field('demo').column)} = d.{quote(demo.pk.column)}"
        f"  AND c.{quote(team.get_field('user').column)} = %s)"
        f" FROM {quote(demo.db_table)} d"
        f" JOIN {quote(template.db_table)} t"
        f"  ON t.{quote(template.pk.column)} = d.{quote(demo.get_field('template').column)}"
        f" WHERE d.{quote(demo.get_field('public_id').column)} = %s"
    )


# The name the query is prepared under on each PostgreSQL connection, and the connections (the
# driver's own, so a reconnection prepares again) that have it.
_PREPARED_NAME = "demos_panel_state"
_prepared_on: weakref.WeakSet[Any] = weakref.WeakSet()


def _statement() -> str:
    """What to execute: on PostgreSQL, over connections kept between requests, the query
    prepared once per connection, since planning it cost twice what running it does (0.18
    against 0.08 ms) and it runs every two seconds for each open page; otherwise the query.

    The preparing goes straight to the driver's connection, as Django's own connection setup
    does, so a poll is still one query wherever queries are counted. A prepared statement lives
    as long as its connection (a rolled-back transaction keeps it; PostgreSQL plans it again
    after a migration). Connections opened per request (`DATABASE_CONN_MAX_AGE=0`, as behind
    PgBouncer, whose transaction pooling would hand the next query another server connection)
    gain nothing from it and run the query as it is.
    """
    if connection.vendor != "postgresql" or connection.settings_dict.get("CONN_MAX_AGE") == 0:
        return _state_sql()
    connection.ensure_connection()
    raw = connection.connection
    if raw not in _prepared_on:
        placeholders = _state_sql().split("%s")
        numbered = "".join(f"{part}${n}" for n, part in enumerate(placeholders[:-1], start=1))
        with connection.wrap_database_errors:
            raw.execute(f"PREPARE {_PREPARED_NAME} (bigint, uuid) AS {numbered}{placeholders[-1]}")
        _prepared_on.add(raw)
    return f"EXECUTE {_PREPARED_NAME}(%s, %s)"


def _fetch(params: list[Any]) -> tuple[Any, ...] | None:
    """The query's one row, in one round trip to the database.

    Django checks a kept connection with a round trip of its own ("SELECT 1") before a
    request's first query, in case the server dropped it. The poll's query tells as much, so it
    stands in for that check: a poll that finds its connection dropped asks again, once, on a
    new one (where the statement is prepared again). The check's round trip was a quarter of
    what the poll's query cost the web process (0.12 of 0.49 ms). Inside a transaction nothing
    is asked again, and Django's own rules hold.
    """
    retry = not connection.in_atomic_block
    if retry:
        connection.health_check_done = True
    try:
        return _execute(params)
    except (OperationalError, InterfaceError):
        if not retry or connection.is_usable():
            raise  # not a dropped connection
        connection.close()
        return _execute(params)


def _execute(params: list[Any]) -> tuple[Any, ...] | None:
    statement = _statement()
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


def panel_state(public_id: UUID, reader_id: int | None = None) -> PanelState | None:
    """The demo's panel version now, or None when there is no such demo. `reader_id`: who asks,
    to learn in the same query whether they are one of its colleagues."""
    column = Demo._meta.get_field("public_id").get_db_prep_value(public_id, connection)
    found = _fetch([reader_id, column])
    if found is None:
        return None
    # Who reads the panel is not part of what it shows: the version leaves it out.
    pk, owner_id, is_spare, status, *fingerprint, reader_is_colleague = found
    position = None
    if status == Status.QUEUED:  # others ahead of it leaving moves it up: that is news too
        queued = Demo.objects.only("status", "requested_at").get(pk=pk)
        position = queue_position(queued)
    blob = json.dumps([*fingerprint, position], sort_keys=True, default=str)
    version = hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()
    return PanelState(
        pk,
        owner_id,
        bool(is_spare),
        status,
        version,
        reader_id if reader_is_colleague else None,
    )
