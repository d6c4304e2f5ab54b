"""Every change of a demo's state happens here, and nowhere else.

Each transition is a compare-and-swap update (`filter(pk, status__in=allowed).update(...)`) that
acts only when exactly one row changed, so two workers, the expiry job and the reconcile sweep can
race without harm: whoever loses gets `InvalidTransition` and does nothing. Each transition writes
a `DemoEvent`. Background work is enqueued after commit (see `demos.engine.dispatch`).

Functions named `<verb>_demo` are what people ask for (views, admin, commands); the `begin_*`,
`finish_*` and `record_*` functions are the workers' side.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from demos.backends import get_backend
from demos.backends.base import Observation
from demos.durations import format_duration
from demos.engine import capacity, dispatch, progress
from demos.engine.dispatch import Work
from demos.engine.specs import SpecError, render_spec
from demos.errors import InvalidTransition, LifecycleError
from demos.models import (
    ACTIVE,
    KEPT,
    STARTING,
    Demo,
    DemoEvent,
    DemoTemplate,
    ExpiryAction,
    Snapshot,
    SnapshotKind,
    Status,
)

# No demo runs for less: templates cannot default to less, and nobody can start one for less.
MIN_LIFETIME = timedelta(minutes=5)

# What a person is told when their action no longer fits the demo's state.
_STATE_EXPLAINED = {
    Status.QUEUED: "This demo is waiting for capacity",
    Status.REQUESTED: "This demo is starting",
    Status.PROVISIONING: "This demo is starting",
    Status.INSTALLING: "This demo is starting",
    Status.READY: "This demo is running",
    Status.PAUSING: "This demo is being paused",
    Status.PAUSED: "This demo is kept for later",
    Status.RESUMING: "This demo is being resumed",
    Status.ARCHIVING: "This demo is being archived",
    Status.ARCHIVED: "This demo has been archived",
    Status.DELETING: "This demo is already being deleted",
    Status.DELETED: "This demo has been deleted",
    Status.FAILED: "This demo has failed",
}


@dataclass(frozen=True)
class Actor:
    """Who asked for a change: a person, or a named part of the system."""

    user: Any = None
    label: str = ""

    @classmethod
    def of(cls, user: Any) -> Actor:
        return cls(user=user if getattr(user, "is_authenticated", False) else None)


SCHEDULER = Actor(label="scheduler")
WORKER = Actor(label="worker")


def record_event(
    demo: Demo,
    kind: str,
    message: str,
    actor: Actor = WORKER,
    data: dict[str, Any] | None = None,
) -> DemoEvent:
    return DemoEvent.objects.create(
        demo=demo,
        kind=kind,
        message=message,
        actor=actor.user,
        actor_label=actor.label,
        data=data or {},
    )


def transition(
    demo: Demo,
    allowed: Iterable[str],
    to: Status,
    *,
    kind: str,
    message: str,
    actor: Actor = WORKER,
    action: str = "do that",
    data: dict[str, Any] | None = None,
    match: dict[str, Any] | None = None,
    **fields: Any,
) -> Demo:
    """Move `demo` from one of `allowed` to `to`, or raise `InvalidTransition`.

    `match` adds conditions the row must still meet (e.g. still an unclaimed spare).
    """
    now = timezone.now()
    allowed = set(allowed)
    changed = Demo.objects.filter(pk=demo.pk, status__in=allowed, **(match or {})).update(
        status=to, status_changed_at=now, **fields
    )
    demo.refresh_from_db()
    if changed != 1:
        state = _STATE_EXPLAINED.get(demo.status, f"This demo is {demo.status}")
        raise InvalidTransition(f"{state}, so you cannot {action} now.")
    record_event(demo, kind, message, actor, data)
    return demo


def _new_cluster_name() -> str:
    # DNS-1035: a lowercase letter first, then letters and digits; short enough for every
    # derived name (namespace prefix, `vc-NAME` secret, `data-NAME-0` claim). 64 random bits:
    # with 40, a table of a million demos would give one start in a million a name taken.
    return "demo-" + secrets.token_hex(8)


def _frozen_spec(demo: Demo) -> dict[str, Any]:
    try:
        return render_spec(demo)
    except SpecError as exc:
        raise LifecycleError(
            f"The template “{demo.template.name}” has an error ({exc}). Ask an admin to fix it."
        ) from exc


def _hand_over(
    demo: Demo, allowed: Iterable[str], to: Status, work: Work, **transition_args: Any
) -> Demo:
    """Transition, then hand the demo to the background job that carries the change out.

    A demo leaving `ready` has no expiry any more, so its expiry job is cancelled too.
    """
    with transaction.atomic():
        demo = transition(demo, allowed, to, **transition_args)
        dispatch.cancel_expiry(demo.public_id)
        dispatch.enqueue(work, demo.public_id)
    return demo


# --- What people ask for ---------------------------------------------------------------------


def start_demo(
    *,
    template: DemoTemplate,
    owner: Any,
    prospect_name: str = "",
    prospect_company: str = "",
    lifetime: timedelta | None = None,
    start_token: str = "",
    restored_from: Snapshot | None = None,
) -> Demo:
    """Start a demo of `template` for `owner`, or queue it when capacity is full.

    A repeated `start_token` (a double submit) returns the demo the first request made.
    """
    if start_token:
        existing = Demo.objects.filter(owner=owner, start_token=start_token).first()
        if existing:
            return existing
    if not template.enabled:
        raise LifecycleError(f"“{template.name}” is not available at the moment.")
    lifetime = lifetime or template.default_lifetime
    if lifetime < MIN_LIFETIME:
        raise LifecycleError(f"A demo runs at least {format_duration(MIN_LIFETIME)}.")
    if lifetime > template.max_lifetime:
        raise LifecycleError(
            f"A demo of “{template.name}” can live at most "
            f"{format_duration(template.max_lifetime)}; choose a shorter lifetime."
        )
    prospect = {
        "prospect_name": prospect_name.strip(),
        "prospect_company": prospect_company.strip(),
    }
    try:
        if restored_from is None:
            claimed = _claim_spare(template, owner, lifetime, start_token, **prospect)
            if claimed is not None:
                return claimed
        # Rendered before the lock: every other start waits for as long as the lock is held.
        demo = _new_demo(
            template,
            owner=owner,
            lifetime=lifetime,
            start_token=start_token,
            restored_from=restored_from,
            **prospect,
        )
        with transaction.atomic():
            capacity.lock_admission()
            # Under the lock, so parallel starts cannot each see room for one more in the queue.
            capacity.check_user_limit(owner)
            demo.save()
            actor = Actor.of(owner)
            what = "Restore" if restored_from else "Start"
            record_event(
                demo,
                "requested",
                f"{what} requested for {demo.prospect_company or 'an unnamed prospect'}.",
                actor,
                {
                    "template_version": template.version,
                    "lifetime_seconds": int(lifetime.total_seconds()),
                },
            )
            if capacity.has_room_for(demo):
                _admit(demo, actor)
            else:
                record_event(demo, "queued", "Capacity is full: queued until room frees up.")
    except IntegrityError:
        # The same start token committed first in a concurrent request.
        existing = Demo.objects.filter(owner=owner, start_token=start_token).first()
        if existing and start_token:
            return existing
        raise
    return demo


def _new_demo(template: DemoTemplate, **fields: Any) -> Demo:
    """An unsaved demo with its frozen spec. Rendering is the slow part of a start, so callers
    do it before taking the admission lock and save the demo under it."""
    demo = Demo(
        template=template,
        template_version=template.version,
        cluster_name=_new_cluster_name(),
        **fields,
    )
    demo.spec = _frozen_spec(demo)
    demo.progress = progress.initial(demo.spec)
    return demo


def _claim_spare(
    template: DemoTemplate, owner: Any, lifetime: timedelta, start_token: str, **prospect: str
) -> Demo | None:
    """Hand a ready warm-pool spare to `owner`, or None when there is none to take.

    The claim is a compare-and-swap on `is_spare`: of many concurrent starts, exactly one gets
    each spare, on PostgreSQL and SQLite alike; the others try the next spare or start cold.
    """
    spares = Demo.objects.filter(template=template, is_spare=True, status=Status.READY)
    candidates = list(spares.order_by("ready_at").values_list("pk", flat=True)[:10])
    if not candidates:
        return None
    now = timezone.now()
    for pk in candidates:
        with transaction.atomic():
            capacity.lock_admission()
            if not (capacity.owner_has_room(owner) and capacity.template_has_room(template)):
                return None
            claimed = Demo.objects.filter(pk=pk, is_spare=True, status=Status.READY).update(
                is_spare=False,
                owner=owner,
                claimed_at=now,
                ready_at=now,
                lifetime=lifetime,
                expires_at=now + lifetime,
                start_token=start_token,
                **prospect,
            )
            if not claimed:
                continue
            demo = Demo.objects.select_related("template").get(pk=pk)
            record_event(
                demo,
                "claimed",
                f"Taken from the warm pool for {demo.prospect_company or 'an unnamed prospect'}: "
                "ready at once.",
                Actor.of(owner),
                {"lifetime_seconds": int(lifetime.total_seconds())},
            )
            dispatch.schedule_expiry(demo.public_id, demo.expires_at)
            transaction.on_commit(lambda: dispatch.request_pool_refill(template.pk))
            return demo
    return None


def start_spare(*, template: DemoTemplate) -> Demo:
    """Pre-provision one unowned warm-pool spare of `template` (it never expires unclaimed)."""
    demo = _new_demo(template, is_spare=True, lifetime=template.default_lifetime)
    with transaction.atomic():
        capacity.lock_admission()
        demo.save()
        record_event(demo, "requested", "Warm-pool spare requested.", WORKER)
        if not capacity.has_room_for(demo):
            raise capacity.CapacityError("No capacity for another warm-pool spare.")
        _admit(demo)
    return demo


def retire_spare(*, demo: Demo, reason: str) -> Demo:
    """Delete an unclaimed spare (recycling, shrinking, or clearing a failed one)."""
    return _hand_over(
        demo,
        STARTING | {Status.READY, Status.FAILED},
        Status.DELETING,
        Work.DELETE,
        kind="retired",
        message=reason,
        action="retire it",
        match={"is_spare": True},
    )


def _admit(demo: Demo, actor: Actor = WORKER) -> Demo:
    now = timezone.now()
    demo = transition(
        demo,
        {Status.QUEUED},
        Status.REQUESTED,
        kind="admitted",
        message="Waiting for a worker to create the cluster.",
        actor=actor,
        started_at=now,
        progress=progress.mark(demo.progress, "queued", "done", now),
    )
    dispatch.enqueue(Work.PROVISION, demo.public_id)
    return demo


def extension_refusal(demo: Demo) -> str | None:
    """Why `demo` cannot be extended now, in words; None when it can."""
    template = demo.template
    if demo.status != Status.READY or demo.expires_at is None or demo.ready_at is None:
        return (
            f"{_STATE_EXPLAINED.get(demo.status, 'This demo is not running')}; "
            "only a running demo can be extended."
        )
    if demo.extension_count >= template.max_extensions:
        return (
            f"This demo has been extended {demo.extension_count} times, the most "
            f"“{template.name}” allows. Keep it for later instead, or start a new one."
        )
    if demo.expires_at >= demo.ready_at + template.max_lifetime:
        return (
            "This demo already runs for the longest time allowed "
            f"({format_duration(template.max_lifetime)})."
        )
    return None


def extend_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Give a ready demo one more `extension_step`, within the template's bounds."""
    template = demo.template
    refusal = extension_refusal(demo)
    if refusal:
        raise (InvalidTransition if demo.status != Status.READY else LifecycleError)(refusal)
    new_end = min(demo.expires_at + template.extension_step, demo.ready_at + template.max_lifetime)
    with transaction.atomic():
        changed = Demo.objects.filter(
            pk=demo.pk,
            status=Status.READY,
            expires_at=demo.expires_at,
            extension_count=demo.extension_count,
        ).update(expires_at=new_end, extension_count=demo.extension_count + 1, warnings_sent=[])
        if changed != 1:
            raise InvalidTransition("This demo changed meanwhile; reload and try again.")
        demo.refresh_from_db()
        record_event(
            demo,
            "extended",
            f"Extended until {timezone.localtime(new_end):%H:%M %Z} "
            f"(extension {demo.extension_count} of {template.max_extensions}).",
            actor,
            {"expires_at": new_end.isoformat()},
        )
        dispatch.schedule_expiry(demo.public_id, new_end)
    return demo


def delete_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Delete now. A queued demo just ends; anything with a cluster gets it removed."""
    if demo.status == Status.QUEUED:
        return transition(
            demo,
            {Status.QUEUED},
            Status.DELETED,
            kind="deleted",
            message="Cancelled before it started.",
            actor=actor,
            action="delete it",
            ended_at=timezone.now(),
        )
    return _hand_over(
        demo,
        STARTING | {Status.READY, Status.PAUSED, Status.FAILED},
        Status.DELETING,
        Work.DELETE,
        kind="deleting",
        message="Deleting the demo and its cluster.",
        actor=actor,
        action="delete it",
    )


def pause_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Keep for later: stop the cluster, keep its data."""
    return _hand_over(
        demo,
        {Status.READY},
        Status.PAUSING,
        Work.PAUSE,
        kind="pausing",
        message="Pausing: the cluster stops, its data is kept.",
        actor=actor,
        action="keep it for later",
    )


def resume_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Bring a paused demo back, with a fresh lifetime."""
    with transaction.atomic():
        capacity.lock_admission()
        if not capacity.has_room_for(demo):
            raise LifecycleError(
                "There is no capacity to resume this demo right now. End another demo, or try "
                "again in a few minutes."
            )
        demo = transition(
            demo,
            {Status.PAUSED},
            Status.RESUMING,
            kind="resuming",
            message="Resuming the cluster.",
            actor=actor,
            action="resume it",
        )
        dispatch.enqueue(Work.RESUME, demo.public_id)
    return demo


def archive_refusal() -> str | None:
    """Why demos cannot be archived here (the backend cannot restore archives); None if they can."""
    backend = get_backend()
    if backend.can_restore:
        return None
    return getattr(backend, "restore_unavailable_message", "") or (
        "Archives cannot be restored with this cluster backend, so archiving would lose the demo. "
        "Keep it for later instead: it stays paused with its data."
    )


def archive_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Snapshot the cluster to storage, then delete it."""
    refusal = archive_refusal()
    if refusal:
        raise LifecycleError(refusal)
    return _hand_over(
        demo,
        {Status.READY},
        Status.ARCHIVING,
        Work.ARCHIVE,
        kind="archiving",
        message="Archiving: taking a snapshot, then deleting the cluster.",
        actor=actor,
        action="archive it",
    )


def retry_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Try a failed demo's step again: start it again, or repeat the pause/archive/delete."""
    target = Status(demo.failed_from) if demo.failed_from else Status.REQUESTED
    if target in STARTING:
        target = Status.REQUESTED
    with transaction.atomic():
        if target == Status.REQUESTED:
            capacity.lock_admission()
        demo = transition(
            demo,
            {Status.FAILED},
            target,
            kind="retried",
            message="Trying again.",
            actor=actor,
            action="retry it",
            error_message="",
            error_detail="",
            failed_from="",
            started_at=timezone.now(),
            progress=progress.initial(demo.spec, queued_done=True)
            if target == Status.REQUESTED
            else demo.progress,
        )
        dispatch.enqueue(dispatch.WORK_FOR_STATUS[target], demo.public_id)
    return demo


def restore_snapshot(*, snapshot: Snapshot, owner: Any, start_token: str = "") -> Demo:
    """Start a new demo from an archived snapshot."""
    if snapshot.kind != SnapshotKind.ARCHIVED or not snapshot.restorable:
        raise LifecycleError(
            "This snapshot cannot be restored here: the cluster backend has no restore support. "
            "Start a new demo instead."
        )
    if snapshot.discarded_at:
        raise LifecycleError("This snapshot has passed its retention time and was discarded.")
    return start_demo(
        template=snapshot.template,
        owner=owner,
        prospect_name=snapshot.demo.prospect_name,
        prospect_company=snapshot.demo.prospect_company,
        start_token=start_token,
        restored_from=snapshot,
    )


def expire_demo(*, demo: Demo) -> Demo | None:
    """End a demo whose time is up, as its template says. None when it is not due (any more)."""
    if demo.status != Status.READY or demo.expires_at is None or demo.expires_at > timezone.now():
        return None
    action = demo.template.expiry_action
    if action == ExpiryAction.ARCHIVE and archive_refusal():
        action = ExpiryAction.PAUSE  # keep it for later the only way that can come back
    target, work, message = {
        ExpiryAction.DELETE: (Status.DELETING, Work.DELETE, "Time is up: deleting the demo."),
        ExpiryAction.PAUSE: (Status.PAUSING, Work.PAUSE, "Time is up: pausing it for later."),
        ExpiryAction.ARCHIVE: (Status.ARCHIVING, Work.ARCHIVE, "Time is up: archiving it."),
    }[ExpiryAction(action)]
    try:
        return _hand_over(
            demo,
            {Status.READY},
            target,
            work,
            kind="expired",
            message=message,
            actor=SCHEDULER,
            data={"expiry_action": str(action)},
        )
    except InvalidTransition:
        return None


# --- The workers' side ------------------------------------------------------------------------


def begin_provisioning(demo: Demo) -> Demo:
    if demo.status != Status.REQUESTED:
        return demo
    try:
        return transition(
            demo,
            {Status.REQUESTED},
            Status.PROVISIONING,
            kind="provisioning",
            message="Creating the cluster.",
            attempts=demo.attempts + 1,
            progress=progress.mark(demo.progress, "cluster", "active"),
        )
    except InvalidTransition:
        return demo


def record_observation(demo: Demo, observation: Observation) -> Demo:
    """Store what the backend sees; announce each step that finished or started."""
    new_progress, news = progress.apply_observation(demo.progress, observation)
    fields: dict[str, Any] = {"progress": new_progress}
    if observation.urls:
        fields["urls"] = list(observation.urls)
    if new_progress != demo.progress or fields.get("urls", demo.urls) != demo.urls:
        Demo.objects.filter(pk=demo.pk, status__in=STARTING | {Status.RESUMING}).update(**fields)
    for message in news:
        record_event(demo, "progress", message)
    if demo.status == Status.PROVISIONING and progress.cluster_is_up(new_progress):
        # Another worker may have moved it on already; that is fine.
        with contextlib.suppress(InvalidTransition):
            demo = transition(
                demo,
                {Status.PROVISIONING},
                Status.INSTALLING,
                kind="installing",
                message="Cluster is up; installing the charts.",
            )
    demo.refresh_from_db()
    return demo


def finish_provisioning(demo: Demo, observation: Observation) -> Demo:
    now = timezone.now()
    live_url = observation.urls[0] if observation.urls else demo.spec.get("entry_url", "")
    # An unclaimed spare has no lifetime yet: its clock starts when someone claims it.
    expires_at = None if demo.is_spare else now + demo.lifetime
    started = demo.started_at or demo.requested_at
    demo = transition(
        demo,
        STARTING,
        Status.READY,
        kind="ready",
        message=f"Ready after {format_duration(now - started)}.",
        live_url=live_url,
        urls=list(observation.urls),
        ready_at=now,
        expires_at=expires_at,
        time_to_ready=now - started,
        progress=progress.all_done(demo.progress, now),
        data={"seconds_to_ready": round((now - started).total_seconds(), 3)},
    )
    if expires_at is not None:
        dispatch.schedule_expiry(demo.public_id, expires_at)
    return demo


def finish_resume(demo: Demo, observation: Observation) -> Demo:
    now = timezone.now()
    expires_at = now + demo.lifetime
    demo = transition(
        demo,
        {Status.RESUMING},
        Status.READY,
        kind="ready",
        message="Resumed and ready again.",
        ready_at=now,
        expires_at=expires_at,
        keep_until=None,
        extension_count=0,
        warnings_sent=[],
        urls=list(observation.urls) or demo.urls,
    )
    Snapshot.objects.filter(demo=demo, kind=SnapshotKind.PAUSED, discarded_at=None).update(
        discarded_at=now, restorable=False, note="Resumed."
    )
    dispatch.schedule_expiry(demo.public_id, expires_at)
    return demo


def finish_pause(demo: Demo) -> Demo:
    now = timezone.now()
    keep_until = now + demo.template.retention
    with transaction.atomic():
        demo = transition(
            demo,
            {Status.PAUSING},
            Status.PAUSED,
            kind="paused",
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


def finish_archive(demo: Demo, location: str, restorable: bool) -> Demo:
    now = timezone.now()
    keep_until = now + demo.template.retention
    with transaction.atomic():
        demo = transition(
            demo,
            {Status.ARCHIVING},
            Status.ARCHIVED,
            kind="archived",
            message=f"Archived to {location}; the cluster is deleted.",
            ended_at=now,
            keep_until=keep_until,
            expires_at=None,
            data={"location": location},
        )
        Snapshot.objects.create(
            demo=demo,
            template=demo.template,
            kind=SnapshotKind.ARCHIVED,
            location=location,
            restorable=restorable,
            expires_at=keep_until,
        )
    transaction.on_commit(capacity.request_admission)
    return demo


def finish_delete(demo: Demo) -> Demo:
    now = timezone.now()
    demo = transition(
        demo,
        {Status.DELETING},
        Status.DELETED,
        kind="deleted",
        message="Deleted; nothing is left of its cluster.",
        ended_at=now,
        expires_at=None,
    )
    Snapshot.objects.filter(demo=demo, discarded_at=None, kind=SnapshotKind.PAUSED).update(
        discarded_at=now, restorable=False
    )
    transaction.on_commit(capacity.request_admission)
    return demo


def fail_demo(demo: Demo, message: str, detail: str = "", *, cleanup: bool | None = None) -> Demo:
    """Mark a demo failed with a readable cause; remove a half-made cluster when it started."""
    failed_from = demo.status
    if cleanup is None:
        cleanup = failed_from in STARTING
    try:
        demo = transition(
            demo,
            ACTIVE | {Status.PAUSING, Status.DELETING},
            Status.FAILED,
            kind="failed",
            message=message,
            data={"detail": detail[-4000:]} if detail else None,
            error_message=message,
            error_detail=detail,
            failed_from=failed_from,
            progress=progress.mark_failed(demo.progress),
        )
    except InvalidTransition:
        return demo
    dispatch.cancel_expiry(demo.public_id)
    if cleanup:
        dispatch.enqueue(Work.CLEANUP, demo.public_id)
    transaction.on_commit(capacity.request_admission)
    return demo


def admit_queued() -> list[Demo]:
    """Start queued demos, oldest first, while there is room. Safe to call concurrently."""
    admitted: list[Demo] = []
    with transaction.atomic():
        capacity.lock_admission()
        for demo in Demo.objects.filter(status=Status.QUEUED).order_by("requested_at")[:100]:
            if capacity.has_room_for(demo):
                try:
                    admitted.append(_admit(demo))
                except InvalidTransition:
                    continue
    return admitted


def discard_kept(demo: Demo) -> Demo | None:
    """Retention ran out: delete a paused demo's cluster, or let an archive go."""
    now = timezone.now()
    if demo.keep_until is None or demo.keep_until > now or demo.status not in KEPT:
        return None
    if demo.status == Status.PAUSED:
        return _hand_over(
            demo,
            {Status.PAUSED},
            Status.DELETING,
            Work.DELETE,
            kind="retention",
            message="Kept for the whole retention time: deleting it now.",
            actor=SCHEDULER,
        )
    with transaction.atomic():
        changed = Demo.objects.filter(pk=demo.pk, keep_until=demo.keep_until).update(
            keep_until=None
        )
        if changed:
            Snapshot.objects.filter(demo=demo, discarded_at=None).update(
                discarded_at=now, restorable=False, note="Retention time ended."
            )
            record_event(demo, "retention", "The archive passed its retention time.", SCHEDULER)
    return demo
