"""RQ's scheduler (retries, follow-ups, expiry jobs) survives the loss of the worker that ran it,
whether the other workers are idle or all busy."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import django_rq
import pytest
from rq import Worker
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import now, utcformat

from portal.worker import SCHEDULER_CHECK, SCHEDULER_STALE_AFTER, release_dead_scheduler_locks
from tests.conftest import WorkerProcess, wait_for

LOCK = RQScheduler.get_locking_key("maintenance")
HOLD = "test:hold"
# The holder's last beat goes stale, the next look of a surviving worker releases its lock and
# starts a scheduler, whose first tick moves what is due. RQ alone: not before the dead holder's
# lock expires (61 s), then only at a worker's maintenance between jobs.
TAKEOVER = (SCHEDULER_STALE_AFTER + SCHEDULER_CHECK).total_seconds() + 2


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


def _two_workers_one_holding_the_scheduler(
    worker_env: dict[str, str], redis: Any
) -> tuple[WorkerProcess, WorkerProcess]:
    first, second = WorkerProcess(worker_env), WorkerProcess(worker_env)
    first.start()
    holder = wait_for(lambda: redis.get(LOCK), message="no scheduler took the lock")
    second.start()
    wait_for(lambda: Worker.count(connection=redis) == 2, message="second worker missing")
    assert redis.get(LOCK) == holder  # the first worker's scheduler holds it
    return first, second


def _schedule_probe(seconds: float) -> tuple[Any, float]:
    """A job due `seconds` from now on `maintenance`, and when it is due (monotonic clock)."""
    queue = django_rq.get_queue("maintenance", commit_mode="auto")
    probe = queue.enqueue_in(timedelta(seconds=seconds), "portal.health.record_heartbeat")
    return probe, time.monotonic() + seconds


@pytest.mark.worker
def test_scheduled_jobs_run_again_soon_after_the_schedulers_worker_is_killed(
    worker_env: dict[str, str], rq_redis: Any
) -> None:
    first, second = _two_workers_one_holding_the_scheduler(worker_env, rq_redis)
    holder = rq_redis.get(LOCK)

    first.kill()  # worker and scheduler together, as when their pod is killed
    probe, due = _schedule_probe(1)
    wait_for(
        lambda: probe.get_status(refresh=True) == "finished",
        timeout=TAKEOVER + 5,
        message="the scheduled job did not run: no scheduler took over",
    )
    print(f"idle takeover: the job due 1 s after the kill ran {time.monotonic() - due:.1f} s late")
    assert rq_redis.get(LOCK) not in (None, holder)
    second.stop()


@pytest.mark.worker
def test_a_busy_worker_takes_the_scheduler_over(worker_env: dict[str, str], rq_redis: Any) -> None:
    first, second = _two_workers_one_holding_the_scheduler(worker_env, rq_redis)
    holder = rq_redis.get(LOCK)
    demos = django_rq.get_queue("demos", commit_mode="auto")
    for _ in range(2):
        demos.enqueue("tests.worker_jobs.hold", HOLD, job_timeout=120)
    # Each job notes the worker running it: both workers are now in a long job.
    running = wait_for(
        lambda: rq_redis.scard(f"{HOLD}:workers") == 2 and rq_redis.smembers(f"{HOLD}:workers"),
        message="the workers did not both start a long job",
    )
    assert {int(pid) for pid in running} == {first.process.pid, second.process.pid}

    first.kill()  # the scheduler's worker with its scheduler and the job it was running
    probe, due = _schedule_probe(1)
    wait_for(
        lambda: probe.get_status(refresh=True) == "queued",
        timeout=TAKEOVER + 1,
        message="the due job stayed scheduled: no scheduler took over while workers were busy",
    )
    late = time.monotonic() - due
    print(f"busy takeover: the job due 1 s after the kill was queued {late:.1f} s late")
    assert rq_redis.get(LOCK) not in (None, holder)
    survivor = next(w for w in Worker.all(connection=rq_redis) if w.pid == second.process.pid)
    assert survivor.get_state() == "busy"  # still in its long job: it took over meanwhile

    rq_redis.set(HOLD, "done")  # the long job ends; maintenance comes first
    wait_for(lambda: probe.get_status(refresh=True) == "finished", message="it never ran")
    second.stop()
