"""How many demos may run at once: per salesperson, per template and in total.

Admission (deciding that a demo may start) runs under one lock so two starts at the same moment
cannot both take the last slot: PostgreSQL's transaction-scoped advisory lock, or on SQLite the
write lock every IMMEDIATE transaction already takes.
"""

from typing import Any

from django.conf import settings
from django.db import connection

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


def has_room_for(demo: Demo) -> bool:
    active = _active().exclude(pk=demo.pk)
    if active.count() >= settings.DEMO_MAX_ACTIVE_TOTAL:
        return False
    if not template_has_room(demo.template, exclude=demo.pk):
        return False
    if demo.owner_id is not None:
        return owner_has_room(demo.owner_id, exclude=demo.pk)
    return True


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
    return {
        "active": _active().count(),
        "limit": settings.DEMO_MAX_ACTIVE_TOTAL,
        "queued": Demo.objects.filter(status=Status.QUEUED).count(),
    }


def request_admission() -> None:
    """Ask a worker to start queued demos now that room may have freed up."""
    if Demo.objects.filter(status=Status.QUEUED).exists():
        from demos.engine import dispatch

        dispatch.enqueue_maintenance("admit", "admit-queued")
