"""Counts in a fixed window, kept in Redis through Django's cache: the portal's rate limits.

Each limit counts its requests under a key that lives for one window, so the first request of a
window starts the count again. The callers decide what Redis being away means (every limit the
portal has fails open: a person is never locked out because Redis is down).
"""

from __future__ import annotations

from datetime import timedelta

from django.core.cache import cache
from redis.exceptions import RedisError


def count_one(key: str, window: timedelta) -> int | None:
    """Count one more under `key` and return the window's count so far; None without Redis."""
    timeout = int(window.total_seconds())
    try:
        if cache.add(key, 1, timeout=timeout):
            return 1
        return int(cache.incr(key))
    except ValueError:  # the window ended between add and incr: this one starts a new window
        cache.set(key, 1, timeout=timeout)
        return 1
    except RedisError:
        return None
