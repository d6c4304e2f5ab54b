"""The portal's RQ worker: RQ's own, keeping the scheduler alive and riding out Redis outages.

Scheduler takeover
------------------
RQ's scheduler moves due jobs (retries, each step's scheduled follow-up, expiry jobs) to their
queues. It runs as a child process of one worker, which holds a lock per queue that the scheduler
refreshes every second for another 61 seconds. When that worker's pod is killed, the lock outlives
it by up to a minute, and RQ lets the other workers try to take over only at their maintenance,
which a worker reaches between jobs (an idle one when its blocking wait for a job times out, by
default every 405 s). With every worker in a long job, nothing is scheduled at all.

Here every worker looks after the scheduler every `SCHEDULER_CHECK`, idle or busy: it releases the
lock of a scheduler that has stopped beating (`release_dead_scheduler_locks`, token-checked, so a
live holder keeps it) and starts its own scheduler when none of its own runs. An idle worker does
it in its dequeue loop, which wakes every `IDLE_WAKEUP` seconds. A busy worker's main process does
it in the loop where it waits for the job in hand, which wakes every `job_monitoring_interval` to
send heartbeats (capped here at `SCHEDULER_CHECK`). So as long as
one worker lives, a dead scheduler is replaced within `SCHEDULER_STALE_AFTER` + `SCHEDULER_CHECK`
+ its first one-second tick, about 16 seconds, whatever the workers are doing.

Why in the workers' main threads: while a job runs, that thread only waits for it, and wakes
periodically anyway. The scheduler stays where RQ runs it, under RQ's own lock
protocol, and nothing is added to run or deploy. The cron process, the other candidate, is never
busy but is a single replica that is down during every rollout (`Recreate`) and node loss: the
workers would have to take over then anyway, so it would only be a second home for the same duty.
A thread in each worker would race the main loop over the same scheduler object and fork the
scheduler from a thread.

One process, no fork per job
----------------------------
RQ's worker forks a work horse for every job. The portal's jobs are short steps (one backend call
each), so the fork, the horse's new database and Redis connections and its bookkeeping cost far
more than the step: 74 ms of CPU per step with a horse against 12 to 16 ms without, measured with
`make bench` ("provisioning fan-out"). This worker runs each job on one long-lived job thread of
its own process, so connections last across jobs, while the main thread does what it did while a
horse ran: heartbeats, the scheduler, stop signals. Job timeouts raise in the job thread
(`TimerDeathPenalty`). A crash of the job's code takes the worker with it, as losing the pod
would; the reconcile sweep re-runs the step that was in hand.

Redis outages
-------------
RQ's worker retries a refused connection while it waits for a job, but quits on any other Redis
failure (a timed-out connection, registering, a state change after a job, its maintenance, a
heartbeat while a job runs), and after Redis restarts without its data it goes on beating for a
registration that no longer exists, so nobody counts the worker. This worker:

- while a job runs, skips what it cannot write (heartbeats, the job's working time): the job
  carries on and must still be watched;
- anywhere else, waits (`RedisOutage.wait`): one warning, then PINGs with capped exponential
  backoff and jitter, and when Redis answers it writes its registration again (`register_again`)
  and takes the scheduler back at its next check (its scheduler process stops when Redis goes).

What still escapes `work()` (Redis gone at start-up, or in RQ code between those points) ends that
worker; `manage.py runworker` then waits the same way and starts a fresh one. A burst worker is
a one-off run and stops with the error instead.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Worker, worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.job import Job
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.timeouts import TimerDeathPenalty
from rq.utils import now, utcparse
from rq.worker import WorkerStatus

logger = logging.getLogger(__name__)

IDLE_WAKEUP = 5  # seconds an idle worker blocks waiting for a job before looking around
SCHEDULER_CHECK = timedelta(seconds=5)
# A live scheduler beats every second; ten missed beats mean it is gone (or hopelessly stuck,
# and RQ's own heartbeat then hands the lock back to whoever took it over).
SCHEDULER_STALE_AFTER = timedelta(seconds=10)
# RQ waits `worker_ttl - 15` seconds for a job before it loops (and can run its maintenance).
WORKER_TTL = IDLE_WAKEUP + 15

# "Redis is not there", as opposed to "Redis refused this command". A timeout counts: a Redis
# behind a network partition, or stopped, times out instead of refusing.
REDIS_LOST = (RedisConnectionError, RedisTimeoutError)
RECONNECT_FIRST = 1.0
RECONNECT_MAX = 30.0


def reconnect_delays() -> Iterator[float]:
    """1, 2, 4 ... 30, 30 ... seconds, each somewhere between half and all of it, so processes
    that lost the same Redis do not all knock at the same moment when it returns."""
    delay = RECONNECT_FIRST
    while True:
        yield random.uniform(delay / 2, delay)  # noqa: S311 (jitter, not a secret)
        delay = min(delay * 2, RECONNECT_MAX)


def redis_address(connection: Redis) -> str:
    """Where `connection` points, for log lines: host, port and database, never a password."""
    kwargs = connection.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


class RedisOutage:
    """A process's view of Redis going away and coming back: one line each way."""

    def __init__(self, connection: Redis, who: str) -> None:
        self.connection = connection
        self.who = who
        self.since: float | None = None

    def lost(self, error: Exception) -> None:
        """Record that Redis failed; the first failure of an outage is logged."""
        if self.since is not None:
            return
        self.since = time.monotonic()
        logger.warning(
            "%s: cannot reach Redis at %s (%s); trying again %g s to %g s apart until it answers",
            self.who,
            redis_address(self.connection),
            error,
            RECONNECT_FIRST,
            RECONNECT_MAX,
        )

    def wait(self, error: Exception) -> None:
        """Block until Redis answers PING again (a stop signal's exception ends it sooner)."""
        self.lost(error)
        for delay in reconnect_delays():
            time.sleep(delay)
            try:
                self.connection.ping()
            except REDIS_LOST as exc:
                logger.debug("%s: Redis still does not answer: %s", self.who, exc)
            else:
                return

    def over(self) -> bool:
        """Called after Redis answered: True (and one line logged) if that ends an outage."""
        if self.since is None:
            return False
        logger.warning(
            "%s: Redis at %s answers again, after %.0f s",
            self.who,
            redis_address(self.connection),
            time.monotonic() - self.since,
        )
        self.since = None
        return True


def release_dead_scheduler_locks(connection: Redis, queue_names: list[str]) -> list[str]:
    """Release the scheduler locks of `queue_names` whose holder has stopped beating; returns the
    queues released. A lock whose holder has no record at all counts as dead too."""
    released = []
    for queue_name in queue_names:
        key = RQScheduler.get_locking_key(queue_name)
        holder = _text(connection.get(key))
        if holder is None:
            continue
        beat = _text(connection.hget(SCHEDULER_KEY_TEMPLATE % holder, "last_heartbeat"))
        if beat is not None and now() - utcparse(beat) < SCHEDULER_STALE_AFTER:
            continue
        # Token-checked: a scheduler that took the lock meanwhile keeps it.
        if release_lock(connection, key, holder):
            logger.warning(
                "Released the scheduler lock of queue %s: scheduler %s stopped beating",
                queue_name,
                holder,
            )
            released.append(queue_name)
    return released


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class PortalScheduler(RQScheduler):
    """RQ's scheduler, stepping down without a traceback when Redis goes away: its worker starts
    it again once Redis answers (at its next scheduler check)."""

    def work(self) -> None:
        try:
            super().work()
        except REDIS_LOST as exc:
            self.log.warning("Scheduler %s: stopping, Redis does not answer (%s)", self.name, exc)


class PortalWorker(Worker):
    """RQ's worker, looking after the scheduler every `SCHEDULER_CHECK` and waiting for Redis
    instead of quitting when it goes away (see the module's docstring)."""

    _scheduler_checked_at: datetime | None = None
    _burst = False
    _job_future: Future[None] | None = None
    _executor: ThreadPoolExecutor | None = None
    # Job timeouts raise in the job thread (RQ's default uses SIGALRM, main thread only).
    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # While a job runs, the main process only wakes this often: it looks after the scheduler
        # then too. A heartbeat more often than RQ_JOB_MONITORING_INTERVAL costs one round trip.
        self.job_monitoring_interval = min(
            self.job_monitoring_interval, int(SCHEDULER_CHECK.total_seconds())
        )
        self.redis_outage = RedisOutage(self.connection, f"Worker {self.name}")

    @property
    def stop_requested(self) -> bool:
        """A stop signal arrived (RQ notes the time before anything else)."""
        return self._shutdown_requested_date is not None

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        self._burst = burst
        return super().work(burst, *args, **kwargs)

    # The scheduler.

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        # RQ's own, with the scheduler class above.
        self.scheduler = PortalScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return super().should_run_maintenance_tasks or self._scheduler_check_due()

    def _scheduler_check_due(self) -> bool:
        checked = self._scheduler_checked_at
        return checked is None or now() - checked >= SCHEDULER_CHECK

    def run_maintenance_tasks(self) -> None:
        # As in RQ, not on the first run: `work()` has just started (or not) the scheduler.
        if self.last_cleaned_at:
            self.look_after_scheduler()
        if super().should_run_maintenance_tasks:
            self._redis_call(super().run_maintenance_tasks)

    def look_after_scheduler(self) -> None:
        """Release dead schedulers' locks and start this worker's scheduler when it is not running
        (the same test RQ's maintenance makes), at most every `SCHEDULER_CHECK`."""
        if not self.scheduler or self._burst or self.stop_requested:
            return
        if not self._scheduler_check_due():
            return
        self._scheduler_checked_at = now()
        try:
            release_dead_scheduler_locks(self.connection, self.queue_names())
            process = self.scheduler._process
            if not (process and process.is_alive()):
                self.scheduler.acquire_locks(auto_start=True)
        except REDIS_LOST as exc:
            self.redis_outage.lost(exc)

    def maintain_heartbeats(self, job: Job) -> None:
        # Runs in the main thread every `job_monitoring_interval` while a job runs.
        self._redis_call(super().maintain_heartbeats, job)
        self.look_after_scheduler()

    # Redis going away. Every Redis call the main loop makes outside a pipeline goes through
    # `_redis_call`; pipelines are executed inside one of these calls.

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Any] | None:
        # RQ retries a refused connection in there, but a timed-out one would end the worker.
        return self._redis_call(super().dequeue_job_and_maintain_ttl, timeout, max_idle_time)

    # Running jobs: in this process, on its job thread.

    @property
    def job_running(self) -> bool:
        return self._job_future is not None

    def execute_job(self, job: Job, queue: Any) -> None:
        """Run the job on this worker's job thread while this thread keeps the heartbeats and
        looks after the scheduler, as it would while waiting for a forked work horse."""
        try:
            self.prepare_execution(job)
            self._job_future = self._job_thread().submit(self._perform, job, queue)
            while True:
                try:
                    self._job_future.result(timeout=self.job_monitoring_interval)
                    break
                except FutureTimeout:
                    self._beat_while_running(job)
        except REDIS_LOST as exc:
            # Its end could not be written. Redis has forgotten the job or will count it
            # abandoned, and the reconcile sweep re-runs what its demo still needs: nothing to
            # quit over.
            if self._burst:
                raise
            self.redis_outage.lost(exc)
            logger.warning("Worker %s: the end of job %s was not recorded", self.name, job.id)
            if self._job_future is not None:
                with suppress(Exception):
                    self._job_future.result()
        finally:
            self._job_future = None
        self.set_state(WorkerStatus.IDLE)

    def _beat_while_running(self, job: Job) -> None:
        if self._job_future is None or self._job_future.done():
            return
        # The job may end on its thread between the check above and the beat (RQ clears the
        # execution then): nothing is left to beat for.
        with suppress(AttributeError):
            self.maintain_heartbeats(job)

    def _job_thread(self) -> ThreadPoolExecutor:
        # One thread for the worker's life, so its database connection lasts across jobs.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job")
        return self._executor

    @staticmethod
    def _close_unusable_connections() -> None:
        from django.db import close_old_connections

        close_old_connections()

    def _perform(self, job: Job, queue: Any) -> None:
        # As Django does around each request: drop a connection the database closed or that
        # passed DATABASE_CONN_MAX_AGE, so a restarted PostgreSQL costs one job, not all.
        self._close_unusable_connections()
        try:
            self.perform_job(job, queue)
        finally:
            self._close_unusable_connections()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            return super().heartbeat(timeout, pipeline)
        return self._redis_call(super().heartbeat, timeout)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is not None:
            return super().set_state(state, pipeline)
        return self._redis_call(super().set_state, state)

    def set_current_job_working_time(
        self, current_job_working_time: float, pipeline: Any = None
    ) -> None:
        if pipeline is not None:
            return super().set_current_job_working_time(current_job_working_time, pipeline)
        return self._redis_call(super().set_current_job_working_time, current_job_working_time)

    def check_for_suspension(self, burst: bool) -> None:
        return self._redis_call(super().check_for_suspension, burst)

    def set_shutdown_requested_date(self) -> None:
        # Called from the stop signal's handler: only informative, never worth waiting for.
        try:
            super().set_shutdown_requested_date()
        except REDIS_LOST as exc:
            self.redis_outage.lost(exc)

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        # The thread listening for `rq` commands: the main loop reports the outage, and redis-py
        # subscribes again when it reconnects, so no line every two seconds here.
        if isinstance(exc, REDIS_LOST):
            time.sleep(2.0)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def _redis_call(self, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)`; if Redis is gone: raise in a burst worker, skip while a job runs (it
        must still be watched), else wait for Redis and call again."""
        while True:
            try:
                result = call(*args)
            except REDIS_LOST as exc:
                if self._burst:
                    raise
                if self.job_running:
                    self.redis_outage.lost(exc)
                    return None
                self.redis_outage.wait(exc)
                continue
            if self.redis_outage.over():
                self.register_again()
            return result

    def register_again(self) -> None:
        """Write this worker's registration again (its hash and the sets that list live workers),
        in case Redis restarted without its data. Idempotent."""
        try:
            with self.connection.pipeline() as pipeline:
                pipeline.hset(self.key, mapping=self.serialize())
                pipeline.hset(self.key, "state", self._state)
                if self.job_running and self.execution:
                    pipeline.hset(self.key, "current_job", self.execution.job_id)
                worker_registration.register(self, pipeline)
                pipeline.expire(self.key, self.worker_ttl + 60)
                pipeline.execute()
        except REDIS_LOST as exc:
            self.redis_outage.lost(exc)
            return
        self._scheduler_checked_at = None  # and take the scheduler back at the next chance

    def let_go(self) -> None:
        """After `work()` ended on a lost Redis: stop what this worker started in this process
        (scheduler, command listener) and wait for a job still running, so the next worker
        starts clean."""
        if self.scheduler and self.scheduler._process and self.scheduler._process.is_alive():
            self.stop_scheduler()
        if self.pubsub_thread:
            self.pubsub_thread.stop()
            self.pubsub_thread.join(timeout=5)
            if not self.pubsub_thread.is_alive() and self.pubsub:
                with suppress(RedisError, OSError):
                    self.pubsub.close()
        if self._job_future is not None:
            logger.warning("Worker %s: waiting for the job in hand to finish", self.name)
            with suppress(Exception):
                self._job_future.result()
            self._job_future = None
