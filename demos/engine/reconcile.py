"""The periodic sweep: level-triggered, like a Kubernetes controller.

Whatever Redis lost or a killed worker left half-done, the rows still say what should happen, and
the sweep makes it happen: expire due demos, warn owners, fail what is stuck, re-enqueue work whose
job is gone, admit queued demos, apply retention, keep warm pools full, and delete clusters no row
owns. Every action is
a compare-and-swap, so overlapping sweeps do each thing once. Each query is bounded by the demos
that need something (due, working, queued), never by the size of the history.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from demos.backends import get_backend
from demos.backends.base import BackendError
from demos.engine import dispatch, lifecycle, notifications, pools
from demos.models import KEPT, STARTING, WORKING, Demo, Status

log = logging.getLogger(__name__)

BATCH = 200
# Work enqueued this recently may simply not have been picked up yet.
REENQUEUE_GRACE = timedelta(seconds=15)
# States in which a failed demo still owns a cluster worth keeping (its data).
_FAILED_KEEPING = {Status.PAUSING, Status.RESUMING, Status.ARCHIVING, Status.PAUSED}


@dataclass
class SweepSummary:
    expired: int = 0
    warned: int = 0
    timed_out: int = 0
    requeued: int = 0
    admitted: int = 0
    retention: int = 0
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


def expire_due(now: datetime) -> int:
    due = Demo.objects.filter(status=Status.READY, expires_at__lte=now).select_related("template")
    return sum(1 for demo in due.order_by("expires_at")[:BATCH] if lifecycle.expire_demo(demo=demo))


def warn_before_expiry(now: datetime) -> int:
    leads = sorted(settings.DEMO_EXPIRY_WARNINGS, reverse=True)
    if not leads:
        return 0
    soon = Demo.objects.filter(
        status=Status.READY, expires_at__gt=now, expires_at__lte=now + leads[0], is_spare=False
    ).select_related("owner", "template")
    sent = 0
    for demo in soon[:BATCH]:
        # Only the shortest lead that applies: a demo extended into the last ten minutes gets
        # one warning, not two at once.
        due = [lead for lead in leads if demo.expires_at - now <= lead]
        lead = due[-1]
        minutes = int(lead.total_seconds() // 60)
        if minutes in demo.warnings_sent:
            continue
        claimed = Demo.objects.filter(
            pk=demo.pk, status=Status.READY, warnings_sent=demo.warnings_sent
        ).update(warnings_sent=[*demo.warnings_sent, *(int(d.total_seconds() // 60) for d in due)])
        if claimed:
            notifications.expiry_warning(demo, demo.expires_at - now)
            lifecycle.record_event(
                demo,
                "warned",
                f"Reminded the owner that the demo ends in {minutes} minutes.",
                lifecycle.SCHEDULER,
            )
            sent += 1
    return sent


def fail_stuck(now: datetime) -> int:
    failed = 0
    candidates = Demo.objects.filter(
        status__in=WORKING, status_changed_at__lte=now - timedelta(minutes=1)
    ).select_related("template")
    for demo in candidates[:BATCH]:
        if demo.status in STARTING:
            timeout = timedelta(seconds=demo.spec.get("provisioning_timeout_seconds", 900))
            started = demo.started_at or demo.requested_at
            # Grace on top of the job's own deadline, so the sweep only catches a dead job.
            if now - started < timeout + timedelta(minutes=2):
                continue
            message = (
                f"The demo was not ready within {int(timeout.total_seconds() // 60)} minutes, so "
                "it was stopped and cleaned up. Retry it; if it happens again, ask an admin."
            )
        else:
            if now - demo.status_changed_at < timedelta(minutes=20):
                continue
            message = (
                f"“{demo.get_status_display()}” did not finish within 20 minutes. Retry it, or "
                "delete the demo."
            )
        if lifecycle.fail_demo(demo, message).status == Status.FAILED:
            failed += 1
    return failed


def reenqueue_lost_work(now: datetime) -> int:
    requeued = 0
    working = Demo.objects.filter(status__in=WORKING, status_changed_at__lte=now - REENQUEUE_GRACE)
    for public_id, status in working.values_list("public_id", "status")[:BATCH]:
        if dispatch.enqueue_now(dispatch.WORK_FOR_STATUS[status], public_id):
            log.warning("Re-enqueued lost %s job for demo %s", status, public_id)
            requeued += 1
    return requeued


def apply_retention(now: datetime) -> int:
    expired = Demo.objects.filter(status__in=KEPT, keep_until__lte=now).select_related("template")
    return sum(1 for demo in expired[:BATCH] if lifecycle.discard_kept(demo))


def delete_orphans() -> list[str]:
    """Delete clusters the backend manages that no live demo owns."""
    backend = get_backend()
    names = {cluster.name for cluster in backend.list_clusters()}
    if not names:
        return []
    owned = set(
        Demo.objects.filter(cluster_name__in=names)
        .filter(
            Q(status__in=WORKING | {Status.READY, Status.PAUSED})
            | Q(status=Status.FAILED, failed_from__in=_FAILED_KEEPING)
        )
        .values_list("cluster_name", flat=True)
    )
    deleted = []
    for name in sorted(names - owned):
        log.warning("Deleting orphaned cluster %s", name)
        if backend.delete(name):
            deleted.append(name)
    return deleted
