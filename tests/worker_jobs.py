"""Job functions that tests enqueue for real worker processes (imported by path in the worker)."""

from __future__ import annotations

import os
import signal
import time

import django_rq
from redis.exceptions import RedisError


def record(key: str, label: str) -> None:
    """Append `label` to the Redis list `key`: the order jobs ran in."""
    django_rq.get_connection("maintenance").rpush(key, label)


def record_and_stop(key: str, label: str) -> None:
    """`record`, then ask the worker running this job to stop after it (a warm shutdown)."""
    record(key, label)
    os.kill(os.getpid(), signal.SIGTERM)  # jobs run in the worker's own process


def hold(key: str, timeout: float = 60) -> None:
    """Keep a worker busy until the Redis key `key` exists (or `timeout` passes), whether Redis
    answers meanwhile or not. The set `key:workers` holds the pid of each worker process running
    one; `key:ended` is set when it is done."""
    redis = django_rq.get_connection("maintenance")
    redis.sadd(f"{key}:workers", str(os.getpid()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis.exists(key):
                break
        except RedisError:
            pass
        time.sleep(0.1)
    redis.set(f"{key}:ended", "1")
