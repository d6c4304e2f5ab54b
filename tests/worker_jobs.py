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
    os.kill(os.getppid(), signal.SIGTERM)


def hold(key: str, timeout: float = 60) -> None:
    """Keep a worker busy until the Redis key `key` exists (or `timeout` passes), whether Redis
    answers meanwhile or not. The hash `key:horses` maps this work horse's pid to its worker's, so
    a test can kill both; `key:ended` is set when it is done."""
    redis = django_rq.get_connection("maintenance")
    redis.hset(f"{key}:horses", str(os.getpid()), str(os.getppid()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis.exists(key):
                break
        except RedisError:
            pass
        time.sleep(0.1)
    redis.set(f"{key}:ended", "1")
