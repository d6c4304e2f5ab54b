"""The gate's per-minute counts of who used which demo, and what they tell the rest of the portal.

The gate's check (demos.gate.state) writes these in the same round trip as its decision; the
engagement flush (demos.gate.engagement) moves the minute counts into the database. Only allowed
requests count, and never those of health checks and monitors (DEMO_GATE_IGNORED_USER_AGENTS).
"""

from __future__ import annotations

import logging
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
