"""How many demos may run at once: per salesperson, per template and in total.

Admission (deciding that a demo may start) runs under one lock so two starts at the same moment
cannot both take the last slot: PostgreSQL's transaction-scoped advisory lock, or on SQLite the
write lock every IMMEDIATE transaction already takes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q

from demos.errors import LifecycleError
from demos.models import ACTIVE, Demo, Status

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
