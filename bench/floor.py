"""The physical floor a run is measured against, taken in the same run on the same machine:
what a request costs that does nothing (the trivial views, `bench/views.py`) and what a job
costs that does nothing (enqueued, picked up by a real `runworker`, finished)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
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


# Pauses between the round trips `wake_up_round_trips` times: a process just busy, and one that
# slept as long as a paced client leaves between its requests at 20 clients a second.
WAKE_PAUSES_MS = (1, 50)
_ECHO = "import os\nwhile data := os.read(0, 1):\n    os.write(1, data)"


def wake_up_round_trips(rounds: int = 30) -> dict[str, int]:
    """Median microseconds for one byte to go to another process and back, after each pause
    of `WAKE_PAUSES_MS`.

    Every hop of a request (load generator, web process, PostgreSQL, Redis) wakes a process
    that was waiting. Most machines do that in tens of microseconds whatever the pause; on some
    virtual machines a process that waited tens of milliseconds takes a millisecond to wake, and
    a paced page's latency carries that at every hop while its CPU cost does not. Recorded with
    each run, so figures from two machines are not compared as if they were alike.
    """
    # A process of its own (not a fork: the benchmark's process has threads) that sends back
    # each byte it reads, unbuffered.
    echo = subprocess.Popen(
        [sys.executable, "-u", "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    if echo.stdin is None or echo.stdout is None:  # never, with both pipes asked for
        raise RuntimeError("the echo process has no pipes")
    ask, answer = echo.stdin.fileno(), echo.stdout.fileno()
    try:
        medians = {}
        for pause in WAKE_PAUSES_MS:
            samples = []
            for _ in range(rounds):
                time.sleep(pause / 1000)
                started = time.perf_counter()
                os.write(ask, b".")
                os.read(answer, 1)
                samples.append((time.perf_counter() - started) * 1e6)
            medians[f"after {pause} ms"] = round(statistics.median(samples))
        return medians
    finally:
        echo.stdin.close()
        echo.wait(10)
        echo.stdout.close()


# Above this, a process that waited 50 ms wakes slowly enough to show in paced latencies.
SLOW_WAKE_US = 250


def wake_up_note(medians: dict[str, int]) -> str | None:
    """What to say beside the figures when the machine wakes waiting processes slowly."""
    waited = medians.get(f"after {WAKE_PAUSES_MS[-1]} ms", 0)
    if waited < SLOW_WAKE_US:
        return None
    return (
        f"a process here answers another {waited} µs after a {WAKE_PAUSES_MS[-1]} ms wait "
        f"({medians}), and every hop of a paced request pays that: paced latencies (p50, p95) "
        "are not comparable with those of a machine that wakes in tens of microseconds; compare "
        "each figure with the floor measured in the same run"
    )
