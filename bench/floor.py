"""The physical floor a run is measured against, taken in the same run on the same machine:
what a request costs that does nothing (the trivial views, `bench/views.py`) and what a job
costs that does nothing (enqueued, picked up by a real `runworker`, finished)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from demos.durations import percentile


def noop() -> None:
    """The floor's job: a round trip through Redis and a worker, doing nothing."""


@dataclass(frozen=True)
class JobFloor:
    median: float  # seconds from enqueueing until the job's result was recorded
    p95: float
    count: int


def job_round_trips(count: int, timeout: float = 30.0) -> JobFloor:
    """Enqueue `count` no-op jobs one after another on the queue of the demos' steps and wait for
    each to finish. Needs Django set up against the running portal's Redis."""
    import django_rq

    queue = django_rq.get_queue("demos")  # where a start's steps go
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        job = queue.enqueue(noop, result_ttl=60, failure_ttl=60)
        # Blocks on the job's result stream in Redis: no polling interval is measured.
        result = job.latest_result(timeout=int(timeout))
        if result is None or result.type != result.Type.SUCCESSFUL:
            raise RuntimeError(f"the no-op job did not finish within {timeout:g} s")
        samples.append(time.perf_counter() - started)
    return JobFloor(statistics.median(samples), percentile(samples, 95), count)
