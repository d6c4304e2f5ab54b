"""Working on a demo together: adding and removing colleagues, and handing a demo over.

Services (keyword-only, one per change). Each writes a demo event, tells the gate at once who may
still enter the live app (a removed colleague is out within seconds, like a revoked link), and
emails the person it concerns once the change has committed. Capacity is counted against the owner
only, so handing a running demo over asks whether the new owner has a free slot.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet

from demos import access, roles
from demos.engine import capacity, notifications
from demos.engine.lifecycle import Actor, record_event
from demos.errors import LifecycleError
from demos.gate import state as gate_state
from demos.models import ACTIVE, Demo, Status


def person_name(person: Any) -> str:
    return person.get_full_name() or person.get_username()


def person_label(person: Any) -> str:
    """How a person is offered in the picker: "Bob Baker <bob@example.com>"."""
    name = person_name(person)
    return f"{name} <{person.email}>" if person.email else name


def portal_people() -> QuerySet[Any]:
    """Everyone who may use the portal: active, in one of its roles' groups, or a superuser."""
    groups = [roles.SALES, roles.SALES_MANAGERS, roles.TEMPLATE_ADMINS]
    return (
        get_user_model()
        .objects.filter(Q(groups__name__in=groups) | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


def candidates_for(demo: Demo) -> list[Any]:
    """Who could join `demo`: portal people who are neither its owner nor already on it."""
    return list(
        portal_people()
        .exclude(pk=demo.owner_id)
        .exclude(shared_demos=demo)
        .only("pk", "username", "first_name", "last_name", "email")
    )


_ADDRESS_IN_LABEL = re.compile(r"<([^<>\s]+@[^<>\s]+)>\s*$")


def find_person(text: str) -> Any | None:
    """The portal person `text` names: a label from the picker, an email address, a user name,
    or a full name that only one person has. None when nobody (or more than one) fits."""
    text = text.strip()
    if not text:
        return None
    people = portal_people()
    found = _ADDRESS_IN_LABEL.search(text)
    if found:
        text = found.group(1)
    for lookup in (Q(email__iexact=text), Q(username__iexact=text)):
        matches = list(people.filter(lookup)[:2])
        if len(matches) == 1:
            return matches[0]
    first, _, last = text.partition(" ")
    by_name = Q(first_name__iexact=text, last_name="") | Q(
        first_name__iexact=first, last_name__iexact=last
    )
    matches = list(people.filter(by_name)[:2])
    return matches[0] if len(matches) == 1 else None


def colleagues_of(demo: Demo) -> list[Any]:
    return list(demo.colleagues.order_by("first_name", "last_name", "username"))


def _refuse_ended(demo: Demo) -> None:
    if demo.status == Status.DELETED or demo.is_spare:
        raise LifecycleError("This demo has ended: there is nothing left to work on together.")


def _after_commit_publish(demo: Demo, person: Any, *, may_see: bool) -> None:
    cluster, person_id = demo.cluster_name, person.pk
    transaction.on_commit(
        lambda: gate_state.publish_member(cluster, person_id, may_see=may_see), robust=True
    )


def add_colleague(*, demo: Demo, person: Any, actor: Actor) -> None:
    """Let `person` see and act on `demo` as its owner does (not hand it over or change its
    team). Raises LifecycleError, in words for the page, when that cannot be."""
    _refuse_ended(demo)
    if person.pk == demo.owner_id:
        raise LifecycleError(f"{person_name(person)} owns this demo already.")
    if not portal_people().filter(pk=person.pk).exists():
        raise LifecycleError(f"{person_name(person)} cannot use the portal, so cannot join.")
    with transaction.atomic():
        if demo.colleagues.filter(pk=person.pk).exists():
            raise LifecycleError(f"{person_name(person)} is on this demo already.")
        demo.colleagues.add(person)
        record_event(
            demo,
            "colleague-added",
            f"Added {person_name(person)} as a colleague.",
            actor,
            {"user": person.pk},
        )
        _after_commit_publish(demo, person, may_see=True)
        transaction.on_commit(
            lambda: notifications.colleague_added(demo, colleague=person, by=actor.user),
            robust=True,
        )


def remove_colleague(*, demo: Demo, person: Any, actor: Actor) -> bool:
    """Take `person` off `demo`: it leaves their My demos, and the gate shuts them out of the live
    app within seconds. False when they were not on it (a double click)."""
    with transaction.atomic():
        removed, _ = Demo.colleagues.through.objects.filter(
            demo_id=demo.pk, user_id=person.pk
        ).delete()
        if not removed:
            return False
        record_event(
            demo,
            "colleague-removed",
            f"Removed {person_name(person)} from the demo's colleagues.",
            actor,
            {"user": person.pk},
        )
        # Managers and admins still see every demo: only the others are shut out.
        _after_commit_publish(demo, person, may_see=roles.can_view_fleet(person))
    return True


def hand_over_refusal(demo: Demo, new_owner: Any) -> str | None:
    """Why `new_owner` cannot take `demo` now, in words; None when they can. Capacity counts
    against the owner, so a demo holding a slot needs a free one of theirs. Call it under
    `capacity.lock_admission`, in the transaction that hands the demo over."""
    name = person_name(new_owner)
    limit = settings.DEMO_MAX_ACTIVE_PER_USER
    if demo.status in ACTIVE and not capacity.owner_has_room(new_owner):
        return (
            f"{name} already uses all {limit} of their demo slots, so this running demo cannot "
            f"be theirs now. Ask {name} to end one of theirs (Keep for later or Delete), or "
            "add them as a colleague instead."
        )
    if demo.status == Status.QUEUED:
        waiting = Demo.objects.filter(owner=new_owner, status=Status.QUEUED).count()
        if waiting >= limit:
            return (
                f"{name} already has {waiting} demos waiting for capacity, the most anyone may. "
                "Add them as a colleague instead, or try again once theirs have started."
            )
    return None


def hand_over_demo(*, demo: Demo, new_owner: Any, actor: Actor, keep_old_owner: bool) -> Demo:
    """Make `new_owner` the demo's owner. The old owner stays on as a colleague when
    `keep_old_owner`; the prospect's links keep working (they belong to the demo). Raises
    LifecycleError saying why when it cannot be done."""
    _refuse_ended(demo)
    if new_owner.pk == demo.owner_id:
        raise LifecycleError(f"{person_name(new_owner)} owns this demo already.")
    if not portal_people().filter(pk=new_owner.pk).exists():
        raise LifecycleError(f"{person_name(new_owner)} cannot use the portal, so cannot own it.")
    old_owner = demo.owner
    with transaction.atomic():
        capacity.lock_admission()
        refusal = hand_over_refusal(demo, new_owner)
        if refusal:
            raise capacity.CapacityError(refusal)
        # Compare and swap: two hand-overs at once give the demo to one person, not both. The
        # start token identifies a start of the old owner's; it means nothing to the new one.
        changed = Demo.objects.filter(pk=demo.pk, owner_id=demo.owner_id).update(
            owner=new_owner, start_token=""
        )
        if changed != 1:
            raise LifecycleError("This demo changed hands meanwhile; reload and try again.")
        demo.colleagues.remove(new_owner)
        if old_owner is not None and keep_old_owner:
            demo.colleagues.add(old_owner)
        demo.refresh_from_db()
        staying = " They stay on as a colleague." if old_owner and keep_old_owner else ""
        record_event(
            demo,
            "handed-over",
            f"Handed over from {person_name(old_owner) if old_owner else 'nobody'} to "
            f"{person_name(new_owner)}.{staying}",
            actor,
            {"from": old_owner.pk if old_owner else None, "to": new_owner.pk},
        )
        _after_commit_publish(demo, new_owner, may_see=True)
        if old_owner is not None:
            may_see = keep_old_owner or roles.can_view_fleet(old_owner)
            _after_commit_publish(demo, old_owner, may_see=may_see)
        transaction.on_commit(
            lambda: notifications.demo_handed_over(demo, new_owner=new_owner, by=actor.user),
            robust=True,
        )
    return demo


def shared_by_note(user: Any, demo: Demo) -> str:
    """ "Shared with you by Alice Able" on a demo `user` works on as a colleague; "" otherwise."""
    if demo.owner_id is None or demo.owner_id == user.pk or not access.is_colleague(user, demo):
        return ""
    return f"Shared with you by {person_name(demo.owner)}"
