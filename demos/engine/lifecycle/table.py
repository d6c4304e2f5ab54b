"""The lifecycle's table of transitions, the one function that makes them, and deadlines.

See the package's docstring (`demos.engine.lifecycle`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from demos.durations import format_duration
from demos.engine import dispatch
from demos.engine.dispatch import Work
from demos.engine.specs import Policy
from demos.errors import InvalidTransition
from demos.gate import state as gate_state
from demos.models import (
    ACTIVE,
    STARTING,
    WORKING,
    Demo,
    DemoEvent,
    Status,
)

OPERATION_TIMEOUT = timedelta(minutes=15)

# What a person is told when their action no longer fits the demo's state.
STATE_EXPLAINED = {
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
    Status.SLEEPING: "This demo is going to sleep",
    Status.ASLEEP: "This demo is asleep",
    Status.WAKING: "This demo is waking up",
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
# A demo can be deleted wherever it can be started again, and while it sleeps.
_DELETABLE = _RESTARTABLE | {Status.ASLEEP}

TRANSITIONS: dict[str, Transition] = {
    # What people ask for.
    "cancel": Transition(
        frozenset({Status.QUEUED}), Status.DELETED, "deleted", "Cancelled before it started.",
        action="delete", verb="delete it",
    ),
    "delete": Transition(
        _DELETABLE, Status.DELETING, "deleting", "Deleting the demo and its cluster.",
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
    "retry-sleep": Transition(
        frozenset({Status.FAILED}), Status.SLEEPING, "retried", "Trying to put it to sleep again.",
        Work.PAUSE, action="retry", verb="retry it",
    ),
    "retry-wake": Transition(
        frozenset({Status.FAILED}), Status.WAKING, "retried", "Trying to wake it again.",
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
    # Sleep: the same backend work as a pause and a resume, but the demo keeps its time left
    # and its slot, and wakes by itself when its link is opened (demos.engine.sleep).
    "wake": Transition(
        frozenset({Status.ASLEEP}), Status.WAKING, "waking", "Waking up.",
        Work.RESUME, action="wake", verb="wake it",
    ),
    # What the system does on its own.
    "sleep": Transition(
        frozenset({Status.READY}), Status.SLEEPING, "sleeping",
        "Nobody used it for a while: putting it to sleep.", Work.PAUSE,
    ),
    "sleep-retention": Transition(
        frozenset({Status.ASLEEP}), Status.DELETING, "retention",
        "Asleep for the whole retention time: deleting it now.", Work.DELETE,
    ),
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
    "asleep": Transition(
        frozenset({Status.SLEEPING}), Status.ASLEEP, "asleep",
        "Asleep: it wakes when someone opens it.",
    ),
    "woke": Transition(
        frozenset({Status.WAKING}), Status.READY, "ready", "Awake and ready again."
    ),
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


@cache  # the table is fixed: asked for every button of every row of a list
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
    state = STATE_EXPLAINED.get(demo.status, f"This demo is {demo.status}")
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
        publish_to_gate(demo)
    return demo


def publish_to_gate(demo: Demo) -> None:
    """Once the change commits, tell the gate (which answers the live link without asking the
    database) what the demo is now: running, asleep, ended.

    Robust: the gate also reads the row when its own copy is missing, so a failed publish must
    not undo the change the demo went through.
    """

    transaction.on_commit(lambda: gate_state.publish_demo(demo), robust=True)


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
