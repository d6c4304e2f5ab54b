"""The Redis connection of this process: one client, over one connection pool, per Redis.

django-rq's `get_connection` builds a new client with a new connection pool on every call, so
each enqueue, heartbeat or readiness check opened a TCP connection of its own and left it to the
garbage collector. Everything in the portal that enqueues or reads the queues' Redis asks here
instead. Queues that name the same Redis (all of them, by default) share one pool: the key is the
queue's connection settings, not its name, so a test that points the queues elsewhere gets a
client for that Redis.

A forked child must not talk over its parent's sockets. redis-py's pool notices a new process id
and opens fresh connections, but the child also forgets the parent's clients altogether
(`os.register_at_fork`), so nothing it holds is shared with the parent.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.conf import settings
from django_rq.connection_utils import filter_connection_params, get_redis_connection
from redis import Redis

_clients: dict[tuple[tuple[str, str], ...], Redis] = {}
_lock = threading.Lock()


def connection_for(queue: str) -> Redis:
    """The client for the Redis that `queue` (a name in `RQ_QUEUES`) lives in."""
    return connection_for_config(filter_connection_params(settings.RQ_QUEUES[queue]))


def shared() -> Redis:
    """The client for REDIS_URL, the Redis the portal keeps its own entries in (the gate's)."""
    return connection_for_config({"URL": settings.REDIS_URL})


def connection_for_config(config: dict[str, Any]) -> Redis:
    """One client per distinct connection settings, made once per process."""
    key = _key(config)
    client = _clients.get(key)
    if client is None:
        with _lock:  # the worker's job thread and main thread may both ask first
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = get_redis_connection(config)
    return client


def _key(config: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    # repr, because some values (CONNECTION_KWARGS, SENTINELS) are dicts or lists.
    return tuple(sorted((name, repr(value)) for name, value in config.items()))


def _forget_in_child() -> None:
    global _lock
    # Only dropped, never disconnected: redis-py shuts a socket down only in the process that
    # opened it, so the parent's connections stay intact.
    _clients.clear()
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork


os.register_at_fork(after_in_child=_forget_in_child)
