"""The workers' side: what a background step found, and what follows from it (ready, failed,
overdue, or look again in DEMO_OBSERVE_INTERVAL seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from demos.backends.base import BackendError, Observation, Phase
from demos.catalog import services as template_services
from demos.durations import format_duration
from demos.engine import capacity, dispatch, notifications, progress, speeds
from demos.engine.dispatch import Work
from demos.engine.lifecycle.requests import resume_lifetime
from demos.engine.lifecycle.table import (
    TRANSITIONS,
    WORK_FOR_STATUS,
    is_overdue,
    overdue_message,
    record_event,
    transition,
)
from demos.engine.specs import Policy
from demos.errors import InvalidTransition
from demos.models import (
    STARTING,
    Demo,
    Snapshot,
    SnapshotKind,
    Status,
)

log = logging.getLogger(__name__)


def next_step(demo: Demo, seq: int) -> Demo:
    """The work on `demo` is not done yet: fail it if it missed its deadline, otherwise schedule
    the next look in DEMO_OBSERVE_INTERVAL seconds.

    `seq` is the step that is asking; if the demo has moved on meanwhile (a person deleted it,
    another step got there first), nothing is scheduled.
    """
    if fail_overdue(demo):
        return demo
    work = Work.CLEANUP if demo.status == Status.FAILED else WORK_FOR_STATUS.get(demo.status)
    if work is None:
        return demo
    after = settings.DEMO_OBSERVE_INTERVAL
    changed = Demo.objects.filter(pk=demo.pk, status=demo.status, steps=seq).update(
        steps=seq + 1, next_step_at=timezone.now() + timedelta(seconds=after)
    )
    if changed:
        demo.steps = seq + 1
        dispatch.enqueue_step(work, demo.public_id, seq + 1, after=after)
    return demo


def begin_provisioning(demo: Demo) -> Demo:
    """The first step of a start: count the attempt and mark the cluster step active."""
    try:
        return transition(
            demo,
            "begin",
            attempts=demo.attempts + 1,
            progress=progress.mark(demo.progress, "cluster", "active"),
        )
    except InvalidTransition:
        return demo


def record_start(
    demo: Demo, seq: int, observation: Observation, *, kubeconfig: str | None = None
) -> Demo:
    """Take in what a step of a start saw, and decide: ready, failed, overdue, or look again.

    `kubeconfig` is the external kubeconfig the worker captured once the cluster was ready (for
    prospects' downloads); it is stored sealed, so the web tier never asks the cluster.
    """
    demo = _record_observation(demo, observation)
    if demo.status not in STARTING:
        return demo  # deleted or failed meanwhile: nothing more to do here
    if observation.phase == Phase.READY:
        return _finish_start(demo, observation, kubeconfig)
    if observation.phase == Phase.FAILED:
        return fail_demo(demo, observation.message, observation.detail)
    return next_step(demo, seq)


def _record_observation(demo: Demo, observation: Observation) -> Demo:
    """Store what the backend sees; announce each step that finished or failed."""
    new_progress, news = progress.apply_observation(demo.progress, observation)
    new_progress["note"] = observation.message
    fields: dict[str, Any] = {"progress": new_progress}
    if observation.urls:
        fields["urls"] = list(observation.urls)
    if new_progress != demo.progress or fields.get("urls", demo.urls) != demo.urls:
        Demo.objects.filter(pk=demo.pk, status__in=STARTING).update(**fields)
    for message in news:
        record_event(demo, "progress", message)
    if demo.status in TRANSITIONS["install"].allowed and progress.cluster_is_up(new_progress):
        try:
            return transition(demo, "install")
        except InvalidTransition:
            pass  # another step moved it on already; that is fine
    demo.refresh_from_db()
    return demo


def _sealed(kubeconfig: str | None) -> str:
    if not kubeconfig:
        return ""
    from portal.sealing import seal

    return seal(kubeconfig)


def _finish_start(demo: Demo, observation: Observation, kubeconfig: str | None) -> Demo:
    now = timezone.now()
    live_url = observation.urls[0] if observation.urls else demo.spec.get("entry_url", "")
    # An unclaimed spare has no lifetime yet: its clock starts when someone claims it.
    expires_at = None if demo.is_spare else now + demo.lifetime
    started = demo.started_at or demo.requested_at
    demo = transition(
        demo,
        "ready",
        message=f"Ready after {format_duration(now - started)}.",
        live_url=live_url,
        urls=list(observation.urls),
        ready_at=now,
        expires_at=expires_at,
        time_to_ready=now - started,
        progress=progress.all_done(demo.progress, now),
        kubeconfig_sealed=_sealed(kubeconfig),
        data={"seconds_to_ready": round((now - started).total_seconds(), 3)},
    )
    if expires_at is not None:
        dispatch.schedule_expiry(demo.public_id, expires_at)
    if not (demo.is_spare or demo.is_test_launch or demo.restored_from_id):
        speeds.refresh(demo.template_id)
    if _counts_for_template(demo):
        template_services.record_template_ready(template_id=demo.template_id)
    return demo


def record_resume(
    demo: Demo, seq: int, observation: Observation | None, *, kubeconfig: str | None = None
) -> Demo:
    """Take in a resume step (of a resume, or of a wake): None while the backend has not started
    the cluster again."""
    if observation is not None and observation.phase == Phase.READY:
        if demo.status == Status.WAKING:
            return _finish_wake(demo, observation, kubeconfig)
        return _finish_resume(demo, observation, kubeconfig)
    if observation is not None and observation.phase == Phase.FAILED:
        return fail_demo(demo, observation.message, observation.detail, cleanup=False)
    return next_step(demo, seq)


def _finish_resume(demo: Demo, observation: Observation, kubeconfig: str | None) -> Demo:
    now = timezone.now()
    # The time it had left when it was paused, not a fresh lifetime.
    runs_for = resume_lifetime(demo)
    expires_at = now + runs_for
    with transaction.atomic():
        demo = transition(
            demo,
            "resumed",
            message=f"Resumed and ready again, with {format_duration(runs_for)} to run.",
            ready_at=now,
            expires_at=expires_at,
            paused_remaining=None,
            keep_until=None,
            extension_count=0,
            warnings_sent=[],
            urls=list(observation.urls) or demo.urls,
            kubeconfig_sealed=_sealed(kubeconfig) or demo.kubeconfig_sealed,
        )
        Snapshot.objects.filter(demo=demo, kind=SnapshotKind.PAUSED, discarded_at=None).update(
            discarded_at=now, restorable=False, note="Resumed."
        )
        dispatch.schedule_expiry(demo.public_id, expires_at)
    return demo


def _finish_wake(demo: Demo, observation: Observation, kubeconfig: str | None) -> Demo:
    """Awake: it runs again with the time it had left when it fell asleep.

    `ready_at` moves on by the sleep, so the template's longest lifetime (counted from it) bounds
    the time the demo ran, not the time it slept.
    """
    now = timezone.now()
    remaining = demo.sleep_remaining if demo.sleep_remaining is not None else demo.lifetime
    asleep_for = now - demo.asleep_since if demo.asleep_since else timedelta(0)
    expires_at = now + remaining
    demo = transition(
        demo,
        "woke",
        message=f"Awake again after {format_duration(asleep_for)} asleep; "
        f"{format_duration(remaining)} left.",
        data={"asleep_seconds": int(asleep_for.total_seconds())},
        expires_at=expires_at,
        ready_at=(demo.ready_at or now) + asleep_for,
        slept=F("slept") + asleep_for,
        asleep_since=None,
        sleep_remaining=None,
        urls=list(observation.urls) or demo.urls,
        kubeconfig_sealed=_sealed(kubeconfig) or demo.kubeconfig_sealed,
    )
    dispatch.schedule_expiry(demo.public_id, expires_at)
    return demo


def record_pause(demo: Demo, seq: int, *, paused: bool) -> Demo:
    """Take in a pause step (of a pause, or of a sleep)."""
    if not paused:
        return next_step(demo, seq)
    if demo.status == Status.SLEEPING:
        return transition(demo, "asleep")
    now = timezone.now()
    keep_until = now + Policy.of(demo).retention
    with transaction.atomic():
        demo = transition(
            demo,
            "paused",
            message=f"Kept for later until {keep_until:%Y-%m-%d}.",
            keep_until=keep_until,
            expires_at=None,
        )
        Snapshot.objects.create(
            demo=demo,
            template=demo.template,
            kind=SnapshotKind.PAUSED,
            location=f"paused in place ({demo.cluster_name})",
            restorable=True,
            expires_at=keep_until,
        )
    return demo


def archive_location(demo: Demo, choose: Callable[[], str]) -> str:
    """Where this demo's archive goes: chosen once (by `choose`), so every step of the archive,
    and a retry of it, follows the same snapshot."""
    if not demo.archive_location:
        Demo.objects.filter(pk=demo.pk, archive_location="").update(archive_location=choose())
        demo.refresh_from_db(fields=["archive_location"])
    return demo.archive_location


def archived_snapshot(demo: Demo) -> Snapshot | None:
    """The snapshot this archive saved, once it is complete."""
    return Snapshot.objects.filter(
        demo=demo, kind=SnapshotKind.ARCHIVED, location=demo.archive_location
    ).first()


def record_snapshot(demo: Demo, *, restorable: bool) -> Snapshot:
    """The archive's snapshot is complete: keep a row for it (its retention starts once the
    cluster is gone), so later steps go straight on to deleting the cluster."""
    with transaction.atomic():
        snapshot, created = Snapshot.objects.get_or_create(
            demo=demo,
            kind=SnapshotKind.ARCHIVED,
            location=demo.archive_location,
            defaults={"template": demo.template, "restorable": restorable},
        )
        if created:
            record_event(
                demo,
                "snapshot",
                f"Snapshot saved to {demo.archive_location}.",
                data={"location": demo.archive_location},
            )
    return snapshot


def record_archive_delete(demo: Demo, seq: int, *, deleted: bool) -> Demo:
    if not deleted:
        return next_step(demo, seq)
    now = timezone.now()
    keep_until = now + Policy.of(demo).retention
    location = demo.archive_location
    with transaction.atomic():
        demo = transition(
            demo,
            "archived",
            message=f"Archived to {location}; the cluster is deleted.",
            ended_at=now,
            keep_until=keep_until,
            expires_at=None,
            kubeconfig_sealed="",
            data={"location": location},
        )
        Snapshot.objects.filter(demo=demo, kind=SnapshotKind.ARCHIVED, location=location).update(
            expires_at=keep_until
        )
        transaction.on_commit(capacity.request_admission)
    return demo


def record_delete(demo: Demo, seq: int, *, deleted: bool) -> Demo:
    if not deleted:
        return next_step(demo, seq)
    now = timezone.now()
    with transaction.atomic():
        demo = transition(demo, "deleted", ended_at=now, expires_at=None, kubeconfig_sealed="")
        Snapshot.objects.filter(demo=demo, discarded_at=None, kind=SnapshotKind.PAUSED).update(
            discarded_at=now, restorable=False
        )
        transaction.on_commit(capacity.request_admission)
    return demo


def record_cleanup(demo: Demo, seq: int, *, deleted: bool) -> Demo:
    """A failed start's half-made cluster: removed, or look again (the orphan sweep takes over
    once the clean-up runs out of time)."""
    if deleted:
        record_event(demo, "cleaned-up", "Removed the half-created cluster.")
        return demo
    if is_overdue(demo):
        record_event(
            demo,
            "cleanup-stalled",
            "The half-created cluster is not gone yet; the periodic clean-up keeps trying.",
        )
        return demo
    return next_step(demo, seq)


def record_transient(demo: Demo, message: str, detail: str) -> None:
    """A step met a temporary problem; its job is retried with backoff."""
    record_event(
        demo, "retrying", f"Temporary problem: {message} Retrying.", data={"detail": detail[-4000:]}
    )


def fail_after_retries(demo: Demo, error: BaseException, detail: str) -> Demo:
    """A step kept failing through all its retries: fail the demo with what the owner can do."""
    if isinstance(error, BackendError):
        message = (
            f"{error.message} This kept failing after several attempts; try again later, or "
            "delete the demo."
        )
    else:
        message = (
            "Something went wrong in the portal while working on this demo. The details are in "
            "the event log; try again, or ask an admin if it keeps happening."
        )
    return fail_demo(demo, message, detail)


def fail_demo(demo: Demo, message: str, detail: str = "", *, cleanup: bool | None = None) -> Demo:
    """Mark a demo failed with a readable cause; remove a half-made cluster when it started."""
    failed_from = demo.status
    if cleanup is None:
        cleanup = failed_from in STARTING
    try:
        with transaction.atomic():
            demo = transition(
                demo,
                "fail",
                message=message,
                data={"detail": detail[-4000:]} if detail else None,
                error_message=message,
                error_detail=detail,
                failed_from=failed_from,
                progress=progress.mark_failed(demo.progress),
                kubeconfig_sealed="",
            )
            if cleanup:
                Demo.objects.filter(pk=demo.pk).update(
                    steps=F("steps") + 1, next_step_at=timezone.now()
                )
                demo.refresh_from_db(fields=["steps", "next_step_at"])
                dispatch.enqueue_step(Work.CLEANUP, demo.public_id, demo.steps)
            flagged = failed_from in STARTING and _count_failure(demo, message)
            transaction.on_commit(capacity.request_admission)
            # Mail trouble must not undo the failure, nor hide it from the event log.
            transaction.on_commit(
                lambda: notifications.demo_failed(demo, template_flagged=flagged), robust=True
            )
    except InvalidTransition:
        pass
    return demo


def _counts_for_template(demo: Demo) -> bool:
    """Whether this demo's start says something about its template: test launches try a draft,
    and a restore starts from a snapshot, not from the template alone."""
    return not (demo.is_test_launch or demo.restored_from_id)


def _count_failure(demo: Demo, cause: str) -> bool:
    """Count a failed start against the template; True when it took the template out of the
    catalog."""
    if not _counts_for_template(demo):
        return False
    if not template_services.record_template_failure(template_id=demo.template_id, cause=cause):
        return False
    limit = settings.DEMO_TEMPLATE_FLAG_AFTER
    record_event(
        demo,
        "template-flagged",
        f"“{demo.template.name}” is taken out of the catalog after {limit} failed starts in a "
        "row; its admins have been told.",
        data={"template": demo.template.slug, "failed_starts": limit},
    )
    log.warning("Template %s taken out of the catalog: %s", demo.template.slug, cause)
    return True


def fail_overdue(demo: Demo, now: datetime | None = None) -> bool:
    """Fail a demo whose work missed its deadline. True when it was failed now."""
    if demo.status == Status.FAILED or not is_overdue(demo, now):
        return False
    return fail_demo(demo, overdue_message(demo)).status == Status.FAILED
