"""What the gate knows about demos and links, kept in Redis so a check never reads the database.

Two kinds of entries, each a short string:

- `gate:demo:<cluster>`: `open:<end>` (running; `end` in epoch seconds, 0 for none), `asleep`
  (sleeping, or on the way there or back: opening it wakes it) or `closed` (anything else);
- `gate:link:<id>`: `open:<end>:<cluster>` or `closed` (revoked).

Every change writes them at once (`publish_demo`, `publish_link`, after the change commits). A
check that finds one missing reads the database and stores what it found with SET NX, so a check
racing a change never overwrites the change's newer value. Entries live
DEMO_GATE_STATE_SECONDS, which bounds how long a write lost to a Redis failure can linger.

A check, its decision and the count of an allowed request are one Lua script: one round trip.
"""

from __future__ import annotations

import enum
import logging
import time

from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError

from demos.gate import activity
from demos.gate.passes import Pass
from demos.models import RESTING, Demo, ShareLink, Status
from portal.redis_connection import shared

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


def _epoch(moment: object) -> int:
    return int(moment.timestamp()) if moment is not None else 0  # type: ignore[attr-defined]


def demo_value(status: str, expires_at: object) -> str:
    if status == Status.READY:
        return f"open:{_epoch(expires_at)}"
    return ASLEEP if status in RESTING else CLOSED


def link_value(revoked_at: object, expires_at: object, cluster: str) -> str:
    return CLOSED if revoked_at is not None else f"open:{_epoch(expires_at)}:{cluster}"


def _redis() -> Redis:
    return shared()


def _write(key: str, value: str, *, only_if_missing: bool = False) -> None:
    try:
        _redis().set(key, value, ex=settings.DEMO_GATE_STATE_SECONDS, nx=only_if_missing)
    except RedisError:
        log.error("The gate could not record %s=%s: Redis is unavailable", key, value)


def publish_demo(demo: Demo) -> None:
    """Tell the gate about a demo's new state (called after each change commits)."""
    _write(demo_key(demo.cluster_name), demo_value(demo.status, demo.expires_at))


def publish_link(link: ShareLink) -> None:
    _write(link_key(link.pk), link_value(link.revoked_at, link.expires_at, link.demo.cluster_name))


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


def decide(grant: Pass, demo: str, link: str | None, now: float) -> Decision:
    """The decision for `grant`, given the demo's and (for a prospect) the link's entries."""
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


# KEYS: demo entry, link entry (or the demo entry again for a member), then the activity keys
# (minute hash, set of minutes, last, present). ARGV: now, hash field, count (1/0), minute,
# present TTL, prospect (1/0), link required (1/0), cluster. Returns {demo entry, link entry}
# or {false, false} when an entry is missing (the caller reads the database and asks again).
# The script decides only whether to count; `decide` (the same rule, in Python) gives the answer,
# and a test holds the two to the same table of cases.
_CHECK = """
local demo = redis.call('GET', KEYS[1])
local link = demo
if ARGV[7] == '1' then link = redis.call('GET', KEYS[2]) end
if not demo or not link then return {false, false} end
local now = tonumber(ARGV[1])
local function usable(entry, cluster)
  local ends, owner = string.match(entry, '^open:(%d+):?(.*)$')
  if not ends then return false end
  ends = tonumber(ends)
  if ends > 0 and ends <= now then return false end
  return cluster == nil or owner == cluster
end
local allowed = usable(demo, nil)
if ARGV[7] == '1' then allowed = allowed and usable(link, ARGV[8]) end
if allowed and ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
  redis.call('EXPIRE', KEYS[3], 86400)
  redis.call('SADD', KEYS[4], ARGV[4])
  redis.call('SET', KEYS[5], ARGV[1], 'EX', 86400)
  if ARGV[6] == '1' then redis.call('SET', KEYS[6], ARGV[1], 'EX', tonumber(ARGV[5])) end
end
return {demo, link}
"""


def check(grant: Pass, *, counts: bool, now: float | None = None) -> Decision:
    """Whether `grant` opens its demo now; counts the request when allowed and `counts`.

    No database query while the entries are in Redis; one per missing entry otherwise. With Redis
    away the database decides and nothing is counted.
    """
    now = now or time.time()
    try:
        return _check_in_redis(grant, counts=counts, now=now)
    except RedisError:
        log.warning("Redis is unavailable: the gate decides from the database")
        link = _link_from_database(grant.subject) if grant.is_prospect else None
        return decide(grant, _demo_from_database(grant.cluster), link, now)


def _check_in_redis(grant: Pass, *, counts: bool, now: float) -> Decision:
    redis = _redis()
    script = redis.register_script(_CHECK)
    minute = int(now // 60)
    keys = [
        demo_key(grant.cluster),
        link_key(grant.subject) if grant.is_prospect else demo_key(grant.cluster),
        activity.minute_key(minute),
        activity.MINUTES_KEY,
        activity.last_key(grant.demo),
        activity.present_key(grant.demo),
    ]
    args = [
        repr(now),
        activity.field(grant.demo, grant.kind, grant.subject),
        "1" if counts else "0",
        minute,
        settings.DEMO_GATE_PRESENT_SECONDS,
        "1" if grant.is_prospect else "0",
        "1" if grant.is_prospect else "0",
        grant.cluster,
    ]
    for _attempt in range(2):
        demo, link = script(keys=keys, args=args)
        if demo is not None and link is not None:
            return decide(grant, demo.decode(), link.decode() if grant.is_prospect else None, now)
        # Missing entries: fill them from the database (never over a newer write), then ask again.
        if demo is None:
            _write(keys[0], _demo_from_database(grant.cluster), only_if_missing=True)
        if grant.is_prospect and link is None:
            _write(keys[1], _link_from_database(grant.subject), only_if_missing=True)
    link_entry = _link_from_database(grant.subject) if grant.is_prospect else None
    return decide(grant, _demo_from_database(grant.cluster), link_entry, now)
