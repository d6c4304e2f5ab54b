"""What people ask of a demo: start, extend, pause, resume, archive, retry, restore, delete;
and what the scheduler decides on its own: expiry, reminders, admission, retention.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from demos.backends import get_backend
from demos.durations import format_duration
from demos.engine import capacity, dispatch, progress
from demos.engine.lifecycle.table import (
    SCHEDULER,
    STATE_EXPLAINED,
    TRANSITIONS,
    WORKER,
    Actor,
    publish_to_gate,
    record_event,
    refusal,
    transition,
)
from demos.engine.specs import Policy, SpecError, render_spec
from demos.errors import InvalidTransition, LifecycleError
from demos.models import (
    KEPT,
    Demo,
    DemoTemplate,
    ExpiryAction,
    Snapshot,
    SnapshotKind,
    Status,
)

# No demo runs for less: templates cannot default to less, and nobody can start one for less.
MIN_LIFETIME = timedelta(minutes=5)
# Pause, resume, archive, delete and clean-up get this long before the demo is marked failed.


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
    test_launch: bool = False,
) -> Demo:
    """Start a demo of `template` for `owner`, or queue it when capacity is full.

    A repeated `start_token` (a double submit) returns the demo the first request made.
    `test_launch`: a template admin tries unpublished content (the studio passes a copy of the
    template holding its draft); it takes no warm-pool spare and no one else sees it.
    """
    if start_token:
        existing = Demo.objects.filter(owner=owner, start_token=start_token).first()
        if existing:
            return existing
    if not template.enabled and not test_launch:
        raise LifecycleError(f"“{template.name}” is not available at the moment.")
    if template.flagged_at is not None and not test_launch:
        raise LifecycleError(
            f"“{template.name}” is not available right now: its last demos failed to start, and "
            "its admins have been told. Try another demo, or this one later."
        )
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
        if restored_from is None and not test_launch:
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
            is_test_launch=test_launch,
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
        # The published version the row holds; a test launch runs a draft, which has none.
        from_version_id=None if fields.get("is_test_launch") else template.published_version_id,
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
            publish_to_gate(demo)  # its end is known now
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
            f"{STATE_EXPLAINED.get(demo.status, 'This demo is not running')}; "
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
        ).update(
            expires_at=new_end,
            extension_count=demo.extension_count + 1,
            warnings_sent=[],
            # Extending answers a prospect's request for more time, whoever extends and how.
            more_time_requested_at=None,
        )
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
        publish_to_gate(demo)
    return demo


def delete_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Delete now. A queued demo just ends; anything with a cluster gets it removed."""
    if demo.status in TRANSITIONS["cancel"].allowed:
        return transition(demo, "cancel", actor=actor, ended_at=timezone.now())
    return transition(demo, "delete", actor=actor)


def pause_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Keep for later: stop the cluster, keep its data, and the time it had left (given back
    when it resumes)."""
    remaining = max(demo.expires_at - timezone.now(), timedelta(0)) if demo.expires_at else None
    return transition(demo, "pause", actor=actor, paused_remaining=remaining)


def resume_lifetime(demo: Demo) -> timedelta:
    """How long a paused demo runs once resumed: the time it had left when it was paused, but
    at least `MIN_LIFETIME`; its whole lifetime when that is not known (paused when its time was
    up, or before the time left was kept)."""
    if demo.paused_remaining is None:
        return demo.lifetime
    return max(demo.paused_remaining, MIN_LIFETIME)


def resume_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Bring a paused demo back, with the time it had left (see `resume_lifetime`)."""
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
    name = _retry_of(demo.failed_from)
    fields: dict[str, Any] = {"error_message": "", "error_detail": "", "failed_from": ""}
    with transaction.atomic():
        if TRANSITIONS[name].to == Status.REQUESTED:
            capacity.lock_admission()
            fields.update(
                started_at=timezone.now(),
                progress=progress.initial(demo.spec, queued_done=True),
            )
        return transition(demo, name, actor=actor, **fields)


def _retry_of(failed_from: str) -> str:
    """The retry that repeats the step a demo failed in: the one leading back to that state.

    A demo that failed while starting (or running) starts again from the beginning.
    """
    for name, rule in TRANSITIONS.items():
        if name.startswith("retry-") and rule.to == failed_from:
            return name
    return "retry"


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

    if demo.status != Status.READY or demo.expires_at is None or demo.is_spare:
        return False
    # A lead as long as the demo's whole run would warn at its very start ("ends in 59 minutes"
    # for a one-hour demo): only the leads shorter than the run count.
    run = max(demo.lifetime, demo.expires_at - (demo.ready_at or now))
    leads = sorted((lead for lead in settings.DEMO_EXPIRY_WARNINGS if lead < run), reverse=True)
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
    """Start queued demos, oldest first, while there is room. Safe to call concurrently.

    Capacity is counted once for the whole batch (`capacity.Occupancy`), under the admission lock
    that every start waits for, and each admitted demo is added to the counts as it goes.
    """
    admitted: list[Demo] = []
    with transaction.atomic():
        capacity.lock_admission()
        queued = list(
            Demo.objects.filter(status=Status.QUEUED)
            .select_related("template")
            .order_by("requested_at")[:100]
        )
        if not queued:
            return admitted
        room = capacity.Occupancy.counted()
        for demo in queued:
            if room.full:
                break
            if not room.has_room_for(demo):
                continue
            try:
                admitted.append(_admit(demo))
            except InvalidTransition:
                continue
            room.take(demo)
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


# --- Sleep (demos.engine.sleep decides who is idle) ------------------------------------------


def sleep_demo(*, demo: Demo, actor: Actor = SCHEDULER, idle_for: timedelta | None = None) -> Demo:
    """Put a running demo to sleep: pause its cluster in place, keep its time left and its slot.

    Its expiry stops (the clock does not run while it sleeps) and the time it had left is given
    back when it wakes. The compare-and-swap also matches the end it read, so an extension made
    meanwhile is never lost: the sleep is then refused and the sweep tries again later.
    """
    if demo.status != Status.READY or demo.expires_at is None:
        raise InvalidTransition(refusal(demo, "put it to sleep"))
    now = timezone.now()
    remaining = max(demo.expires_at - now, timedelta(0))
    idle = f" for {format_duration(idle_for)}" if idle_for else ""
    return transition(
        demo,
        "sleep",
        actor=actor,
        message=f"Nobody used it{idle}: putting it to sleep with "
        f"{format_duration(remaining)} left.",
        data={
            "remaining_seconds": int(remaining.total_seconds()),
            **({"idle_seconds": int(idle_for.total_seconds())} if idle_for else {}),
        },
        match={"expires_at": demo.expires_at, "is_spare": False},
        sleep_remaining=remaining,
        asleep_since=now,
        expires_at=None,
    )


def wake_demo(*, demo: Demo, actor: Actor) -> Demo:
    """Wake a sleeping demo: resume its cluster; it runs again with the time it had left.

    Idempotent, as every visitor opening the link at once asks: a demo already waking or awake
    is returned as it is. It needs no room (it kept its slot while asleep).
    """
    if demo.status in (Status.WAKING, Status.READY):
        return demo
    try:
        return transition(demo, "wake", actor=actor)
    except InvalidTransition:
        # Someone else woke it first (the demo is refreshed), or it is not asleep at all.
        if demo.status in (Status.WAKING, Status.READY):
            return demo
        if demo.status == Status.SLEEPING:
            raise LifecycleError(
                "This demo is going to sleep right now, so it cannot wake yet; try again in "
                "a few seconds."
            ) from None
        raise LifecycleError(refusal(demo, "wake it")) from None


def end_long_sleep(demo: Demo, now: datetime) -> Demo | None:
    """Delete a demo asleep for longer than its template keeps demos for later. None when it is
    not due (any more)."""
    if demo.status != Status.ASLEEP or demo.asleep_since is None:
        return None
    retention = Policy.of(demo).retention
    if demo.asleep_since + retention > now:
        return None
    try:
        return transition(
            demo,
            "sleep-retention",
            actor=SCHEDULER,
            message=f"Asleep for {format_duration(now - demo.asleep_since)}, longer than the "
            f"{format_duration(retention)} the template keeps demos for: deleting it now.",
            match={"asleep_since": demo.asleep_since},
        )
    except InvalidTransition:
        return None
