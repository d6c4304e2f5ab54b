"""How the reconcile sweep scales with the size of the demo table.

The sweep runs every DEMO_RECONCILE_SECONDS for the life of the portal, while the demo table only
grows (ended demos stay as history). Its cost must follow the demos that need something, not the
table: this fills the table with history, adds a fixed number of due demos, and counts the
queries and the time of one `reconcile.sweep()`.

Needs Django set up; the benchmark runs it in a process of its own against a database of its own.
"""

from __future__ import annotations

import copy
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from demos.engine import progress, reconcile
from demos.engine.specs import render_spec
from demos.models import Demo, DemoTemplate, SimulatedCluster, Status

# Running demos that are not due: the sweep looks at them (warnings, orphans) but has nothing
# to do. A busy sales team's worth.
LIVE_NOT_DUE = 40
INSERT_BATCH = 2000


@dataclass(frozen=True)
class SweepRun:
    rows: int
    seconds: float
    queries: int
    expired: int
    # Time spent waiting for the database's answers (commits aside): unlike the whole sweep's
    # time it leaves out Python and Redis, so it shows a query that grows with the table even
    # when the rest of the machine is noisy.
    db_seconds: float


def _cluster_name() -> str:
    return "demo-" + secrets.token_hex(8)  # as the portal's own


class Table:
    """The demo table of one template and owner, grown with realistic rows."""

    def __init__(self, template: DemoTemplate, owner: User) -> None:
        self.template = template
        self.owner = owner
        sample = Demo(template=template, owner=owner, cluster_name=_cluster_name())
        # Every row carries a full rendered spec and progress, as real ones do: the width of the
        # rows is part of what a sequential scan would cost.
        self.spec = render_spec(sample)
        self.progress = progress.all_done(progress.initial(self.spec, queued_done=True))
        self.due: list[int] = []

    def _demo(self, status: Status, **fields: Any) -> Demo:
        name = _cluster_name()
        spec = copy.copy(self.spec)
        spec["cluster_name"] = name
        now = timezone.now()
        return Demo(
            template=self.template,
            owner=self.owner,
            public_id=uuid.uuid4(),
            cluster_name=name,
            spec=spec,
            progress=self.progress,
            status=status,
            requested_at=now - timedelta(days=1),
            started_at=now - timedelta(days=1),
            ready_at=now - timedelta(days=1) + timedelta(seconds=40),
            time_to_ready=timedelta(seconds=40),
            live_url=f"https://{name}.demos.example.com/",
            **fields,
        )

    def add_history(self, count: int) -> None:
        """Ended demos: the bulk of any real table."""
        ended = timezone.now() - timedelta(hours=20)
        for start in range(0, count, INSERT_BATCH):
            batch = [
                self._demo(Status.DELETED, ended_at=ended, status_changed_at=ended)
                for _ in range(min(INSERT_BATCH, count - start))
            ]
            Demo.objects.bulk_create(batch)

    def add_running(self, count: int, *, due: bool) -> list[Demo]:
        now = timezone.now()
        expires = now - timedelta(seconds=5) if due else now + timedelta(days=1)
        demos = Demo.objects.bulk_create(
            [self._demo(Status.READY, expires_at=expires) for _ in range(count)]
        )
        # Their clusters exist, so the orphan check finds nothing to delete.
        SimulatedCluster.objects.bulk_create(
            [SimulatedCluster(name=d.cluster_name, spec=d.spec, applied_at=now) for d in demos]
        )
        if due:
            self.due = [demo.pk for demo in demos]
        return demos

    def clear_due(self) -> None:
        """Remove what the last sweep expired, so every measured sweep finds the same work."""
        names = list(Demo.objects.filter(pk__in=self.due).values_list("cluster_name", flat=True))
        SimulatedCluster.objects.filter(name__in=names).delete()
        Demo.objects.filter(pk__in=self.due).delete()
        self.due = []

    def grow_to(self, rows: int, due: int) -> None:
        """History up to `rows` demos in total, counting the running and the due ones."""
        missing = rows - Demo.objects.count() - due
        if missing > 0:
            self.add_history(missing)
        if connection.vendor == "postgresql":
            # What autovacuum does on a live database; without it the planner would still plan
            # for the empty table it last saw.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")


def setup_table() -> Table:
    from bench import portal_data

    template = portal_data.template(f"sweep-{secrets.token_hex(3)}")
    owner = User.objects.create_user(f"sweep-{secrets.token_hex(3)}", password=None)
    table = Table(template, owner)
    table.add_running(LIVE_NOT_DUE, due=False)
    return table


def measure(table: Table, rows: int, due: int) -> SweepRun:
    """One sweep over a table of `rows` demos of which `due` are due."""
    table.clear_due()
    table.grow_to(rows, due)
    table.add_running(due, due=True)
    clock = StatementClock()
    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(clock):
        started = time.perf_counter()
        summary = reconcile.sweep()
        seconds = time.perf_counter() - started
    return SweepRun(
        Demo.objects.count(), seconds, len(queries.captured_queries), summary.expired, clock.seconds
    )


class StatementClock:
    """Time spent waiting for the database's answers to statements, to the microsecond.

    Django's captured queries carry times rounded to the millisecond, which is about what one
    of these queries takes: summed over sixty of them the rounding alone swings the total by
    tens of milliseconds. Commits do not pass through execute wrappers, so they are left out.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started


def scaling(sizes: list[int], due: int, repeats: int) -> list[SweepRun]:
    """For each size, the median time of `repeats` sweeps and the highest query count."""
    table = setup_table()
    measure(table, LIVE_NOT_DUE + due, due)  # warm-up: connections, caches, first imports
    runs = []
    for rows in sizes:
        samples = [measure(table, rows, due) for _ in range(repeats)]
        runs.append(
            SweepRun(
                rows=samples[-1].rows,
                seconds=statistics.median(s.seconds for s in samples),
                queries=max(s.queries for s in samples),
                expired=min(s.expired for s in samples),
                db_seconds=statistics.median(s.db_seconds for s in samples),
            )
        )
    table.clear_due()
    return runs
