"""The portal's RQ worker: RQ's own, taking over a dead scheduler within seconds.

RQ's scheduler moves due jobs (retries after a transient error, each demo's expiry job) to their
queues. It runs as a child process of one worker, which holds a lock per queue that the
scheduler refreshes every second for another 61 seconds. When that worker's pod is killed, the
lock outlives it by up to a minute, the other workers only try to take it over at their
maintenance, and an idle worker only gets to its maintenance when its blocking wait for a job
times out (RQ's default: every 405 s). Retries and expiry jobs would wait all that time.

This worker wakes every `IDLE_WAKEUP` seconds, checks every `SCHEDULER_CHECK` seconds whether
the scheduler holding a lock is still alive (its heartbeat is recent), releases the lock of one
that is not (only if that scheduler still holds it), and takes the scheduler over when its own is
not running. Registries are still cleaned at RQ's `maintenance_interval`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from rq import Worker
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.utils import now, utcparse

logger = logging.getLogger(__name__)

IDLE_WAKEUP = 5  # seconds an idle worker blocks waiting for a job before looking around
SCHEDULER_CHECK = timedelta(seconds=5)
# A live scheduler beats every second; ten missed beats mean it is gone (or hopelessly stuck,
# and RQ's own heartbeat then hands the lock back to whoever took it over).
SCHEDULER_STALE_AFTER = timedelta(seconds=10)
# RQ waits `worker_ttl - 15` seconds for a job before it loops (and can run its maintenance).
WORKER_TTL = IDLE_WAKEUP + 15


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


class PortalWorker(Worker):
    """RQ's worker, looking after the scheduler every `SCHEDULER_CHECK` as well as at its
    maintenance (see the module's docstring)."""

    _scheduler_checked_at: datetime | None = None

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return super().should_run_maintenance_tasks or self._scheduler_check_due()

    def _scheduler_check_due(self) -> bool:
        checked = self._scheduler_checked_at
        return checked is None or now() - checked >= SCHEDULER_CHECK

    def run_maintenance_tasks(self) -> None:
        # As in RQ, not on the first run: `work()` has just started (or not) the scheduler.
        if self.last_cleaned_at and self._scheduler_check_due():
            self._scheduler_checked_at = now()
            release_dead_scheduler_locks(self.connection, self.queue_names())
            # The same test RQ's maintenance makes, only more often.
            process = self.scheduler._process if self.scheduler else None
            if self.scheduler and not (process and process.is_alive()):
                self.scheduler.acquire_locks(auto_start=True)
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
