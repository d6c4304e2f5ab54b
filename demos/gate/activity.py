"""The gate's per-minute counts of who used which demo, and what they tell the rest of the portal.

Each process adds up the allowed requests it let through (`record`) and sends them to Redis in one
pipelined round trip at most every DEMO_GATE_CACHE_SECONDS (`flush_if_due`), and when it exits;
the engagement flush (demos.gate.engagement) moves the minute counts into the database. Only
allowed requests count, and never those of health checks and monitors
(DEMO_GATE_IGNORED_USER_AGENTS). A process killed outright loses at most that second's counts.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Max
from redis.exceptions import RedisError

from demos.models import Engagement
from portal.redis_connection import shared

log = logging.getLogger(__name__)

MINUTES_KEY = "gate:activity:minutes"


def minute_key(minute: int) -> str:
    """The hash of one minute's counts (minute = epoch seconds // 60)."""
    return f"gate:activity:{minute}"


def field(demo_pk: int, kind: str, subject: int) -> str:
    """A visitor's field in a minute's hash: `<demo>:l<link>` or `<demo>:m<member>`."""
    return f"{demo_pk}:{kind}{subject}"


def last_key(demo_pk: int) -> str:
    return f"gate:last:{demo_pk}"


def present_key(demo_pk: int) -> str:
    return f"gate:present:{demo_pk}"


def counts(user_agent: str) -> bool:
    """Whether a request from `user_agent` counts as someone using the demo."""
    agent = user_agent.lower()
    return not any(ignored.lower() in agent for ignored in settings.DEMO_GATE_IGNORED_USER_AGENTS)


Seen = dict[int, float]  # demo -> epoch seconds


class _Pending:
    """Counts of this process not yet in Redis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self, at: float | None = None) -> None:
        self.requests: Counter[tuple[int, str]] = Counter()  # (minute, field) -> requests
        self.last: Seen = {}  # the latest request, per demo
        self.present: Seen = {}  # the latest prospect's request, per demo
        self.flushed_at = at or time.time()

    def take(
        self, at: float
    ) -> tuple[Counter[tuple[int, str]], dict[int, float], dict[int, float]]:
        with self.lock:
            taken = (self.requests, self.last, self.present)
            self.reset(at)
        return taken

    def after_fork(self) -> None:
        # The child starts empty, with a lock of its own: another thread of the parent may have
        # held this one at the fork.
        self.lock = threading.Lock()
        self.reset()


_pending = _Pending()
os.register_at_fork(after_in_child=_pending.after_fork)


def discard_pending() -> None:
    with _pending.lock:
        _pending.reset()


def record(demo_pk: int, kind: str, subject: int, now: float) -> None:
    """Count one allowed request (sent to Redis by the next due flush)."""
    with _pending.lock:
        _pending.requests[(int(now // 60), field(demo_pk, kind, subject))] += 1
        _pending.last[demo_pk] = max(now, _pending.last.get(demo_pk, 0.0))
        if kind == "l":
            _pending.present[demo_pk] = max(now, _pending.present.get(demo_pk, 0.0))


def flush_if_due(now: float) -> None:
    hold = settings.DEMO_GATE_CACHE_SECONDS
    if hold <= 0 or now - _pending.flushed_at >= hold:
        flush(now)


def flush(now: float | None = None) -> None:
    """Send this process's counts to Redis, in one round trip."""
    now = now or time.time()
    requests, last, present = _pending.take(now)
    if not requests:
        return
    pipe = shared().pipeline(transaction=False)
    for (minute, visitor), count in requests.items():
        pipe.hincrby(minute_key(minute), visitor, count)
        pipe.expire(minute_key(minute), 86400)
        pipe.sadd(MINUTES_KEY, minute)
    for demo_pk, seen in last.items():
        pipe.set(last_key(demo_pk), repr(seen), ex=86400)
    for demo_pk, seen in present.items():
        left = int(settings.DEMO_GATE_PRESENT_SECONDS - (now - seen))
        if left > 0:
            pipe.set(present_key(demo_pk), repr(seen), ex=left)
    try:
        pipe.execute()
    except RedisError:
        # Dropped rather than kept: while Redis is away they would only pile up.
        log.warning(
            "Redis is unavailable: %d counts of demo use were dropped", sum(requests.values())
        )


atexit.register(flush)


def last_activity(demo_pks: Iterable[int]) -> dict[int, datetime]:
    """When each demo was last used through its gate, for the demos that ever were.

    Redis has the latest requests; the database (Engagement, flushed each minute) answers for
    what Redis no longer or not yet holds, so a Redis restart never makes busy demos look idle.
    """
    pks = list(dict.fromkeys(demo_pks))
    if not pks:
        return {}
    found: dict[int, datetime] = {}
    try:
        values = shared().mget([last_key(pk) for pk in pks])
    except RedisError:
        log.warning("Redis is unavailable: last activity comes from the database alone")
        values = [None] * len(pks)
    for pk, value in zip(pks, values, strict=True):
        if value is not None:
            found[pk] = datetime.fromtimestamp(float(value), tz=UTC)
    stored = (
        Engagement.objects.filter(demo_id__in=pks)
        .values("demo_id")
        .annotate(last=Max("last_seen"))
        .values_list("demo_id", "last")
    )
    for pk, last in stored:
        if pk not in found or last > found[pk]:
            found[pk] = last
    return found


def present(demo_pks: Iterable[int]) -> set[int]:
    """The demos a prospect is using right now (a request within DEMO_GATE_PRESENT_SECONDS)."""
    pks = list(dict.fromkeys(demo_pks))
    if not pks:
        return set()
    try:
        values = shared().mget([present_key(pk) for pk in pks])
    except RedisError:
        return set()
    return {pk for pk, value in zip(pks, values, strict=True) if value is not None}
