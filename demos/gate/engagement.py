"""Engagement: the gate's per-minute counts (demos.gate.activity), moved into the database.

The gate counts each allowed request in Redis, in one hash per minute (`gate:activity:<minute>`,
a field per visitor) and names the minute in the set `gate:activity:minutes`. `flush`, run every
minute by the cron, moves every finished minute into `Engagement` rows, a batch of minutes at a
time, so the database never sees one write per request.

Exactly once, as far as Redis and PostgreSQL allow without a shared transaction:

- One flush at a time (a Redis lock): two flushes never read the same counts.
- A minute is claimed by renaming its hash to a processing key, in the same MULTI that takes it
  out of the set of minutes, so a request counted a moment later starts a new hash (and names
  the minute again) instead of landing in counts already read.
- The processing keys are deleted only after the rows are committed. A flush that dies in
  between leaves them behind, and the next flush counts them first: nothing is lost. The one
  window for counting twice is a crash after the commit and before that delete.

Times are kept to the minute: first_seen and last_seen are the start of the first and the last
minute with a request. A minute more than DEMO_GATE_SESSION_GAP_MINUTES after the visitor's
last one starts a new session; every session after the first is a return visit.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q, QuerySet
from redis import Redis
from redis.exceptions import LockError, RedisError

from demos.gate import activity
from demos.models import Demo, Engagement, ShareLink, Status
from portal.redis_connection import shared

log = logging.getLogger(__name__)

# Minutes claimed by a flush and not yet written (crash recovery), and their hashes.
PROCESSING_KEY = "gate:activity:processing"
FLUSH_LOCK_KEY = "gate:activity:flush-lock"
# Longer than the flush job may run (portal/cron.py), and renewed before each batch: a flush that
# is still working never loses the lock to the next one.
LOCK_SECONDS = 300
# Minutes per batch (one database transaction each): a backlog after an outage is worked off in
# steps, each committed and released before the next.
MINUTES_PER_BATCH = 30
# Rows per INSERT or UPDATE statement.
ROWS_PER_QUERY = 1000
# A bound on batches per flush, so a flood of late writes cannot keep one job running forever.
MAX_BATCHES = 200

LINK = "l"
MEMBER = "m"


def processing_key(minute: int) -> str:
    return f"gate:activity:processing:{minute}"


class Visitor(NamedTuple):
    """Who used a demo: a share link (`l`) or a team member (`m`), by id."""

    demo: int
    kind: str
    subject: int


def parse_field(field: bytes | str) -> Visitor | None:
    """The visitor a hash field names (`<demo>:l<link>` or `<demo>:m<member>`), or None."""
    text = field.decode() if isinstance(field, bytes) else field
    demo, _, who = text.partition(":")
    if not who or who[0] not in (LINK, MEMBER):
        return None
    try:
        return Visitor(int(demo), who[0], int(who[1:]))
    except ValueError:
        return None


def flush(now: float | None = None) -> int:
    """Move the counts of every minute before the current one into `Engagement` rows.

    `now` is epoch seconds (default: the clock). Returns how many visitor-minutes were recorded;
    0 when another flush is running (it takes these minutes) or Redis is unavailable (the counts
    wait there for the next flush; they expire after a day).
    """
    current = int((time.time() if now is None else now) // 60)
    try:
        redis = shared()
        lock = redis.lock(FLUSH_LOCK_KEY, timeout=LOCK_SECONDS, blocking=False)
        if not lock.acquire():
            return 0
        try:
            return _flush_batches(redis, lock, current)
        finally:
            _release(lock)
    except RedisError:
        log.error("Engagement was not flushed: Redis is unavailable; the next run catches up")
        return 0


def _release(lock: Any) -> None:
    try:
        lock.release()
    except LockError:  # a RedisError too, but no outage
        # It expired while we worked: what we claimed is committed or still waiting in its
        # processing key, so nothing is lost; a slow batch is worth knowing about.
        log.warning("The engagement flush outlived its lock (%s s)", LOCK_SECONDS)


def _flush_batches(redis: Redis, lock: Any, current: int) -> int:
    recorded = 0
    for _batch in range(MAX_BATCHES):
        try:
            lock.extend(LOCK_SECONDS, replace_ttl=True)
        except LockError:
            # Its time ran out and another flush may hold it now: what is left is that one's.
            log.warning("The engagement flush lost its lock; the next run carries on")
            break
        # What a flush that died left behind first: those minutes are older than any unclaimed.
        minutes = _left_behind(redis) or _claim(redis, current)
        if not minutes:
            break
        recorded += _record(redis, minutes)
    return recorded


def _minutes(members: Iterable[bytes | str]) -> list[int]:
    found = []
    for member in members:
        try:
            found.append(int(member))
        except ValueError:
            log.warning("Ignoring a malformed activity minute %r", member)
    return sorted(found)


def _left_behind(redis: Redis) -> list[int]:
    return _minutes(redis.smembers(PROCESSING_KEY))[:MINUTES_PER_BATCH]


def _claim(redis: Redis, current: int) -> list[int]:
    """Take the oldest finished minutes out of the gate's hands, atomically."""
    minutes = [m for m in _minutes(redis.smembers(activity.MINUTES_KEY)) if m < current]
    minutes = minutes[:MINUTES_PER_BATCH]
    if not minutes:
        return []
    pipe = redis.pipeline(transaction=True)
    for minute in minutes:
        # Fails for a minute whose hash expired (or held malformed members): nothing to count,
        # and the minute still leaves the set with the rest of the transaction.
        pipe.rename(activity.minute_key(minute), processing_key(minute))
    pipe.srem(activity.MINUTES_KEY, *minutes)
    pipe.sadd(PROCESSING_KEY, *minutes)
    pipe.execute(raise_on_error=False)
    return minutes


def _record(redis: Redis, minutes: Sequence[int]) -> int:
    """Write the claimed minutes' counts, then let go of them."""
    pipe = redis.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(processing_key(minute))
    visits: dict[Visitor, list[tuple[int, int]]] = defaultdict(list)
    for minute, counts in zip(minutes, pipe.execute(), strict=True):
        for field, count in counts.items():
            visitor = parse_field(field)
            if visitor is not None and int(count) > 0:
                visits[visitor].append((minute, int(count)))
    recorded = _write(visits) if visits else 0
    pipe = redis.pipeline(transaction=True)
    pipe.delete(*(processing_key(minute) for minute in minutes))
    pipe.srem(PROCESSING_KEY, *minutes)
    pipe.execute()
    return recorded


def _write(visits: dict[Visitor, list[tuple[int, int]]]) -> int:
    """Add `visits` (each visitor's (minute, requests)) to their rows, in one transaction."""
    with transaction.atomic():
        known = _known(visits)
        dropped = len(visits) - len(known)
        if dropped:
            log.info("Dropped the activity of %d visitors of demos or links now gone", dropped)
        rows = _existing_rows(known)
        new, changed = [], []
        gap = timedelta(minutes=settings.DEMO_GATE_SESSION_GAP_MINUTES)
        recorded = 0
        for visitor in known:
            row = rows.get(visitor)
            if row is None:
                row = _new_row(visitor)
                new.append(row)
            else:
                changed.append(row)
            _add(row, sorted(visits[visitor]), gap)
            recorded += len(visits[visitor])
        Engagement.objects.bulk_create(new, batch_size=ROWS_PER_QUERY)
        Engagement.objects.bulk_update(
            changed,
            ["first_seen", "last_seen", "requests", "active_minutes", "sessions"],
            batch_size=ROWS_PER_QUERY,
        )
    return recorded


def _known(visits: Iterable[Visitor]) -> list[Visitor]:
    """The visitors whose demo, and link or member, still exist (a link of that very demo)."""
    visitors = list(visits)
    links = {v.subject for v in visitors if v.kind == LINK}
    members = {v.subject for v in visitors if v.kind == MEMBER}
    member_demos = {v.demo for v in visitors if v.kind == MEMBER}
    link_pairs: set[tuple[int, int]] = set()
    if links:
        link_pairs = set(ShareLink.objects.filter(pk__in=links).values_list("demo_id", "pk"))
    demos: set[int] = set()
    people: set[int] = set()
    if members:
        demos = set(Demo.objects.filter(pk__in=member_demos).values_list("pk", flat=True))
        people = set(get_user_model().objects.filter(pk__in=members).values_list("pk", flat=True))

    def still_there(visitor: Visitor) -> bool:
        if visitor.kind == LINK:
            return (visitor.demo, visitor.subject) in link_pairs
        return visitor.demo in demos and visitor.subject in people

    return [visitor for visitor in visitors if still_there(visitor)]


def _existing_rows(visitors: Sequence[Visitor]) -> dict[Visitor, Engagement]:
    """The rows of `visitors` that exist already, read in one query."""
    if not visitors:
        return {}
    links = [v.subject for v in visitors if v.kind == LINK]
    members = [v.subject for v in visitors if v.kind == MEMBER]
    query = Q(link_id__in=links) | Q(
        member_id__in=members, demo_id__in={v.demo for v in visitors if v.kind == MEMBER}
    )
    rows = {}
    for row in Engagement.objects.filter(query):
        if row.link_id is not None:
            rows[Visitor(row.demo_id, LINK, row.link_id)] = row
        else:
            rows[Visitor(row.demo_id, MEMBER, row.member_id)] = row
    return rows


def _new_row(visitor: Visitor) -> Engagement:
    link = visitor.subject if visitor.kind == LINK else None
    member = visitor.subject if visitor.kind == MEMBER else None
    return Engagement(demo_id=visitor.demo, link_id=link, member_id=member)


def minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def _add(row: Engagement, minutes: Sequence[tuple[int, int]], gap: timedelta) -> None:
    """Fold a visitor's minutes (oldest first) into their row: counts, span and sessions.

    A minute that arrives late (before the row's last_seen) widens the span and the counts but
    never starts a session: the sessions around it were counted when their minutes came.
    """
    for minute, requests in minutes:
        seen = minute_start(minute)
        if row.last_seen is None or seen - row.last_seen > gap:
            row.sessions += 1
        row.first_seen = min(row.first_seen or seen, seen)
        row.last_seen = max(row.last_seen or seen, seen)
        row.requests += requests
        row.active_minutes += 1


# What the share panel shows per link, read with the links themselves (no query of its own).
_USAGE = {
    "usage_last_seen": F("engagements__last_seen"),
    "usage_sessions": F("engagements__sessions"),
    "usage_active_minutes": F("engagements__active_minutes"),
}


def with_usage(links: QuerySet[ShareLink]) -> QuerySet[ShareLink]:
    """`links`, each with its prospect's engagement (at most one row per link) joined in."""
    return links.annotate(**_USAGE)


@dataclass(frozen=True)
class LinkUsage:
    """How a prospect used the demo through one link, as the share panel tells it."""

    present: bool
    last_seen: datetime | None
    sessions: int
    active_minutes: int

    @property
    def return_visits(self) -> int:
        return max(self.sessions - 1, 0)

    @property
    def used(self) -> bool:
        return self.present or self.last_seen is not None


def link_usage(demo: Demo, links: Sequence[ShareLink]) -> dict[int, LinkUsage]:
    """Each link's usage (links read through `with_usage`), with who is in the demo right now.

    The counts are what the last flush wrote; presence is live: a prospect is in the demo now
    (the gate's `gate:present:<demo>`) and this link had a request within
    DEMO_GATE_PRESENT_SECONDS, in the minutes not yet flushed or in the row the flush wrote.
    """
    now = time.time()
    someone, recent_links = _presence(demo, [link.pk for link in links], now)
    recent = minute_start(int((now - settings.DEMO_GATE_PRESENT_SECONDS) // 60))
    usage = {}
    for link in links:
        last_seen = getattr(link, "usage_last_seen", None)
        flushed_recently = last_seen is not None and last_seen >= recent
        usage[link.pk] = LinkUsage(
            present=someone and (link.pk in recent_links or flushed_recently),
            last_seen=last_seen,
            sessions=getattr(link, "usage_sessions", None) or 0,
            active_minutes=getattr(link, "usage_active_minutes", None) or 0,
        )
    return usage


def _presence(demo: Demo, link_pks: Sequence[int], now: float) -> tuple[bool, set[int]]:
    """Whether a prospect is in the demo now, and which links had a request in the minutes of
    the presence window that are not flushed yet. One Redis round trip."""
    if demo.status != Status.READY or not link_pks:
        return False, set()
    first = int((now - settings.DEMO_GATE_PRESENT_SECONDS) // 60)
    fields = [activity.field(demo.pk, LINK, pk) for pk in link_pks]
    try:
        pipe = shared().pipeline(transaction=False)
        pipe.exists(activity.present_key(demo.pk))
        for minute in range(first, int(now // 60) + 1):
            # A minute being flushed right now sits under its processing key.
            pipe.hmget(activity.minute_key(minute), fields)
            pipe.hmget(processing_key(minute), fields)
        someone, *minutes = pipe.execute()
    except RedisError:
        log.warning("Redis is unavailable: the share panel shows no one in the demo")
        return False, set()
    found = {pk for counts in minutes for pk, count in zip(link_pks, counts, strict=True) if count}
    return bool(someone), found
