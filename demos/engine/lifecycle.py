"""Every change of a demo happens here, and nowhere else.

One table, `TRANSITIONS`, says for each transition which states it leaves, the state it reaches,
the background work that carries it out, and the event it writes. The lifecycle's functions, the
buttons a page offers (`demos.sales.buttons`) and the tests all read it; nothing else lists which
state allows what.

Each transition is a compare-and-swap update (`filter(pk, status__in=allowed).update(...)`) that
acts only when exactly one row changed, so two workers, the expiry job and the reconcile sweep can
race without harm: whoever loses gets `InvalidTransition` and does nothing. Each transition writes
a `DemoEvent`; one that hands the demo to background work numbers the next step and enqueues it
after commit (see `demos.engine.dispatch`).

Functions named `<verb>_demo` are what people ask for (views, admin, commands). The workers' side
(`demos.engine.operations`) calls the backend and reports what it saw here: whether a demo is
ready, failed, overdue or worth another look is decided in this module, with one deadline
(`deadline`) and one message for a demo that missed it (`overdue_message`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from demos.backends import get_backend
from demos.backends.base import BackendError, Observation, Phase
from demos.durations import format_duration
from demos.engine import capacity, dispatch, progress
from demos.engine.dispatch import Work
from demos.engine.specs import Policy, SpecError, render_spec
from demos.errors import InvalidTransition, LifecycleError
from demos.models import (
    ACTIVE,
    KEPT,
    STARTING,
    WORKING,
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
# Pause, resume, archive, delete and clean-up get this long before the demo is marked failed.
OPERATION_TIMEOUT = timedelta(minutes=15)

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
class Transition:
    """One move of the state machine."""

    allowed: frozenset[str]
    to: Status
    kind: str  # the event's kind
    message: str  # the event's text, unless the caller has a more specific one
    # The background work that carries the change out; None when nothing more is to be done.
    work: Work | None = None
    # The action a person asks for with it (its button), if any; several may share one.
    action: str = ""
    # "…, so you cannot <verb> now."
    verb: str = "do that"


_RESTARTABLE = STARTING | {Status.READY, Status.PAUSED, Status.FAILED}

TRANSITIONS: dict[str, Transition] = {
    # What people ask for.
    "cancel": Transition(
        frozenset({Status.QUEUED}), Status.DELETED, "deleted", "Cancelled before it started.",
        action="delete", verb="delete it",
    ),
    "delete": Transition(
        _RESTARTABLE, Status.DELETING, "deleting", "Deleting the demo and its cluster.",
        Work.DELETE, action="delete", verb="delete it",
    ),
    "extend": Transition(
        frozenset({Status.READY}), Status.READY, "extended", "Extended.",
        action="extend", verb="extend it",
    ),
    "pause": Transition(
        frozenset({Status.READY}), Status.PAUSING, "pausing",
        "Pausing: the cluster stops, its data is kept.",
        Work.PAUSE, action="pause", verb="keep it for later",
    ),
    "resume": Transition(
        frozenset({Status.PAUSED}), Status.RESUMING, "resuming", "Resuming the cluster.",
        Work.RESUME, action="resume", verb="resume it",
    ),
    "archive": Transition(
        frozenset({Status.READY}), Status.ARCHIVING, "archiving",
        "Archiving: taking a snapshot, then deleting the cluster.",
        Work.ARCHIVE, action="archive", verb="archive it",
    ),
    # A failed demo tries again the step it failed in (`retry_demo` picks the row).
    "retry": Transition(
        frozenset({Status.FAILED}), Status.REQUESTED, "retried", "Trying again.",
        Work.PROVISION, action="retry", verb="retry it",
    ),
    "retry-pause": Transition(
        frozenset({Status.FAILED}), Status.PAUSING, "retried", "Trying the pause again.",
        Work.PAUSE, action="retry", verb="retry it",
    ),
    "retry-resume": Transition(
        frozenset({Status.FAILED}), Status.RESUMING, "retried", "Trying the resume again.",
        Work.RESUME, action="retry", verb="retry it",
    ),
    "retry-archive": Transition(
        frozenset({Status.FAILED}), Status.ARCHIVING, "retried", "Trying the archive again.",
        Work.ARCHIVE, action="retry", verb="retry it",
    ),
    "retry-delete": Transition(
        frozenset({Status.FAILED}), Status.DELETING, "retried", "Trying the delete again.",
        Work.DELETE, action="retry", verb="retry it",
    ),
    # What the system does on its own.
    "admit": Transition(
        frozenset({Status.QUEUED}), Status.REQUESTED, "admitted",
        "Waiting for a worker to create the cluster.", Work.PROVISION,
    ),
    "expire-delete": Transition(
        frozenset({Status.READY}), Status.DELETING, "expired", "Time is up: deleting the demo.",
        Work.DELETE,
    ),
    "expire-pause": Transition(
        frozenset({Status.READY}), Status.PAUSING, "expired",
        "Time is up: pausing it for later.", Work.PAUSE,
    ),
    "expire-archive": Transition(
        frozenset({Status.READY}), Status.ARCHIVING, "expired", "Time is up: archiving it.",
        Work.ARCHIVE,
    ),
    "retire-spare": Transition(
        STARTING | {Status.READY, Status.FAILED}, Status.DELETING, "retired",
        "Warm-pool spare retired.", Work.DELETE, verb="retire it",
    ),
    "retention": Transition(
        frozenset({Status.PAUSED}), Status.DELETING, "retention",
        "Kept for the whole retention time: deleting it now.", Work.DELETE,
    ),
    # The workers' side: what a step found.
    "begin": Transition(
        frozenset({Status.REQUESTED}), Status.PROVISIONING, "provisioning", "Creating the cluster."
    ),
    "install": Transition(
        frozenset({Status.PROVISIONING}), Status.INSTALLING, "installing",
        "Cluster is up; installing the charts.",
    ),
    "ready": Transition(STARTING, Status.READY, "ready", "Ready."),
    "resumed": Transition(
        frozenset({Status.RESUMING}), Status.READY, "ready", "Resumed and ready again."
    ),
    "paused": Transition(frozenset({Status.PAUSING}), Status.PAUSED, "paused", "Kept for later."),
    "archived": Transition(
        frozenset({Status.ARCHIVING}), Status.ARCHIVED, "archived",
        "Archived; the cluster is deleted.",
    ),
    "deleted": Transition(
        frozenset({Status.DELETING}), Status.DELETED, "deleted",
        "Deleted; nothing is left of its cluster.",
    ),
    "fail": Transition(
        ACTIVE | {Status.PAUSING, Status.DELETING}, Status.FAILED, "failed", "Failed."
    ),
}  # fmt: skip

# Which background work drives a demo out of each working state.
WORK_FOR_STATUS: dict[str, Work] = {
    **{rule.to: rule.work for rule in TRANSITIONS.values() if rule.work},
    **dict.fromkeys(STARTING, Work.PROVISION),
}


def states_for(action: str) -> frozenset[str]:
    """Every state in which a person's `action` may be asked for."""
    return frozenset().union(*(t.allowed for t in TRANSITIONS.values() if t.action == action))


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


def refusal(demo: Demo, verb: str) -> str:
    state = _STATE_EXPLAINED.get(demo.status, f"This demo is {demo.status}")
    return f"{state}, so you cannot {verb} now."


def transition(
    demo: Demo,
    name: str,
    *,
    actor: Actor = WORKER,
    message: str = "",
    data: dict[str, Any] | None = None,
    match: dict[str, Any] | None = None,
    **fields: Any,
) -> Demo:
    """Make transition `name` of the table, or raise `InvalidTransition`.

    `match` adds conditions the row must still meet (e.g. still an unclaimed spare). A demo
    leaving `ready` has no expiry any more, so its expiry job is cancelled; one handed to
    background work gets its next step numbered and enqueued.
    """
    rule = TRANSITIONS[name]
    now = timezone.now()
    if rule.work:
        fields.update(steps=F("steps") + 1, next_step_at=now)
    with transaction.atomic():
        changed = Demo.objects.filter(pk=demo.pk, status__in=rule.allowed, **(match or {})).update(
            status=rule.to, status_changed_at=now, **fields
        )
        demo.refresh_from_db()
        if changed != 1:
            raise InvalidTransition(refusal(demo, rule.verb))
        record_event(demo, rule.kind, message or rule.message, actor, data)
        if Status.READY in rule.allowed and rule.to != Status.READY:
            dispatch.cancel_expiry(demo.public_id)
        if rule.work:
            dispatch.enqueue_step(rule.work, demo.public_id, demo.steps)
    return demo


# --- Deadlines --------------------------------------------------------------------------------


def deadline(demo: Demo) -> datetime | None:
    """When the work on a demo must be done, or None when no work is under way.

    Starting counts from when the start began (the template's provisioning timeout, frozen in
    the spec); every other operation from when it was asked for. Clean-up of a failed start
    gets the same time as an operation.
    """
    if demo.status in STARTING:
        return (demo.started_at or demo.requested_at) + Policy.of(demo).provisioning_timeout
    if demo.status in WORKING or demo.status == Status.FAILED:
        return demo.status_changed_at + OPERATION_TIMEOUT
    return None


def is_overdue(demo: Demo, now: datetime | None = None) -> bool:
    due = deadline(demo)
    return due is not None and (now or timezone.now()) >= due


def overdue_message(demo: Demo) -> str:
    """What the owner reads when work on their demo missed its deadline."""
    if demo.status in STARTING:
        note = demo.progress.get("note", "")
        last = f" Last known state: {note}" if note else ""
        timeout = format_duration(Policy.of(demo).provisioning_timeout)
        return (
            f"The demo was not ready within {timeout}, so it was stopped and cleaned up.{last} "
            "Retry it; if it happens again, ask an admin to check the template."
        )
    return (
        f"“{demo.get_status_display()}” did not finish within "
        f"{format_duration(OPERATION_TIMEOUT)}. Retry it; if it keeps happening, ask an admin to "
        "look at the host cluster."
    )


def fail_overdue(demo: Demo, now: datetime | None = None) -> bool:
    """Fail a demo whose work missed its deadline. True when it was failed now."""
    if demo.status == Status.FAILED or not is_overdue(demo, now):
        return False
    return fail_demo(demo, overdue_message(demo)).status == Status.FAILED


# --- What people ask for ---------------------------------------------------------------------


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
    return transition(demo, "retire-spare", message=reason, match={"is_spare": True})


def _admit(demo: Demo, actor: Actor = WORKER) -> Demo:
    now = timezone.now()
    return transition(
        demo,
        "admit",
        actor=actor,
        started_at=now,
        progress=progress.mark(demo.progress, "queued", "done", now),
    )


def extension_refusal(demo: Demo) -> str | None:
    """Why `demo` cannot be extended now, in words; None when it can."""
    if (
        demo.status not in TRANSITIONS["extend"].allowed
        or demo.expires_at is None
        or demo.ready_at is None
    ):
        return (
            f"{_STATE_EXPLAINED.get(demo.status, 'This demo is not running')}; "
            "only a running demo can be extended."
        )
    policy = Policy.of(demo)
    if demo.extension_count >= policy.max_extensions:
        return (
            f"This demo has been extended {demo.extension_count} times, the most "
            f"“{demo.template.name}” allows. Keep it for later instead, or start a new one."
        )
    if demo.expires_at >= demo.ready_at + policy.max_lifetime:
        return (
            "This demo already runs for the longest time allowed "
            f"({format_duration(policy.max_lifetime)})."
        )
    return None


def extend_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Give a ready demo one more extension step, within the bounds frozen at its start."""
    refusal_text = extension_refusal(demo)
    if refusal_text:
        running = demo.status in TRANSITIONS["extend"].allowed
        raise (LifecycleError if running else InvalidTransition)(refusal_text)
    policy = Policy.of(demo)
    new_end = min(demo.expires_at + policy.extension_step, demo.ready_at + policy.max_lifetime)
    with transaction.atomic():
        changed = Demo.objects.filter(
            pk=demo.pk,
            status__in=TRANSITIONS["extend"].allowed,
            expires_at=demo.expires_at,
            extension_count=demo.extension_count,
        ).update(expires_at=new_end, extension_count=demo.extension_count + 1, warnings_sent=[])
        if changed != 1:
            raise InvalidTransition("This demo changed meanwhile; reload and try again.")
        demo.refresh_from_db()
        record_event(
            demo,
            TRANSITIONS["extend"].kind,
            f"Extended until {timezone.localtime(new_end):%H:%M %Z} "
            f"(extension {demo.extension_count} of {policy.max_extensions}).",
            actor,
            {"expires_at": new_end.isoformat()},
        )
        dispatch.schedule_expiry(demo.public_id, new_end)
    return demo


def delete_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Delete now. A queued demo just ends; anything with a cluster gets it removed."""
    if demo.status in TRANSITIONS["cancel"].allowed:
        return transition(demo, "cancel", actor=actor, ended_at=timezone.now())
    return transition(demo, "delete", actor=actor)


def pause_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Keep for later: stop the cluster, keep its data."""
    return transition(demo, "pause", actor=actor)


def resume_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Bring a paused demo back, with a fresh lifetime."""
    with transaction.atomic():
        capacity.lock_admission()
        if not capacity.has_room_for(demo):
            raise LifecycleError(
                "There is no capacity to resume this demo right now. End another demo, or try "
                "again in a few minutes."
            )
        return transition(demo, "resume", actor=actor)


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
    refusal_text = archive_refusal()
    if refusal_text:
        raise LifecycleError(refusal_text)
    return transition(demo, "archive", actor=actor)


def retry_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Try a failed demo's step again: start it again, or repeat the pause/archive/delete."""
    name = f"retry-{demo.failed_from}"
    if name not in TRANSITIONS:
        name = "retry"  # failed while starting (or running): start again from the beginning
    fields: dict[str, Any] = {"error_message": "", "error_detail": "", "failed_from": ""}
    with transaction.atomic():
        if TRANSITIONS[name].to == Status.REQUESTED:
            capacity.lock_admission()
            fields.update(
                started_at=timezone.now(),
                progress=progress.initial(demo.spec, queued_done=True),
            )
        return transition(demo, name, actor=actor, **fields)


def restore_snapshot(*, snapshot: Snapshot, owner: Any, start_token: str = "") -> Demo:
    """Start a new demo from an archived snapshot."""
    if snapshot.kind != SnapshotKind.ARCHIVED or not snapshot.restorable:
        raise LifecycleError(
            "This snapshot cannot be restored here: the cluster backend has no restore support. "
            "Start a new demo instead."
        )
    if snapshot.demo.status != Status.ARCHIVED:
        raise LifecycleError("This demo is still being archived; restore it once it is archived.")
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
    """End a demo whose time is up, as its frozen policy says. None when it is not due (any
    more)."""
    if demo.status != Status.READY or demo.expires_at is None:
        return None
    if demo.expires_at > timezone.now():
        # Ran early (clock skew between hosts): come back at the real time.
        dispatch.schedule_expiry(demo.public_id, demo.expires_at)
        return None
    action = ExpiryAction(Policy.of(demo).expiry_action)
    if action == ExpiryAction.ARCHIVE and archive_refusal():
        action = ExpiryAction.PAUSE  # keep it for later the only way that can come back
    try:
        return transition(
            demo, f"expire-{action}", actor=SCHEDULER, data={"expiry_action": str(action)}
        )
    except InvalidTransition:
        return None


def warn_of_expiry(demo: Demo, now: datetime) -> bool:
    """Remind the owner that `demo` ends soon, once per lead time. True when a reminder went out.

    Only the shortest lead that applies counts: a demo extended into the last ten minutes gets
    one reminder, not two at once.
    """
    from demos.engine import notifications

    leads = sorted(settings.DEMO_EXPIRY_WARNINGS, reverse=True)
    if demo.status != Status.READY or demo.expires_at is None or demo.is_spare:
        return False
    due = [lead for lead in leads if demo.expires_at - now <= lead]
    if not due:
        return False
    minutes = int(due[-1].total_seconds() // 60)
    if minutes in demo.warnings_sent:
        return False
    claimed = Demo.objects.filter(
        pk=demo.pk, status=Status.READY, warnings_sent=demo.warnings_sent
    ).update(warnings_sent=[*demo.warnings_sent, *(int(d.total_seconds() // 60) for d in due)])
    if not claimed:
        return False
    notifications.expiry_warning(demo, demo.expires_at - now)
    record_event(
        demo, "warned", f"Reminded the owner that the demo ends in {minutes} minutes.", SCHEDULER
    )
    return True


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
    if demo.status in TRANSITIONS["retention"].allowed:
        return transition(demo, "retention", actor=SCHEDULER)
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


# --- The workers' side: what a step found, and what follows from it ---------------------------


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
    return demo


def record_resume(
    demo: Demo, seq: int, observation: Observation | None, *, kubeconfig: str | None = None
) -> Demo:
    """Take in a resume step: None while the backend has not started the cluster again."""
    if observation is not None and observation.phase == Phase.READY:
        return _finish_resume(demo, observation, kubeconfig)
    if observation is not None and observation.phase == Phase.FAILED:
        return fail_demo(demo, observation.message, observation.detail, cleanup=False)
    return next_step(demo, seq)


def _finish_resume(demo: Demo, observation: Observation, kubeconfig: str | None) -> Demo:
    now = timezone.now()
    expires_at = now + demo.lifetime
    with transaction.atomic():
        demo = transition(
            demo,
            "resumed",
            ready_at=now,
            expires_at=expires_at,
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


def record_pause(demo: Demo, seq: int, *, paused: bool) -> Demo:
    if not paused:
        return next_step(demo, seq)
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
            transaction.on_commit(capacity.request_admission)
    except InvalidTransition:
        pass
    return demo
