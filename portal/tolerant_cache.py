"""A Redis cache that a Redis outage turns into misses instead of errors.

For caches whose every entry can be made again: copies of database rows (signed-in sessions and
users) or markup rendered from them (fragments). While Redis does not answer, a read finds
nothing, so the caller reads the database (or renders) as it would without a cache, and a write
is skipped. Pages stay up; they only cost what they cost
before the cache.

What keeps a dead Redis cheap:

- short socket timeouts (set in the cache's OPTIONS), so a Redis that stopped answering costs a
  fraction of a second, not a TCP timeout;
- after a failure the cache stops asking for `PAUSE_AFTER_FAILURE` seconds, so each request pays
  nothing rather than one timeout per lookup;
- one warning when Redis is lost, at most one more per `LOG_EVERY` while it stays away, and one
  line when it answers again.

What keeps the copies true: a delete that could not reach Redis (a sign-out, a password change)
would leave a stale entry behind for when Redis answers again, so this process remembers it and
deletes it first thing once Redis answers; and no entry lives longer than `LONGEST_ENTRY`
seconds, which bounds the staleness of anything a process could not delete (it was stopped
during the outage, or another process never noticed one). A cache whose keys name everything
its entries show, so that none can go stale, may set a longer `LONGEST_ENTRY` of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Result = TypeVar("Result")

# Seconds without asking Redis after a failure.
PAUSE_AFTER_FAILURE = 5.0
# Seconds between two warnings while Redis stays away.
LOG_EVERY = 60.0
# Seconds an entry lives at most, whatever the caller asked for.
LONGEST_ENTRY = 60
# Keys whose delete is retried once Redis answers; beyond this, the oldest are left to expire.
MAX_PENDING_DELETES = 10_000


class ReusedClientRedisCacheClient(RedisCacheClient):
    """Django's client, keeping one redis-py client per connection pool: Django's builds a new
    one for every command, which costs more CPU (about 0.1 ms) than the command itself, twice in
    every request of a signed-in person. redis-py's clients are safe to share between threads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: str | None = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)
            client = self._clients[index] = self._client(connection_pool=pool)
        return client


class TolerantRedisCache(RedisCache):
    """Django's Redis cache, reading as empty and writing nowhere while Redis is unreachable."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._lost_at: float | None = None
        self._last_warning = 0.0
        self._pending_deletes: dict[str, None] = {}  # made keys, oldest first
        # A cache of what cannot go stale (fragments keyed by everything they show) may keep
        # entries longer: `LONGEST_ENTRY` in its settings.
        self._longest_entry = int(params.get("LONGEST_ENTRY", LONGEST_ENTRY))

    def get_backend_timeout(self, timeout: float | None = DEFAULT_TIMEOUT) -> int:
        # Every write (set, add, set_many, touch) asks here.
        bounded = super().get_backend_timeout(timeout)
        return self._longest_entry if bounded is None else min(bounded, self._longest_entry)

    # Reads find nothing while Redis is away.

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        made = self.make_and_validate_key(key, version=version)
        return self._attempt(lambda: self._cache.get(made, default), default)

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        made = {self.make_and_validate_key(key, version=version): key for key in keys}
        found = self._attempt(lambda: self._cache.get_many(made.keys()), {})
        return {made[key]: value for key, value in found.items()}

    def has_key(self, key: str, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        return self._attempt(lambda: self._cache.has_key(made), False)

    # Writes are skipped while Redis is away.

    def set(
        self,
        key: str,
        value: Any,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> None:
        made = self.make_and_validate_key(key, version=version)
        expiry = self.get_backend_timeout(timeout)
        self._attempt(lambda: self._cache.set(made, value, expiry), None)

    def add(
        self,
        key: str,
        value: Any,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> bool:
        made = self.make_and_validate_key(key, version=version)
        expiry = self.get_backend_timeout(timeout)
        return self._attempt(lambda: self._cache.add(made, value, expiry), False)

    def set_many(
        self,
        data: dict[str, Any],
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> list[str]:
        if not data:
            return []
        made = {
            self.make_and_validate_key(key, version=version): value for key, value in data.items()
        }
        expiry = self.get_backend_timeout(timeout)
        failed = self._attempt(lambda: self._cache.set_many(made, expiry) or False, True)
        return list(data) if failed else []

    def touch(
        self, key: str, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        made = self.make_and_validate_key(key, version=version)
        expiry = self.get_backend_timeout(timeout)
        return self._attempt(lambda: self._cache.touch(made, expiry), False)

    # Deletes are remembered while Redis is away, and done once it answers.

    def delete(self, key: str, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        deleted = self._attempt(lambda: self._cache.delete(made), None)
        if deleted is None:
            self._remember_deletes([made])
            return False
        return deleted

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if made and not self._attempt(lambda: self._cache.delete_many(made) or True, False):
            self._remember_deletes(made)

    # Not for this cache.

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        raise NotImplementedError("A counter needs a cache that says when it lost the count.")

    def clear(self) -> bool:
        # FLUSHDB would also empty the job queues, which live in the same Redis database.
        raise NotImplementedError("This cache shares its Redis database: delete keys instead.")

    @property
    def answering(self) -> bool:
        """False while this cache is not asking Redis, after a failure."""
        return time.monotonic() >= self._paused_until

    # The outage logic.

    def _attempt(self, call: Callable[[], Result], fallback: Result) -> Result:
        now = time.monotonic()
        if now < self._paused_until:
            return fallback
        try:
            if self._pending_deletes:
                self._flush_pending_deletes()
            result = call()
        except RedisError as exc:
            self._failed(exc, now)
            return fallback
        if self._lost_at is not None:
            self._recovered(now)
        return result

    def _remember_deletes(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._pending_deletes.pop(key, None)
                self._pending_deletes[key] = None
            while len(self._pending_deletes) > MAX_PENDING_DELETES:
                del self._pending_deletes[next(iter(self._pending_deletes))]

    def _flush_pending_deletes(self) -> None:
        with self._lock:
            keys = list(self._pending_deletes)
        self._cache.delete_many(keys)  # a RedisError keeps them pending
        with self._lock:
            for key in keys:
                self._pending_deletes.pop(key, None)

    def _failed(self, exc: RedisError, now: float) -> None:
        self._paused_until = now + PAUSE_AFTER_FAILURE
        if self._lost_at is None:
            self._lost_at = now
            self._last_warning = now
            log.warning(
                "Cache %r: Redis does not answer (%s); going without it (the database, or this "
                "process's own copies), asking Redis again every %g s",
                self._alias_hint,
                exc,
                PAUSE_AFTER_FAILURE,
            )
        elif now - self._last_warning >= LOG_EVERY:
            self._last_warning = now
            log.warning(
                "Cache %r: Redis still does not answer after %.0f s (%s)",
                self._alias_hint,
                now - self._lost_at,
                exc,
            )

    def _recovered(self, now: float) -> None:
        lost_at, self._lost_at = self._lost_at, None
        if lost_at is not None:
            log.warning(
                "Cache %r: Redis answers again, after %.0f s", self._alias_hint, now - lost_at
            )

    @property
    def _alias_hint(self) -> str:
        return self.key_prefix or "cache"
