"""What the gate knows about demos and links, kept in Redis so a check never reads the database.

Three kinds of entries, each a short string:

- `gate:demo:<cluster>`: `open:<end>` (running; `end` in epoch seconds, 0 for none), `asleep`
  (sleeping, or on the way there or back: opening it wakes it) or `closed` (anything else);
- `gate:link:<id>`: `open:<end>:<cluster>` or `closed` (revoked);
- `gate:member:<cluster>:<user id>`: `open` while that person may see the demo (its owner, a
  colleague, a sales manager or admin), `closed` once they may not (a colleague removed, an owner
  who handed the demo over).

Every change writes them at once (`publish_demo`, `publish_link`, `publish_member`, after the
change commits). A
check that finds one missing reads the database and stores what it found with SET NX, so a check
racing a change never overwrites the change's newer value. Entries live
DEMO_GATE_STATE_SECONDS, which bounds how long a write lost to a Redis failure can linger.

Each process keeps the decisions it made for DEMO_GATE_CACHE_SECONDS (one second): a browser
loading a page asks for dozens of files, and a decision taken a moment ago still holds. So a
revocation or a demo's end takes effect within that time plus the next request, and most checks
cost no round trip at all. Allowed requests are counted in the process too, and sent to Redis in
one round trip at most once per that time (demos.gate.activity).
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models.signals import post_save
from redis import Redis
from redis.exceptions import RedisError

from demos.gate import activity
from demos.gate.passes import Pass
from demos.models import RESTING, Demo, ShareLink, Status
from portal.redis_connection import shared
from portal.user_cache import roles_changed

log = logging.getLogger(__name__)

CLOSED = "closed"
ASLEEP = "asleep"


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"  # the pass no longer opens this demo (revoked, expired, ended)
    ASLEEP = "asleep"  # a good pass, but the demo sleeps: wake it and come back


def demo_key(cluster: str) -> str:
    return f"gate:demo:{cluster}"


def link_key(link_id: int) -> str:
    return f"gate:link:{link_id}"


def member_key(cluster: str, user_id: int) -> str:
    return f"gate:member:{cluster}:{user_id}"


def _epoch(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment is not None else 0


def demo_value(status: str, expires_at: datetime | None) -> str:
    if status == Status.READY:
        return f"open:{_epoch(expires_at)}"
    return ASLEEP if status in RESTING else CLOSED


def link_value(revoked_at: datetime | None, expires_at: datetime | None, cluster: str) -> str:
    return CLOSED if revoked_at is not None else f"open:{_epoch(expires_at)}:{cluster}"


def member_value(may_see: bool) -> str:
    return "open" if may_see else CLOSED


def _redis() -> Redis:
    return shared()


def _write(key: str, value: str, only_if_missing: bool = False) -> None:
    try:
        _redis().set(key, value, ex=settings.DEMO_GATE_STATE_SECONDS, nx=only_if_missing)
    except RedisError:
        log.error("The gate could not record %s=%s: Redis is unavailable", key, value)


def publish_demo(demo: Demo) -> None:
    """Tell the gate about a demo's new state (called after each change commits)."""
    _write(demo_key(demo.cluster_name), demo_value(demo.status, demo.expires_at))


def publish_link(link: ShareLink) -> None:
    _write(link_key(link.pk), link_value(link.revoked_at, link.expires_at, link.demo.cluster_name))


def publish_member(cluster: str, user_id: int, *, may_see: bool) -> None:
    """Tell the gate whether a person may still enter a demo (called after the change commits)."""
    _write(member_key(cluster, user_id), member_value(may_see))


def forget_members(user_ids: Iterable[int]) -> None:
    """Drop every member entry of these people, now and again after the current transaction
    commits, so their next check asks the database who may see the demo (after a change of
    role or a deactivation; rare, so a SCAN of the gate's keys is affordable)."""
    ids = [user_id for user_id in user_ids if user_id is not None]

    def drop() -> None:
        try:
            client = _redis()
            for user_id in ids:
                keys = list(client.scan_iter(match=f"gate:member:*:{user_id}", count=1000))
                if keys:
                    client.delete(*keys)
        except RedisError:
            log.error(
                "The gate could not forget the entries of people %s: Redis is unavailable", ids
            )

    if ids:
        drop()
        if connection.in_atomic_block:
            transaction.on_commit(drop)


def _roles_changed(sender: Any, user_ids: Iterable[int], **kwargs: Any) -> None:
    forget_members(user_ids)


def _person_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    if not instance.is_active:  # deactivated: their passes to the team's demos stop now
        forget_members([instance.pk])


def connect_signals() -> None:
    """Called once at start-up (demos/apps.py)."""
    roles_changed.connect(_roles_changed, dispatch_uid="demos.gate.roles-changed")
    post_save.connect(
        _person_saved, sender=get_user_model(), dispatch_uid="demos.gate.person-saved"
    )


def _demo_from_database(cluster: str) -> str:
    row = Demo.objects.filter(cluster_name=cluster).values_list("status", "expires_at").first()
    return demo_value(*row) if row else CLOSED


def _link_from_database(link_id: int) -> str:
    row = (
        ShareLink.objects.filter(pk=link_id)
        .values_list("revoked_at", "expires_at", "demo__cluster_name")
        .first()
    )
    return link_value(*row) if row else CLOSED


def _member_from_database(cluster: str, user_id: int) -> str:
    from demos import access  # the one place that says who may see a demo

    demo = Demo.objects.filter(cluster_name=cluster).only("pk", "owner_id", "is_spare").first()
    person = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return member_value(demo is not None and person is not None and access.can_see(person, demo))


def decide(grant: Pass, demo: str, entry: str | None, now: float) -> Decision:
    """The decision for `grant`, given the demo's entry and the pass's own: the link's for a
    prospect, the member's for a team member."""
    if not grant.is_prospect and entry != "open":
        return Decision.DENY  # no longer one of the demo's people
    link = entry
    if grant.is_prospect:
        parts = (link or CLOSED).split(":", 2)
        if len(parts) != 3 or parts[0] != "open" or parts[2] != grant.cluster:
            return Decision.DENY
        if 0 < int(parts[1]) <= now:
            return Decision.DENY
    if demo == ASLEEP:
        return Decision.ASLEEP
    kind, _, end = demo.partition(":")
    if kind != "open" or 0 < int(end) <= now:
        return Decision.DENY
    return Decision.ALLOW


class _Held:
    """This process's recent decisions, per pass, until a moment in epoch seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decisions: dict[tuple[str, str, int], tuple[Decision, float]] = {}

    def get(self, key: tuple[str, str, int], now: float) -> Decision | None:
        held = self.decisions.get(key)
        return held[0] if held is not None and held[1] > now else None

    def put(self, key: tuple[str, str, int], decision: Decision, until: float) -> None:
        with self.lock:
            if len(self.decisions) > 10_000:  # many visitors: start again rather than grow
                self.decisions = {k: v for k, v in self.decisions.items() if v[1] > until - 60}
            self.decisions[key] = (decision, until)

    def clear(self) -> None:
        with self.lock:
            self.decisions = {}

    def after_fork(self) -> None:
        self.lock = threading.Lock()  # another thread of the parent may have held it
        self.decisions = {}


_held = _Held()
os.register_at_fork(after_in_child=_held.after_fork)


def forget_held() -> None:
    """Drop this process's held decisions and uncounted requests (a new test, a new world)."""
    _held.clear()
    activity.discard_pending()


def check(grant: Pass, *, counts: bool, now: float | None = None, fresh: bool = False) -> Decision:
    """Whether `grant` opens its demo now; counts the request when allowed and `counts`.

    No database query while the entries are in Redis (one per missing entry otherwise), and no
    round trip at all while this process holds a decision for the pass. With Redis away the
    database decides. `fresh` asks Redis whatever is held (and holds the new answer): for the
    moment a pass is given, when a demo may have just woken.
    """
    now = now or time.time()
    hold = settings.DEMO_GATE_CACHE_SECONDS
    key = (grant.cluster, grant.kind, grant.subject)
    decision = _held.get(key, now) if hold and not fresh else None
    if decision is None:
        decision = _look_up(grant, now)
        if hold:
            _held.put(key, decision, now + hold)
    if decision is Decision.ALLOW and counts:
        activity.record(grant.demo, grant.kind, grant.subject, now)
    activity.flush_if_due(now)
    return decision


def _look_up(grant: Pass, now: float) -> Decision:
    keys = [
        demo_key(grant.cluster),
        link_key(grant.subject) if grant.is_prospect else member_key(grant.cluster, grant.subject),
    ]
    try:
        values = [v.decode() if v is not None else None for v in _redis().mget(keys)]
    except RedisError:
        log.warning("Redis is unavailable: the gate decides from the database")
        values = [None] * len(keys)
        redis_answered = False
    else:
        redis_answered = True
    demo = values[0]
    if demo is None:
        demo = _demo_from_database(grant.cluster)
        if redis_answered:
            # Never over a newer write: a change that committed meanwhile has set its value.
            _write(keys[0], demo, only_if_missing=True)
    own = values[1]
    if own is None:
        own = (
            _link_from_database(grant.subject)
            if grant.is_prospect
            else _member_from_database(grant.cluster, grant.subject)
        )
        if redis_answered:
            _write(keys[1], own, only_if_missing=True)
    return decide(grant, demo, own, now)
