"""Warm pools: a few ready, unclaimed demos per template, so "Start demo" is instant.

The reconcile sweep calls `keep_pools_full`: each pool is topped up to its size while its schedule
is on (and shrinks to zero outside it), within global capacity; spares older than the template's
maximum age are recycled so they stay fresh, and failed spares are cleared away. Claiming a spare
is `lifecycle.start_demo`'s first move (see `_claim_spare`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from croniter import croniter
from django.db.models import Count, Q
from django.utils import timezone

from demos.engine import lifecycle
from demos.engine.capacity import CapacityError
from demos.engine.specs import personal_variables_used
from demos.errors import LifecycleError
from demos.models import LIVE, STARTING, Demo, DemoTemplate, Status

log = logging.getLogger(__name__)


@dataclass
class PoolReport:
    started: int = 0
    recycled: int = 0
    trimmed: int = 0
    skipped: list[str] = field(default_factory=list)


def schedule_is_on(expression: str, now: datetime) -> bool:
    """Whether a pool's cron-style window includes `now` (an empty schedule is always on)."""
    if not expression.strip():
        return True
    return croniter.match(expression, timezone.localtime(now))


def wanted_size(template: DemoTemplate, now: datetime) -> int:
    # A template taken out of the catalog after repeated failures starts no spares either: they
    # would fail the same way.
    if not template.enabled or not template.warm_pool_size or template.flagged_at is not None:
        return 0
    return template.warm_pool_size if schedule_is_on(template.warm_pool_schedule, now) else 0


def pool_levels() -> dict[int, dict[str, int]]:
    """Per template id: spares ready and starting (for the catalog and the fleet view)."""
    rows = (
        Demo.objects.filter(is_spare=True, status__in=LIVE)
        .values("template_id")
        .annotate(
            ready=Count("pk", filter=Q(status=Status.READY)),
            starting=Count("pk", filter=Q(status__in=STARTING)),
        )
    )
    return {
        row["template_id"]: {"ready": row["ready"], "starting": row["starting"]} for row in rows
    }


def keep_pools_full(now: datetime | None = None) -> PoolReport:
    now = now or timezone.now()
    report = PoolReport()
    _clear_failed_spares()
    # Templates with a pool, or with live spares left over from one (to shrink them). The
    # subquery reads only live spares through the status index, never the demo history.
    live_spares = Demo.objects.filter(is_spare=True, status__in=LIVE)
    templates = DemoTemplate.objects.filter(
        Q(warm_pool_size__gt=0) | Q(pk__in=live_spares.values("template_id"))
    )
    for template in templates.prefetch_related("charts"):
        refill(template, now, report)
    return report


def refill(
    template: DemoTemplate, now: datetime | None = None, report: PoolReport | None = None
) -> PoolReport:
    """Bring one template's pool to its wanted size: recycle stale spares, trim, top up."""
    now = now or timezone.now()
    report = report or PoolReport()
    spares = Demo.objects.filter(template=template, is_spare=True)
    stale = spares.filter(status=Status.READY, ready_at__lte=now - template.warm_pool_max_age)
    for demo in stale:
        if _retire(demo, "Recycled: spares are replaced after they have waited for a while."):
            report.recycled += 1

    wanted = wanted_size(template, now)
    personal = personal_variables_used(template)
    if wanted and personal:
        report.skipped.append(
            f"{template.slug}: uses {', '.join(sorted(personal))}, so it cannot be pre-started"
        )
        wanted = 0
    live = list(spares.filter(status__in=LIVE).order_by("-requested_at"))
    for demo in live[wanted:]:
        # Shrink: starting spares first (cheapest to drop), then the newest ready ones.
        if _retire(demo, "Pool is shrinking (outside its schedule or made smaller)."):
            report.trimmed += 1
    for _ in range(wanted - len(live)):
        try:
            lifecycle.start_spare(template=template)
        except CapacityError:
            log.info("Warm pool of %s waits for capacity", template.slug)
            break
        report.started += 1
    return report


def _retire(demo: Demo, reason: str) -> bool:
    try:
        lifecycle.retire_spare(demo=demo, reason=reason)
    except LifecycleError:
        return False  # claimed or changed meanwhile: not ours to retire any more
    return True


def _clear_failed_spares() -> None:
    for demo in Demo.objects.filter(is_spare=True, status=Status.FAILED):
        _retire(demo, "Failed spare cleared; the pool starts a new one.")
