"""RQ's scheduler (retries, expiry jobs) survives the loss of the worker that ran it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import django_rq
import pytest
from rq import Worker
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import now, utcformat

from portal.worker import SCHEDULER_STALE_AFTER, release_dead_scheduler_locks
from tests.conftest import WorkerProcess, wait_for

LOCK = RQScheduler.get_locking_key("maintenance")


def _scheduler_beat(redis: Any, name: str, age: timedelta) -> None:
    redis.hset(SCHEDULER_KEY_TEMPLATE % name, "last_heartbeat", utcformat(now() - age))


class TestReleasingDeadSchedulerLocks:
    def test_a_beating_scheduler_keeps_its_lock(self, rq_redis: Any) -> None:
        rq_redis.set(LOCK, "alive")
        _scheduler_beat(rq_redis, "alive", timedelta(seconds=2))
        assert release_dead_scheduler_locks(rq_redis, ["maintenance"]) == []
        assert rq_redis.get(LOCK) == b"alive"

    def test_a_silent_scheduler_loses_it(self, rq_redis: Any) -> None:
        rq_redis.set(LOCK, "gone")
        _scheduler_beat(rq_redis, "gone", SCHEDULER_STALE_AFTER + timedelta(seconds=1))
        assert release_dead_scheduler_locks(rq_redis, ["maintenance", "demos"]) == ["maintenance"]
        assert rq_redis.get(LOCK) is None

    def test_a_lock_without_a_scheduler_record_is_released(self, rq_redis: Any) -> None:
        rq_redis.set(LOCK, "unknown")
        assert release_dead_scheduler_locks(rq_redis, ["maintenance"]) == ["maintenance"]


@pytest.mark.worker
def test_scheduled_jobs_run_again_soon_after_the_schedulers_worker_is_killed(
    worker_env: dict[str, str], rq_redis: Any
) -> None:
    first, second = WorkerProcess(worker_env), WorkerProcess(worker_env)
    first.start()
    holder = wait_for(lambda: rq_redis.get(LOCK), message="no scheduler took the lock")
    second.start()
    wait_for(lambda: Worker.count(connection=rq_redis) == 2, message="second worker missing")
    assert rq_redis.get(LOCK) == holder  # the first worker's scheduler holds it

    first.kill()  # worker and scheduler together, as when their pod is killed
    queue = django_rq.get_queue("maintenance", commit_mode="auto")
    probe = queue.enqueue_in(timedelta(seconds=1), "portal.health.record_heartbeat")
    # RQ alone: not before the dead scheduler's lock expires (61 s), then the next maintenance.
    wait_for(
        lambda: probe.get_status(refresh=True) == "finished",
        timeout=40,
        message="the scheduled job did not run: no scheduler took over",
    )
    assert rq_redis.get(LOCK) not in (None, holder)
    second.stop()
