"""Provisioning fan-out: many demos starting at once on few workers, at a real step time.

A cluster takes seconds per step to come up, and a worker that sleeps while it does holds that
worker for the whole start: 200 starts on 2 workers would then take 100 starts' time. Workers
that only take short steps and come back for the next one serve every start side by side, so
200 starts should be ready about as soon as one alone (the figure's target is twice as long).

The stack is the benchmark's, with its own database and exactly `fanout_rq_workers` workers,
one cron, the simulated backend at `fanout_step_seconds` per step (a start takes four: control
plane, two charts, the app check) and the capacity limits out of the way. The starts go through
the start view over HTTP, released together from `fanout_users` salespeople's sessions, as a
sales team would send them. `BENCH_FANOUT_START=lifecycle` calls `lifecycle.start_demo`, the
service that view calls, one after another in this process instead, to tell whether the web
processes' share of the cores holds the starts back (on two cores it did not, much: see
docs/performance.md); the figure "every start answered (HTTP|lifecycle)" names the path used.

Runs in a process of its own (`python -m bench fanout`), since Django in this process must point
at the fan-out's database.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import stack as st
from bench.client import Browser
from bench.figures import FanOut, Figure, busy_share, fanout_figures
from bench.salesperson import Answer, new_token, start_all_at_once, try_start
from bench.scale import Scale

SLUG = "fanout"
# How long the workers may take to finish the jobs in hand before the totals are read.
IDLE_TIMEOUT = 30.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_path() -> str:
    via = os.environ.get("BENCH_FANOUT_START", "http").strip().lower()
    if via not in ("http", "lifecycle"):
        raise st.BenchError(f"BENCH_FANOUT_START={via!r}: use http or lifecycle")
    return via


class Starter:
    """Starts demos through the chosen path and says when each was ready."""

    def __init__(self, via: str, port: int, sessions: list[str], users: list[Any]) -> None:
        self.via = via
        self.port = port
        self.sessions = sessions
        self.users = users

    @property
    def label(self) -> str:
        return "HTTP" if self.via == "http" else "lifecycle"

    def start(self, tokens: list[str], timeout: float) -> list[Answer]:
        if self.via == "http":
            if len(tokens) == 1:
                browser = Browser(self.port, self.sessions[0])
                try:
                    return [try_start(browser, SLUG, tokens[0])]
                finally:
                    browser.close()
            return start_all_at_once(self.port, self.sessions, SLUG, tokens, timeout)
        return [self._start_in_process(index, token) for index, token in enumerate(tokens)]

    def _start_in_process(self, index: int, token: str) -> Answer:
        from demos.engine import lifecycle
        from demos.models import DemoTemplate

        started = time.perf_counter()
        try:
            demo = lifecycle.start_demo(
                template=DemoTemplate.objects.get(slug=SLUG),
                owner=self.users[index % len(self.users)],
                prospect_company="Acme Corp",
                prospect_name="Ada",
                start_token=token,
            )
        except Exception as exc:  # what the view would turn into an error page
            return Answer(500, "", time.perf_counter() - started, repr(exc))
        return Answer(302, f"/demos/{demo.public_id}/", time.perf_counter() - started)


def settled_counts(tokens: list[str]) -> tuple[int, int, int]:
    """How many of the demos with these start tokens are ready, failed, and still going."""
    from django.db.models import Count

    from demos.models import Demo, Status

    by_status = dict(
        Demo.objects.filter(start_token__in=tokens)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    ready = by_status.get(Status.READY, 0)
    failed = by_status.get(Status.FAILED, 0)
    return ready, failed, len(tokens) - ready - failed


def last_ready_at(tokens: list[str]) -> float | None:
    from django.db.models import Max

    from demos.models import Demo

    stamp = Demo.objects.filter(start_token__in=tokens).aggregate(last=Max("ready_at"))["last"]
    return stamp.timestamp() if stamp else None


def wait_settled(tokens: list[str], deadline: float, progress_every: float = 0.0) -> bool:
    """Wait until every demo of `tokens` is ready or failed, or `deadline` (monotonic) passes."""
    next_report = time.monotonic() + progress_every
    while True:
        ready, failed, going = settled_counts(tokens)
        if not going:
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        if progress_every and now >= next_report:
            log(f"  {ready} ready, {failed} failed, {going} still starting")
            next_report = now + progress_every
        time.sleep(0.25)


def one_alone(starter: Starter, timeout: float) -> float:
    """Seconds from sending one start to its demo's ready_at."""
    token = new_token()
    sent = time.time()
    answer = starter.start([token], timeout)[0]
    if not answer.demo_page:
        raise st.BenchError(f"a lone start answered {answer.status}: {answer.detail}")
    if not wait_settled([token], time.monotonic() + timeout):
        raise st.BenchError(f"a lone start was not ready within {timeout:g} s")
    ready = last_ready_at([token])
    if ready is None:
        raise st.BenchError("a lone start failed; see the worker logs")
    return ready - sent


def workers_idle(redis_url: str) -> bool:
    import redis
    from rq import Queue, Worker

    client = redis.Redis.from_url(st.require_loopback(redis_url), socket_timeout=5)
    try:
        busy = any(w.get_state() == "busy" for w in Worker.all(connection=client))
        queued = sum(len(q) for q in Queue.all(connection=client))
        return not busy and not queued
    finally:
        client.close()


def settle_workers(redis_url: str) -> None:
    """Give the workers a moment to finish what they hold, so totals read afterwards count
    whole jobs; a miss only makes the busy share slightly less exact."""
    deadline = time.monotonic() + IDLE_TIMEOUT
    while not workers_idle(redis_url) and time.monotonic() < deadline:
        time.sleep(0.2)


def measure(scale: Scale, starter: Starter, stack: st.Stack) -> FanOut:
    count, workers = scale.fanout_starts, scale.fanout_rq_workers
    log("one start first, unmeasured (each process imports code on its first job)")
    one_alone(starter, scale.ready_timeout)
    alone = []
    for _ in range(scale.fanout_alone):
        alone.append(one_alone(starter, scale.ready_timeout))
        log(f"  one start alone: ready after {alone[-1]:.2f} s")
    settle_workers(st.REDIS_URL)

    tokens = [new_token() for _ in range(count)]
    log(f"{count} starts at once ({starter.label}) on {workers} workers")
    initial = st.worker_totals(st.REDIS_URL)
    before = {name: t.working_seconds for name, t in initial.items()}
    jobs_before = sum(t.jobs for t in initial.values())
    cpu_before = stack.cpu_seconds("worker")
    machine_before = st.machine_cpu()[0]
    began_wall, began = time.time(), time.monotonic()
    answers = starter.start(tokens, scale.ready_timeout)
    answered = max((a.seconds for a in answers), default=0.0)
    if starter.via == "lifecycle":
        answered = time.monotonic() - began
    all_settled = wait_settled(tokens, began + scale.fanout_timeout, progress_every=30)
    waited = time.monotonic() - began
    ready, failed, _going = settled_counts(tokens)
    last = last_ready_at(tokens)
    all_ready = last - began_wall if all_settled and not failed and last is not None else None
    window = all_ready if all_ready is not None else waited
    machine_busy = (st.machine_cpu()[0] - machine_before) / max(waited, 1e-9)
    settle_workers(st.REDIS_URL)
    totals = st.worker_totals(st.REDIS_URL)
    after = {name: t.working_seconds for name, t in totals.items()}
    errors = [a for a in answers if not a.demo_page]
    for answer in errors[:3]:
        log(f"  a start answered {answer.status}: {answer.detail[:200]}")
    return FanOut(
        starts=count,
        workers=workers,
        step_seconds=scale.fanout_step_seconds,
        via=starter.label,
        alone=alone,
        all_ready=all_ready,
        waited=waited,
        ready=ready,
        failed=failed,
        answered=answered,
        start_errors=len(errors),
        busy=busy_share(before, after, workers, window),
        jobs=sum(t.jobs for t in totals.values()) - jobs_before,
        worker_cpu=stack.cpu_seconds("worker") - cpu_before,
        machine_busy=machine_busy,
    )


def run(scale: Scale, logs: Path, setup_django: Callable[[dict[str, str]], None]) -> list[Figure]:
    database = st.db_name("bench_fanout")
    port = st.free_port()
    st.recreate_database(database)
    st.flush_redis(st.REDIS_URL)
    static = logs / "static"
    env = st.portal_env(
        database,
        st.REDIS_URL,
        port,
        DEMO_SIM_STEP_SECONDS=str(scale.fanout_step_seconds),
        BENCH_STATIC_ROOT=str(static),
    )
    own_logs = logs / "fanout"
    own_logs.mkdir(exist_ok=True)
    stack = st.Stack(env, own_logs)
    try:
        log("migrating the fan-out database")
        stack.manage("migrate", "--noinput")
        if not (static / "staticfiles.json").exists():
            stack.manage("collectstatic", "--noinput", "--verbosity", "0")
        setup_django(env)
        from bench import portal_data

        users = portal_data.salespeople(max(scale.fanout_users, 1), "fanner")
        sessions = [portal_data.session_for(user) for user in users]
        portal_data.template(SLUG)
        log(
            f"starting gunicorn ({scale.web_workers}x{scale.web_threads} gthread), "
            f"{scale.fanout_rq_workers} workers, one cron; {scale.fanout_step_seconds:g} s steps"
        )
        stack.start_portal(port, scale.web_workers, scale.web_threads, scale.fanout_rq_workers)
        starter = Starter(start_path(), port, sessions, users)
        outcome = measure(scale, starter, stack)
        stack.check_alive()
    finally:
        stack.stop()
        st.close_django_connections()
        st.drop_database(database)
        st.flush_redis(st.REDIS_URL)
    return fanout_figures(outcome)


def write(figures: list[Figure], out: Path) -> None:
    out.write_text(json.dumps([figure.as_dict() for figure in figures]))


def read(out: Path) -> list[Figure]:
    return [
        Figure.of(item["name"], item["value"], item["unit"], item["target"])
        for item in json.loads(out.read_text())
    ]
