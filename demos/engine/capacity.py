"""How many demos may run at once: per salesperson, per template and in total.

Admission (deciding that a demo may start) runs under one lock so two starts at the same moment
cannot both take the last slot: PostgreSQL's transaction-scoped advisory lock, or on SQLite the
write lock every IMMEDIATE transaction already takes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache, cached_property
from typing import Any, NamedTuple, Protocol

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Count, Func, IntegerField, Q, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from demos.errors import LifecycleError
from demos.models import ACTIVE, Demo, Status
from demos.written_once import Written, id_list, in_id_list

ADMISSION_LOCK = 7_242_001


class CapacityError(LifecycleError):
    pass


def lock_admission() -> None:
    """Serialise admission decisions until the current transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADMISSION_LOCK])


def _active() -> Any:
    return Demo.objects.filter(status__in=ACTIVE)


@dataclass
class Occupancy:
    """The demos holding capacity now, counted once: in total, per template (people's demos
    only: warm spares count only towards the total) and per owner.

    Admission decides for a whole batch of queued demos from one count, taking each admitted
    demo into account itself (`take`), instead of counting again for every demo while every
    other admission waits for the lock.
    """

    total: int = 0
    per_template: Counter[int] = field(default_factory=Counter)
    per_owner: Counter[int] = field(default_factory=Counter)

    @classmethod
    def counted(cls, *, excluding: int | None = None) -> Occupancy:
        """Counted with one query (one row per template, owner and kind of demo), without the
        demo `excluding` when given. Call it under `lock_admission`."""
        active = _active()
        if excluding is not None:
            active = active.exclude(pk=excluding)
        groups = (
            active.order_by()  # the model's ordering would split the groups
            .values_list("template_id", "owner_id", "is_spare")
            .annotate(demos=Count("pk"))
        )
        occupancy = cls()
        for template_id, owner_id, is_spare, demos in groups:
            occupancy.total += demos
            if not is_spare:
                occupancy.per_template[template_id] += demos
            if owner_id is not None:
                occupancy.per_owner[owner_id] += demos
        return occupancy

    @property
    def full(self) -> bool:
        return self.total >= settings.DEMO_MAX_ACTIVE_TOTAL

    def has_room_for(self, demo: Demo) -> bool:
        """The rules of `has_room_for`, on these counts. `demo.template` must be loaded."""
        if self.full:
            return False
        limit = demo.template.max_concurrent
        if limit and self.per_template[demo.template_id] >= limit:
            return False
        owner = demo.owner_id
        return owner is None or self.per_owner[owner] < settings.DEMO_MAX_ACTIVE_PER_USER

    def take(self, demo: Demo) -> None:
        """Count `demo` as admitted."""
        self.total += 1
        if not demo.is_spare:
            self.per_template[demo.template_id] += 1
        if demo.owner_id is not None:
            self.per_owner[demo.owner_id] += 1


def has_room_for(demo: Demo) -> bool:
    """Whether `demo` may start now, besides the demos already active: the total counts every
    active demo, the template's limit only people's demos, the owner's limit their own."""
    return Occupancy.counted(excluding=demo.pk).has_room_for(demo)


def template_has_room(template: Any, exclude: int | None = None) -> bool:
    """Per-template limit on demos people use (warm spares count only globally)."""
    if not template.max_concurrent:
        return True
    active = _active().filter(template=template, is_spare=False)
    if exclude is not None:
        active = active.exclude(pk=exclude)
    return active.count() < template.max_concurrent


def owner_has_room(owner: Any, exclude: int | None = None) -> bool:
    active = _active().filter(owner=owner)
    if exclude is not None:
        active = active.exclude(pk=exclude)
    return active.count() < settings.DEMO_MAX_ACTIVE_PER_USER


def check_user_limit(owner: Any) -> None:
    """A salesperson may queue as many demos as they may run, and no more.

    Call it under `lock_admission`, in the transaction that queues the demo: checked outside,
    parallel starts each see room for one more and all queue.
    """
    limit = settings.DEMO_MAX_ACTIVE_PER_USER
    queued = Demo.objects.filter(owner=owner, status=Status.QUEUED).count()
    if queued >= limit:
        raise CapacityError(
            f"You already have {queued} demos waiting for capacity. Delete one of them, or wait "
            "until they start."
        )


def queue_position(demo: Demo) -> int | None:
    if demo.status != Status.QUEUED:
        return None
    return Demo.objects.filter(status=Status.QUEUED, requested_at__lt=demo.requested_at).count() + 1


def usage() -> dict[str, int]:
    """Demos occupying capacity and demos waiting for it, counted in one query."""
    counts = Demo.objects.filter(status__in=[*ACTIVE, Status.QUEUED]).aggregate(
        active=Count("pk", filter=Q(status__in=ACTIVE)),
        queued=Count("pk", filter=Q(status=Status.QUEUED)),
    )
    return {**counts, "limit": settings.DEMO_MAX_ACTIVE_TOTAL}


def request_admission() -> None:
    """Ask a worker to start queued demos now that room may have freed up."""
    if Demo.objects.filter(status=Status.QUEUED).exists():
        from demos.engine import dispatch

        dispatch.enqueue_maintenance("admit", "admit-queued")


# --- What pages show of capacity (read-only: admission never reads these) ----------------------


@dataclass(frozen=True)
class Slots:
    """One person's demo slots, and whether the whole portal is full, as pages show them."""

    used: int
    limit: int
    portal_full: bool

    @property
    def full(self) -> bool:
        return self.used >= self.limit


class QueueCause(StrEnum):
    OWNER = "owner"
    PORTAL = "portal"
    TEMPLATE = "template"


@dataclass(frozen=True)
class QueueReason:
    """Why a queued demo waits, its place in the queue and about how long until it has room."""

    cause: QueueCause | None  # None: room has just freed up and admission has not run yet
    limit: int
    position: int
    # Until the running demo it waits for ends; None when no demo in its way has an end time.
    wait: timedelta | None


class LimitedTemplate(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def max_concurrent(self) -> int | None: ...


class Queued(Protocol):
    """What explaining a queued demo reads: a demo with its template loaded, or a list's print
    of one (demos.sales.row_cache)."""

    @property
    def pk(self) -> Any: ...
    @property
    def owner_id(self) -> int | None: ...
    @property
    def template_id(self) -> int: ...
    @property
    def template(self) -> LimitedTemplate: ...


# Tuples, not dataclasses: a picture holds one per running demo, thousands on a busy portal, and
# a page reads one each time it explains a queued demo.
class _Held(NamedTuple):
    owner_id: int | None
    template_id: int
    is_spare: bool
    ends_at: datetime | None  # ready demos only: the end of a starting or sleeping one moves


class _Waiting(NamedTuple):
    pk: int
    owner_id: int | None
    template_id: int


class _Ahead(NamedTuple):
    """How many queued demos are ahead of one: all of them, its owner's, its template's."""

    everyone: int
    same_owner: int
    same_template: int


@dataclass(frozen=True)
class CapacityPicture:
    """The demos holding capacity and those waiting for it, read with one query.

    Pages read it to show a person's slots and why each queued demo waits. It counts what
    `Occupancy` counts (the same states, warm spares only in the total), so the numbers people
    see are the ones admission goes by. A page explaining some queued demos reads only what can
    stand in their way, and their places in the queue counted by the database
    (`read(for_queued=...)`); the whole picture is for tests and tools.
    """

    held: list[_Held]  # all of them, or those that can stand in the way of the queued asked for
    # Every queued demo, oldest first (the order admission takes them in); none when only some
    # queued demos were asked about, whose places are then in `ahead`.
    waiting: list[_Waiting]
    now: datetime
    held_total: int  # every demo holding capacity, read or not
    complete: bool = True  # every held demo was read (not only those in some queued demo's way)
    ahead: dict[int, _Ahead] = field(default_factory=dict)  # the queued demos asked about

    @classmethod
    def read(cls, for_queued: Sequence[Queued] = (), reader: Any = None) -> CapacityPicture:
        """The picture, whole; or, given the queued demos a page explains (and whose slots it
        shows, `reader`), only the held demos that count for them: their owners' and the
        reader's, and those of their templates that have a limit. On a busy portal that is
        tens of rows instead of thousands, and their places in the queue are counted in the
        same query instead of reading every queued demo. When the portal is full, the ends of
        running demos are read apart, and only then (`_running_ends`)."""
        if for_queued:
            read = _read_some(for_queued, reader)
        else:
            rows = _holding_or_awaiting().order_by("requested_at", "pk")
            read = list(rows.values_list(*_COLUMNS, "held_total"))
        held, waiting, ahead = [], [], {}
        queued, ready = Status.QUEUED.value, Status.READY.value
        for pk, owner_id, template_id, is_spare, status, expires_at, *counts, _total in read:
            if status != queued:
                ends_at = _aware(expires_at) if status == ready and expires_at else None
                held.append(_Held(owner_id, template_id, bool(is_spare), ends_at))
            elif for_queued:
                ahead[pk] = _Ahead(*counts)
            else:
                waiting.append(_Waiting(pk, owner_id, template_id))
        # Every row carries the same count; no row means nothing holds or awaits capacity.
        total = read[0][-1] if read else 0
        return cls(held, waiting, timezone.now(), total, complete=not for_queued, ahead=ahead)

    @property
    def portal_full(self) -> bool:
        return self.held_total >= settings.DEMO_MAX_ACTIVE_TOTAL

    def slots_of(self, user: Any) -> Slots:
        return Slots(
            len(self._held_by_owner.get(user.pk, ())),
            settings.DEMO_MAX_ACTIVE_PER_USER,
            self.portal_full,
        )

    # The groupings below are made once per picture, on first use: a page that explains 25
    # queued demos asks them 25 times, and each pass over thousands of held demos costs.
    @cached_property
    def _held_by_owner(self) -> dict[int | None, list[_Held]]:
        return _group(self.held, lambda held: held.owner_id)

    @cached_property
    def _held_by_template(self) -> dict[int, list[_Held]]:
        return _group((h for h in self.held if not h.is_spare), lambda held: held.template_id)

    @cached_property
    def _running_ends(self) -> dict[int, datetime]:
        """When running demos end, by place, soonest first (0): what a queued demo waits for
        when the whole portal is full. A picture that read only some held demos reads, in one
        query from the index of running demos by end, only the places its queued demos wait
        for (the Nth end for a demo with N ahead of it), not every end before them."""
        if self.complete:
            return _soonest_first(self.held)
        places = sorted({ahead.everyone for ahead in self.ahead.values()})
        if not places:
            return {}
        sql, params = _ends_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, places[-1] + 1, id_list(places)])
            return {place: _aware(end) for place, end in cursor.fetchall()}

    @cached_property
    def _place(self) -> dict[int, int]:
        """Each waiting demo's index in the queue."""
        return {waiting.pk: index for index, waiting in enumerate(self.waiting)}

    def why_queued(self, demo: Queued) -> QueueReason | None:
        """Why `demo` waits, the person's own limit first (the one they can do something
        about). `demo.template` must be loaded. None when the demo is not in the queue."""
        ahead = self._ahead_of(demo)
        if ahead is None:
            return None
        position = ahead.everyone + 1
        if demo.owner_id is not None:
            mine = self._held_by_owner.get(demo.owner_id, [])
            limit = settings.DEMO_MAX_ACTIVE_PER_USER
            if len(mine) >= limit:
                wait = self._wait(_soonest_first(mine), ahead.same_owner)
                return QueueReason(QueueCause.OWNER, limit, position, wait)
        if self.portal_full:
            limit = settings.DEMO_MAX_ACTIVE_TOTAL
            wait = self._wait(self._running_ends, ahead.everyone)
            return QueueReason(QueueCause.PORTAL, limit, position, wait)
        limit = demo.template.max_concurrent
        same = self._held_by_template.get(demo.template_id, []) if limit else []
        if limit and len(same) >= limit:
            wait = self._wait(_soonest_first(same), ahead.same_template)
            return QueueReason(QueueCause.TEMPLATE, limit, position, wait)
        return QueueReason(None, 0, position, None)

    def _ahead_of(self, demo: Queued) -> _Ahead | None:
        """The queued demos ahead of `demo`: as counted by the database for a picture of some
        queued demos, or from the whole queue."""
        if not self.complete:
            return self.ahead.get(demo.pk)
        index = self._place.get(demo.pk)
        if index is None:
            return None
        before = self.waiting[:index]
        return _Ahead(
            index,
            sum(1 for w in before if w.owner_id == demo.owner_id),
            sum(1 for w in before if w.template_id == demo.template_id),
        )

    def _wait(self, ends: Mapping[int, datetime], waiting_too: int) -> timedelta | None:
        """Until the demo it waits for ends: the soonest of `ends` (the demos in its way, by
        place), after as many more as there are demos ahead of it waiting for the same room."""
        end = ends.get(waiting_too)
        return None if end is None else max(end - self.now, timedelta(0))


@cache
def _places_ahead_sql() -> dict[str, str]:
    """For a queued demo of the outer query, how many queued demos are ahead of it (requested
    earlier, or at the same moment with a smaller id): all of them, its owner's and its
    template's. Counted from the index of demos by status and request time; NULL for a row that
    is not queued. Only quoted names from the model go into the text."""
    quote = connection.ops.quote_name
    meta = Demo._meta
    table = quote(meta.db_table)  # the outer query's own name for its table

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    status, requested, pk = column("status"), column("requested_at"), quote(meta.pk.column)
    earlier = (
        f"q.{status} = %s AND (q.{requested} < {table}.{requested}"
        f" OR (q.{requested} = {table}.{requested} AND q.{pk} < {table}.{pk}))"
    )

    def count(same: str = "") -> str:
        also = f" AND q.{column(same)} = {table}.{column(same)}" if same else ""
        return (
            f"CASE WHEN {table}.{status} = %s THEN"  # noqa: S608
            f" (SELECT COUNT(*) FROM {table} q WHERE {earlier}{also}) END"
        )

    return {
        "ahead_of_it": count(),
        "ahead_of_owner": count("owner"),
        "ahead_of_template": count("template"),
    }


def _places_ahead() -> dict[str, RawSQL]:
    queued = Status.QUEUED.value
    # Names from the model only; the status is a parameter (_places_ahead_sql).
    return {
        name: RawSQL(sql, (queued, queued), output_field=IntegerField())  # noqa: S611
        for name, sql in _places_ahead_sql().items()
    }


_COLUMNS = ("pk", "owner_id", "template_id", "is_spare", "status", "expires_at")


def _holding_or_awaiting() -> Any:
    """The demos holding capacity or waiting for it, each with the count of those holding it."""
    return Demo.objects.filter(status__in=[*ACTIVE, Status.QUEUED]).annotate(
        held_total=Subquery(
            _active()
            .order_by()
            # COUNT(*), not of a column: read from the status index alone.
            .annotate(count=Func(template="COUNT(*)", output_field=IntegerField()))
            .values("count")
        )
    )


# Stand-ins for the three lists of ids in the query `_some_sql` writes; each is replaced by its
# list, as one parameter, when the query runs.
_DEMO_IDS, _OWNER_IDS, _TEMPLATE_IDS = object(), object(), object()


def _read_some(for_queued: Sequence[Queued], reader: Any) -> list[tuple[Any, ...]]:
    """The rows of a picture for some queued demos (see `CapacityPicture.read`): the demos
    themselves, those of their owners and the reader, and those of their limited templates."""
    owners = {demo.owner_id for demo in for_queued} | {getattr(reader, "pk", None)}
    lists = {
        _DEMO_IDS: [demo.pk for demo in for_queued],
        _OWNER_IDS: owners - {None},
        _TEMPLATE_IDS: {demo.template_id for demo in for_queued if demo.template.max_concurrent},
    }
    return _some_sql().rows({param: id_list(ids) for param, ids in lists.items()})


@cache
def _some_sql() -> Written:
    """The query of `_read_some`, written by the ORM once per process: writing it cost 3 ms of
    CPU on every view, answering it 0.2 ms. Each list of ids is one parameter (`in_id_list`),
    so the text is the same however many demos a page explains."""
    quote = connection.ops.quote_name
    meta = Demo._meta
    table = quote(meta.db_table)
    columns = (meta.pk.column, meta.get_field("owner").column, meta.get_field("template").column)
    either = " OR ".join(in_id_list(f"{table}.{quote(column)}") for column in columns)
    in_their_way = RawSQL(  # noqa: S611 - names from the model; the lists are parameters
        f"({either})", (_DEMO_IDS, _OWNER_IDS, _TEMPLATE_IDS), output_field=BooleanField()
    )
    rows = (
        _holding_or_awaiting()
        .filter(in_their_way)
        .annotate(**_places_ahead())
        .order_by("requested_at", "pk")
        .values_list(*_COLUMNS, *_places_ahead_sql(), "held_total")
    )
    return Written.of(rows)


@cache
def _ends_sql() -> tuple[str, tuple[Any, ...]]:
    """When the running demos end, numbered soonest first from 0: the text, and its parameters
    but the last two, which are how many to number and the places to keep (`in_id_list`).
    Written once per process, like `_some_sql`."""
    soonest = (
        Demo.objects.filter(status=Status.READY, expires_at__isnull=False)
        .order_by("expires_at")
        .values("expires_at")
    )
    sql, params = soonest.query.sql_with_params()
    numbered = (
        f"SELECT place, expires_at FROM (SELECT expires_at,"  # noqa: S608 - the ORM's SQL
        f" ROW_NUMBER() OVER (ORDER BY expires_at) - 1 AS place FROM ({sql} LIMIT %s) soonest)"
        f" numbered WHERE {in_id_list('place')}"
    )
    return numbered, params


def slots_for(user: Any) -> Slots:
    """The person's slots and whether the portal is full, counted in the database: one query
    that reads no rows, for pages that need nothing else (CapacityPicture reads every demo
    holding or awaiting capacity, which only explaining a queued demo needs)."""
    # Two counts of their own, each read from an index alone (the status index for the total,
    # the owner's for theirs): counting both in one pass over the active demos read every one of
    # their rows for its owner, 3 ms on a busy portal against 0.5.
    total, total_params = _count_sql(_active())
    mine, mine_params = _count_sql(_active().filter(owner_id=user.pk))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ({total}), ({mine})", [*total_params, *mine_params])
        held_total, held_mine = cursor.fetchone()
    full = held_total >= settings.DEMO_MAX_ACTIVE_TOTAL
    return Slots(held_mine, settings.DEMO_MAX_ACTIVE_PER_USER, full)


def _count_sql(queryset: Any) -> tuple[str, tuple[Any, ...]]:
    """SQL counting the rows of `queryset`, and its parameters, to compose into one query."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    return f"SELECT COUNT(*) FROM ({sql}) counted", params  # noqa: S608 (the ORM's SQL)


def _aware(value: datetime | str) -> datetime:
    """A moment as a cursor gives it: a datetime (PostgreSQL) or text in UTC (SQLite)."""
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment is None:
        raise ValueError(f"not a moment: {value!r}")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def _soonest_first(held: Iterable[_Held]) -> dict[int, datetime]:
    """When the held demos that run end, by place, soonest first (0)."""
    return dict(enumerate(sorted(d.ends_at for d in held if d.ends_at is not None)))


def _group[K, T](items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups
