"""What managers and template admins see of the whole fleet: reads only (selectors).

Each function answers one question for the fleet page, the activity feed or the admin, with a
bounded number of queries. Statistics are computed from the rows of a bounded window: by
PostgreSQL where it can (percentiles), in Python elsewhere, with the same results.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DateTimeField,
    DurationField,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from redis.exceptions import RedisError

from demos.durations import format_duration, percentile
from demos.engine import capacity, pools
from demos.models import (
    ACTIVE,
    ON_THE_FLEET,
    Demo,
    DemoEvent,
    DemoTemplate,
    Status,
    TemplateChart,
)

# Failed demos stay listed this long, so someone can look, retry or delete them.
FAILED_LISTED_FOR = timedelta(days=7)
FAILURE_WINDOW = timedelta(hours=24)
# The overview lists this many of them; the activity feed pages through the rest.
FAILURES_SHOWN = 25
TIME_TO_READY_WINDOW = timedelta(days=30)
TIME_TO_READY_CACHE_KEY = "fleet:time-to-ready"
TIME_TO_READY_CACHE_SECONDS = 60
FLEET_FIGURES_CACHE_KEY = "fleet:figures"
FLEET_FIGURES_CACHE_SECONDS = 10
# Worker progress notes are a demo's own timeline, not actions; the feed leaves them out.
QUIET_EVENT_KINDS = frozenset({"progress"})
ACTIVITY_PAGE = 100


# --- The list of demos -------------------------------------------------------------------------


def fleet_demos(now: datetime | None = None) -> QuerySet[Demo]:
    """Every demo that runs, waits, is kept for later, or failed recently. Spares excluded
    (they are counted per template in `warm_pools`)."""
    now = now or timezone.now()
    listed = Q(status__in=ON_THE_FLEET)
    listed |= Q(status=Status.ARCHIVED, keep_until__isnull=False)
    listed |= Q(status=Status.FAILED, status_changed_at__gte=now - FAILED_LISTED_FOR)
    return (
        Demo.objects.visible()
        .filter(listed)
        .select_related("template", "owner")
        .only(*LISTED_COLUMNS)
        .order_by("-requested_at")
    )


# What the overview's rows show (fleet/overview.html#demo_row) and who may act on each.
LISTED_COLUMNS = (
    "public_id", "cluster_name", "prospect_company", "template_version", "status",
    "error_message", "requested_at", "expires_at", "keep_until", "is_spare", "template", "owner",
    "template__name", "template__updated_at",
    "owner__username", "owner__first_name", "owner__last_name",
)  # fmt: skip


def status_counts(demos: QuerySet[Demo]) -> list[tuple[Status, int]]:
    """How many of `demos` are in each status, in the order of the state machine."""
    counts = dict(demos.order_by().values_list("status").annotate(n=Count("pk")))
    return [(status, counts[status]) for status in Status if counts.get(status)]


# --- Failures and speed ------------------------------------------------------------------------


def recent_failures(now: datetime | None = None) -> QuerySet[DemoEvent]:
    """Every failure of the last 24 hours with its cause, newest first.

    Read from the events rather than from demos now failed, so a failure that was since retried
    successfully still counts.
    """
    since = (now or timezone.now()) - FAILURE_WINDOW
    return (
        DemoEvent.objects.filter(kind="failed", created_at__gte=since)
        .select_related("demo__template", "demo__owner")
        .only(*FAILURE_COLUMNS)
        .order_by("-created_at")
    )


# What the overview's failure rows show (fleet/overview.html#failure_row): 25 events with their
# demos, templates and owners are 100 objects a view, built from a dozen columns instead of 120.
FAILURE_COLUMNS = (
    "kind", "message", "created_at", "demo",
    "demo__public_id", "demo__cluster_name", "demo__is_spare", "demo__status", "demo__template",
    "demo__owner", "demo__template__name", "demo__template__updated_at",
    "demo__owner__username", "demo__owner__first_name", "demo__owner__last_name",
)  # fmt: skip


@dataclass(frozen=True)
class TimeToReady:
    template: DemoTemplate
    count: int
    median: timedelta
    p95: timedelta

    @property
    def median_text(self) -> str:
        return format_duration(self.median)

    @property
    def p95_text(self) -> str:
        return format_duration(self.p95)

    @property
    def median_seconds(self) -> float:
        return round(self.median.total_seconds(), 1)

    @property
    def p95_seconds(self) -> float:
        return round(self.p95.total_seconds(), 1)


# A figure is kept this long, to be given to the views that come while one of them computes it
# anew: however old, it is then never more than one computation behind. Kept only a few times
# its seconds, it was gone whenever nobody had looked for a minute or two, and every view of the
# next moment computed it at once (up to 300 ms each, on the benchmark's data set).
KEPT_FOR = 3600


def _recent[T](key: str, seconds: int, compute: Callable[[], T]) -> T:
    """`compute()` as of about `seconds` ago, shared by every process through the cache (Redis).

    Once it is older, the first view to claim the refresh computes it again and the views that
    come meanwhile are given the one before: figures that cost a hundred milliseconds of database
    time are never computed by every view of that moment at once, each slowing the others (at 20
    views a second they used to pile up every time the figures expired). With nothing kept (the
    first view, an hour without any, or after `forget_fleet_figures`) the view computes them;
    with the cache away, each view computes its own."""
    try:
        kept = cache.get(key)
    except RedisError:
        return compute()
    if isinstance(kept, tuple) and len(kept) == 2:
        computed_at, value = kept
        if time.time() - computed_at < seconds or not _claim_refresh(key, seconds):
            return value
    computed_at, value = time.time(), compute()
    with contextlib.suppress(RedisError):
        cache.set(key, (computed_at, value), KEPT_FOR)
    return value


def _claim_refresh(key: str, seconds: int) -> bool:
    """Whether this view is the one to compute `key` anew: the first to ask, within `seconds`."""
    try:
        return bool(cache.add(f"{key}:refresh", 1, seconds))
    except RedisError:
        return True


def time_to_ready_recent() -> list[TimeToReady]:
    """`time_to_ready` as of at most a minute ago.

    The 30-day window holds thousands of demos a month at scale, read into Python for the
    percentiles; the figures move slowly, so every manager's view within a minute shares one
    computation.
    """
    return _recent(TIME_TO_READY_CACHE_KEY, TIME_TO_READY_CACHE_SECONDS, time_to_ready)


@dataclass(frozen=True)
class FleetFigures:
    """The overview's figures about the whole fleet, apart from its list and failures."""

    counts: list[tuple[Status, int]]
    capacity: CapacitySummary
    sleep: SleepSavings
    warm_pools: list[WarmPool]

    @property
    def listed_total(self) -> int:
        return sum(count for _status, count in self.counts)


def fleet_figures(now: datetime | None = None) -> FleetFigures:
    now = now or timezone.now()
    return FleetFigures(
        counts=status_counts(fleet_demos(now)),
        capacity=capacity_summary(),
        sleep=sleep_savings(now),
        warm_pools=warm_pools(now),
    )


def fleet_figures_recent() -> FleetFigures:
    """`fleet_figures` as of at most a few seconds ago.

    With a year of history they read tens of thousands of rows (every kept archive is on the
    fleet), about 20 ms of database time, for figures a manager reads at a glance: every view
    within `FLEET_FIGURES_CACHE_SECONDS` shares one reading. A manager's own bulk action drops
    it (`forget_fleet_figures`), so the page they return to shows what they did.
    """
    return _recent(FLEET_FIGURES_CACHE_KEY, FLEET_FIGURES_CACHE_SECONDS, fleet_figures)


def forget_fleet_figures() -> None:
    with contextlib.suppress(RedisError):
        cache.delete_many([FLEET_FIGURES_CACHE_KEY, f"{FLEET_FIGURES_CACHE_KEY}:refresh"])


def time_to_ready(now: datetime | None = None) -> list[TimeToReady]:
    """Median and 95th percentile of start-to-ready time per template, over the last 30 days.

    Includes warm-pool spares: this measures how fast clusters come up, not how long a
    salesperson waited for a spare they claimed (that is instant).
    """
    since = (now or timezone.now()) - TIME_TO_READY_WINDOW
    # No order: the model's default one would sort a month of rows for nothing.
    rows = Demo.objects.filter(ready_at__gte=since, time_to_ready__isnull=False).order_by()
    figures = _percentiles_in_database(rows) if _has_percentiles() else _percentiles_here(rows)
    templates = DemoTemplate.objects.only("name", "slug").in_bulk(list(figures))
    return sorted(
        (
            TimeToReady(templates[template_id], count, median, p95)
            for template_id, (count, median, p95) in figures.items()
        ),
        key=lambda row: row.template.name,
    )


# A template's sample count, median and 95th percentile of time to ready.
_Figures = tuple[int, timedelta, timedelta]


def _has_percentiles() -> bool:
    return connection.vendor == "postgresql"


class _PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont, the interpolation `demos.durations.percentile` follows."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: str, pct: int) -> None:
        # A number the code chose, written into the SQL as it is.
        super().__init__(expression, fraction=f"{pct / 100:.4f}", output_field=DurationField())


def _percentiles_in_database(rows: QuerySet[Demo]) -> dict[int, _Figures]:
    """Worked out by PostgreSQL: a month of rows at scale is 11,000, which Python read and sorted
    in 20 ms of the view's CPU, holding the other threads of its process back meanwhile."""
    grouped = rows.values("template_id").annotate(
        count=Count("pk"),
        median=_PercentileCont("time_to_ready", 50),
        p95=_PercentileCont("time_to_ready", 95),
    )
    return {row["template_id"]: (row["count"], row["median"], row["p95"]) for row in grouped}


def _percentiles_here(rows: QuerySet[Demo]) -> dict[int, _Figures]:
    """Worked out from the rows, where the database has no percentile_cont (SQLite)."""
    samples: dict[int, list[timedelta]] = defaultdict(list)
    for template_id, duration in rows.values_list("template_id", "time_to_ready").iterator():
        samples[template_id].append(duration)
    return {
        template_id: (len(values), percentile(values, 50), percentile(values, 95))
        for template_id, values in samples.items()
    }


# --- Sleep ---------------------------------------------------------------------------------------

SLEEP_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class SleepSavings:
    """Cluster time saved by sleep over the last 30 days, and how many demos sleep now."""

    saved: timedelta
    asleep_now: int

    @property
    def hours(self) -> float:
        return round(self.saved.total_seconds() / 3600, 1)


def sleep_savings(now: datetime | None = None) -> SleepSavings:
    """Hours demos spent asleep instead of running, over the last 30 days, in one query.

    Finished sleeps are in `slept`; a demo still asleep (or that ended asleep) adds the time
    since it fell asleep, until now (or its end), counted from the window's start at most. A
    finished sleep is counted whole when its demo is still open or ended within the window:
    `slept` is one total per demo, not a history.
    """
    now = now or timezone.now()
    since = now - SLEEP_WINDOW
    moment = DateTimeField()
    ongoing = Coalesce("ended_at", Value(now, output_field=moment)) - Greatest(
        "asleep_since", Value(since, output_field=moment)
    )
    totals = (
        Demo.objects.filter(Q(ended_at__isnull=True) | Q(ended_at__gte=since))
        .filter(Q(slept__gt=timedelta(0)) | Q(asleep_since__isnull=False))
        .aggregate(
            finished=Sum("slept"),
            ongoing=Sum(
                ongoing, output_field=DurationField(), filter=Q(asleep_since__isnull=False)
            ),
            asleep_now=Count("pk", filter=Q(status=Status.ASLEEP)),
        )
    )
    saved = (totals["finished"] or timedelta(0)) + (totals["ongoing"] or timedelta(0))
    return SleepSavings(saved=max(saved, timedelta(0)), asleep_now=totals["asleep_now"])


# --- Capacity and warm pools -------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateLimit:
    template: DemoTemplate
    active: int
    limit: int


@dataclass(frozen=True)
class CapacitySummary:
    active: int
    limit: int
    queued: int
    per_user_limit: int
    templates: list[TemplateLimit]

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.active / self.limit)) if self.limit else 0


def capacity_summary() -> CapacitySummary:
    usage = capacity.usage()
    limited = DemoTemplate.objects.filter(max_concurrent__gt=0).annotate(
        running=Count("demos", filter=Q(demos__status__in=ACTIVE, demos__is_spare=False))
    )
    return CapacitySummary(
        active=usage["active"],
        limit=usage["limit"],
        queued=usage["queued"],
        per_user_limit=settings.DEMO_MAX_ACTIVE_PER_USER,
        templates=[TemplateLimit(t, t.running, t.max_concurrent) for t in limited],
    )


@dataclass(frozen=True)
class WarmPool:
    template: DemoTemplate
    ready: int
    starting: int
    wanted: int  # what the pool keeps now: 0 outside its schedule or when disabled

    @property
    def size(self) -> int:
        return self.template.warm_pool_size

    @property
    def is_short(self) -> bool:
        return self.ready < self.wanted


def warm_pools(now: datetime | None = None) -> list[WarmPool]:
    """For each template with a warm pool (or spares left over): spares ready to claim, spares
    on their way, and how many the pool keeps right now. Levels come from `demos.engine.pools`,
    which fills the pools, so both count spares the same way."""
    now = now or timezone.now()
    levels = pools.pool_levels()
    templates = DemoTemplate.objects.filter(Q(warm_pool_size__gt=0) | Q(pk__in=list(levels)))
    return [
        WarmPool(
            template=template,
            ready=levels.get(template.pk, {}).get("ready", 0),
            starting=levels.get(template.pk, {}).get("starting", 0),
            wanted=pools.wanted_size(template, now),
        )
        for template in templates
    ]


# --- Template versions in use ------------------------------------------------------------------


def active_demos_by_version(template: DemoTemplate) -> list[tuple[int, int]]:
    """(template version, active demos started from it), newest version first."""
    rows = (
        Demo.objects.filter(template=template, status__in=ACTIVE)
        .order_by()
        .values_list("template_version")
        .annotate(n=Count("pk"))
    )
    return sorted(rows, reverse=True)


def with_active_counts(templates: QuerySet[DemoTemplate]) -> QuerySet[DemoTemplate]:
    """Annotate `active_demos` and `outdated_demos` (started from an older version)."""
    return templates.annotate(
        active_demos=Count("demos", filter=Q(demos__status__in=ACTIVE), distinct=True),
        outdated_demos=Count(
            "demos",
            filter=Q(demos__status__in=ACTIVE, demos__template_version__lt=F("version")),
            distinct=True,
        ),
    )


# --- Activity feed -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """One line of the activity feed: who did what to which demo or template, and when."""

    at: datetime
    actor: str
    area: str  # "demo" or "template"
    action: str
    subject: str
    message: str
    demo: Demo | None = None
    template_id: int | None = None


def _template_content_types() -> list[int]:
    types = ContentType.objects.get_for_models(DemoTemplate, TemplateChart)
    return [content_type.pk for content_type in types.values()]


def _describe_log_entry(entry: LogEntry) -> tuple[str, str]:
    action = {ADDITION: "created", CHANGE: "changed", DELETION: "deleted"}.get(
        entry.action_flag, "changed"
    )
    # Deletions carry no message of their own.
    message = entry.get_change_message() or f"{action.capitalize()}."
    version = _logged_version(entry.change_message)
    if version:
        message = f"{message} Now version {version}."
    return action, message


def _logged_version(change_message: str) -> int | None:
    if not change_message.startswith("["):
        return None
    try:
        items = json.loads(change_message)
    except ValueError:
        return None
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("version"), dict):
            return item["version"].get("to")
    return None


def activity_feed(
    *, before: datetime | None = None, area: str = "", limit: int = ACTIVITY_PAGE
) -> list[Activity]:
    """Template changes (the admin's log) and demo actions (demo events), newest first.

    `before` pages back in time: pass the time of the last item shown.
    """
    items: list[Activity] = []
    if area in ("", "demo"):
        events = DemoEvent.objects.exclude(kind__in=QUIET_EVENT_KINDS).select_related(
            "demo__template", "actor"
        )
        if before:
            events = events.filter(created_at__lt=before)
        for event in events.order_by("-created_at", "-pk")[:limit]:
            items.append(
                Activity(
                    at=event.created_at,
                    actor=event.actor_name,
                    area="demo",
                    action=event.kind,
                    subject=f"{event.demo.cluster_name} ({event.demo.template.name})",
                    message=event.message,
                    demo=event.demo,
                )
            )
    if area in ("", "template"):
        entries = LogEntry.objects.filter(
            content_type_id__in=_template_content_types()
        ).select_related("user")
        if before:
            entries = entries.filter(action_time__lt=before)
        for entry in entries.order_by("-action_time", "-pk")[:limit]:
            action, message = _describe_log_entry(entry)
            items.append(
                Activity(
                    at=entry.action_time,
                    actor=entry.user.get_full_name() or entry.user.get_username(),
                    area="template",
                    action=action,
                    subject=entry.object_repr,
                    message=message,
                    template_id=int(entry.object_id) if entry.object_id else None,
                )
            )
    items.sort(key=lambda item: item.at, reverse=True)
    return items[:limit]
