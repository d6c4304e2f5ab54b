"""The periodic sweep: level-triggered, like a Kubernetes controller.

Whatever Redis lost or a killed worker left half-done, the rows still say what should happen, and
the sweep makes it happen: expire due demos, warn owners, fail what is stuck, re-enqueue work whose
job is gone, admit queued demos, apply retention, put idle demos to sleep (and end those asleep
too long), keep warm pools full, and delete clusters no row owns. Every action is
a compare-and-swap, so overlapping sweeps do each thing once. Each query is bounded by the demos
that need something (due, working, queued), never by the size of the history.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from demos.backends import get_backend
from demos.backends.base import BackendError
from demos.engine import dispatch, lifecycle, pools
from demos.models import KEPT, Demo, Status

log = logging.getLogger(__name__)

BATCH = 200
# Rows one pass of the sweep looks at for each of its questions, in batches of BATCH: enough for
# every live demo of a large fleet, and a bound on one pass when something floods a question.
PASS_LIMIT = 10_000
# Work enqueued this recently may simply not have been picked up yet.
REENQUEUE_GRACE = timedelta(seconds=15)


@dataclass
class SweepSummary:
    expired: int = 0
    warned: int = 0
    timed_out: int = 0
    requeued: int = 0
    admitted: int = 0
    retention: int = 0
    slept: int = 0
    sleep_ended: int = 0
    spares_started: int = 0
    spares_retired: int = 0
    orphans_deleted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        parts = [
            f"expired {self.expired}",
            f"warned {self.warned}",
            f"timed out {self.timed_out}",
            f"re-enqueued {self.requeued}",
            f"admitted {self.admitted}",
            f"retention {self.retention}",
            f"put to sleep {self.slept}",
            f"ended asleep {self.sleep_ended}",
            f"spares started {self.spares_started}",
            f"spares retired {self.spares_retired}",
            f"orphans deleted {len(self.orphans_deleted)}",
        ]
        if self.errors:
            parts.append(f"errors {len(self.errors)}")
        return ", ".join(parts)


def sweep(now: datetime | None = None) -> SweepSummary:
    now = now or timezone.now()
    summary = SweepSummary()
    summary.expired = expire_due(now)
    summary.warned = warn_before_expiry(now)
    summary.timed_out = fail_stuck(now)
    summary.requeued = reenqueue_lost_work(now)
    summary.admitted = len(lifecycle.admit_queued())
    summary.retention = apply_retention(now)
    # Imported here: sleep asks its questions in this module's batches.
    from demos.engine import sleep

    summary.slept = len(sleep.put_idle_demos_to_sleep(now))
    summary.sleep_ended = len(sleep.end_long_sleeps(now))
    pool_report = pools.keep_pools_full(now)
    summary.spares_started = pool_report.started
    summary.spares_retired = pool_report.recycled + pool_report.trimmed
    summary.errors.extend(pool_report.skipped)
    try:
        summary.orphans_deleted = delete_orphans()
    except BackendError as exc:
        summary.errors.append(f"orphan check: {exc.message}")
    log.info("Reconcile: %s", summary)
    return summary


def in_batches(queryset: QuerySet[Demo], key: str) -> Iterator[Demo]:
    """The rows of `queryset` in the order of `key` (never null there) and then the primary key,
    read BATCH at a time, up to PASS_LIMIT.

    Each batch starts after the last row of the one before (keyset paging), so rows the caller
    leaves alone (a reminder already sent, a deadline not yet reached) cannot hide the ones behind
    them, and each batch is an index scan that stops after BATCH rows.
    """
    ordered = queryset.order_by(key, "pk")
    batch = list(ordered[:BATCH])
    seen = 0
    while batch:
        yield from batch
        seen += len(batch)
        if len(batch) < BATCH or seen >= PASS_LIMIT:
            return
        last = batch[-1]
        after = Q(**{f"{key}__gt": getattr(last, key)}) | Q(
            **{key: getattr(last, key), "pk__gt": last.pk}
        )
        batch = list(ordered.filter(after)[:BATCH])


def expire_due(now: datetime) -> int:
    due = Demo.objects.filter(status=Status.READY, expires_at__lte=now).select_related("template")
    return sum(1 for demo in in_batches(due, "expires_at") if lifecycle.expire_demo(demo=demo))


def warn_before_expiry(now: datetime) -> int:
    leads = settings.DEMO_EXPIRY_WARNINGS
    if not leads:
        return 0
    soon = Demo.objects.filter(
        status=Status.READY, expires_at__gt=now, expires_at__lte=now + max(leads), is_spare=False
    ).select_related("owner", "template")
    # Soonest first: those about to end are told first, and those told already do not stop the
    # pass from reaching the rest.
    return sum(1 for demo in in_batches(soon, "expires_at") if lifecycle.warn_of_expiry(demo, now))


def fail_stuck(now: datetime) -> int:
    """Fail working demos past their deadline that no step is failing (its job was lost while
    Redis was away, or the step keeps dying). Oldest first, so the longest stuck go first, and
    demos still within a long deadline do not keep the pass from those past a short one."""
    candidates = (
        Demo.objects.working()
        .filter(status_changed_at__lte=now - timedelta(minutes=1))
        .select_related("template")
    )
    return sum(
        1
        for demo in in_batches(candidates, "status_changed_at")
        if lifecycle.fail_overdue(demo, now)
    )


def reenqueue_lost_work(now: datetime) -> int:
    """Enqueue again each step that is due, yet has no live job: its worker was killed, or
    Redis lost it. Oldest due first."""
    cutoff = now - REENQUEUE_GRACE
    due = (
        Demo.objects.working()
        .filter(Q(next_step_at__lte=cutoff) | Q(next_step_at=None, status_changed_at__lte=cutoff))
        .order_by(F("next_step_at").asc(nulls_first=True))
    )
    requeued = 0
    for public_id, status, seq in due.values_list("public_id", "status", "steps")[:BATCH]:
        if dispatch.enqueue_lost_step(lifecycle.WORK_FOR_STATUS[status], public_id, seq):
            log.warning("Re-enqueued lost %s step %s for demo %s", status, seq, public_id)
            requeued += 1
    return requeued


def apply_retention(now: datetime) -> int:
    expired = Demo.objects.filter(status__in=KEPT, keep_until__lte=now).select_related("template")
    return sum(1 for demo in in_batches(expired, "keep_until") if lifecycle.discard_kept(demo))


def delete_orphans() -> list[str]:
    """Delete clusters the backend manages that no live demo owns."""
    backend = get_backend()
    names = {cluster.name for cluster in backend.list_clusters()}
    if not names:
        return []
    owned = set(
        Demo.objects.filter(cluster_name__in=names)
        .owning_clusters()
        .values_list("cluster_name", flat=True)
    )
    deleted = []
    for name in sorted(names - owned):
        log.warning("Deleting orphaned cluster %s", name)
        if backend.delete(name):
            deleted.append(name)
    return deleted
