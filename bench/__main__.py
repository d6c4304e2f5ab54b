"""`make bench`: the portal's own speed, measured end to end on this machine.

Starts the portal as in production (gunicorn with gthread workers, real `manage.py runworker`
processes, one `manage.py runcron`) against a PostgreSQL database and a Redis database of its
own, with the simulated backend at zero step durations so that every millisecond measured is the
portal's. Each phase runs `BENCH_REPEATS` times (3 by default, once at small scale), each time
in a process of its own; the table gives every figure's median over the runs and their spread,
beside the floor measured in the same run. Writes `bench/results/latest.json`.

    BENCH_SCALE=small python -m bench      # a smoke run of a few minutes
    python -m bench                        # the published figures
    BENCH_PHASES=scale python -m bench     # only some phases (sweep, portal, scale, fanout)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from bench import fanout, floor
from bench import figures as fig
from bench import stack as st
from bench.client import HTMX, Browser, LoadResult, closed_loop, next_poll, without_version
from bench.figures import Figure, ms
from bench.salesperson import post_start, public_id_of, start_form
from bench.scale import Scale, from_env
from demos.durations import percentile

BENCH_DB = st.db_name("bench")
SWEEP_DB = st.db_name("bench_sweep")
POLL_INTERVAL = float(os.environ.get("BENCH_POLL_INTERVAL", "0.1"))
OK_ANSWERS = (HTTPStatus.OK, HTTPStatus.NO_CONTENT)  # a poll's answers other than 286


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Run:
    scale: Scale
    port: int
    stack: st.Stack
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Raw samples by phase, kept with the logs (BENCH_KEEP_LOGS=1) for a closer look.
    samples: dict[str, list[Any]] = field(default_factory=dict)
    job_floor: Any = None  # bench.floor.JobFloor, measured before the starts

    def add(
        self,
        name: str,
        value: float | None,
        unit: str,
        target: str | None = None,
        *,
        floor: float | None = None,
    ) -> None:
        self.figures.append(Figure.of(name, value, unit, target, floor=floor))


def cpu_snapshot(stack: st.Stack) -> dict[str, float]:
    times = os.times()
    return {
        "wall": time.monotonic(),
        "machine": st.machine_cpu()[0],
        "web": stack.cpu_seconds("web"),
        "worker": stack.cpu_seconds("worker"),
        "cron": stack.cpu_seconds("cron"),
        "bench": times.user + times.system,
    }


@contextlib.contextmanager
def cpu_use(run: Run, phase: str) -> Iterator[dict[str, float]]:
    """CPU seconds used during the block, by the machine and by each of our processes.

    Whatever the machine was busy with beyond the portal's processes and this load generator
    is PostgreSQL, Redis and anything else running here (other people's test runs included):
    the figures say how quiet the machine was while this phase was measured."""
    used: dict[str, float] = {}
    before = cpu_snapshot(run.stack)
    yield used
    after = cpu_snapshot(run.stack)
    used.update({key: after[key] - before[key] for key in after})
    wall = used["wall"]
    portal = used["web"] + used["worker"] + used["cron"]
    run.add(f"{phase}: machine CPU busy", used["machine"] / wall, "cores")
    run.add(f"{phase}: portal's processes CPU", portal / wall, "cores")
    run.add(f"{phase}: load generator CPU", used["bench"] / wall, "cores")


def setup_django(env: dict[str, str]) -> None:
    """Configure this process like the portal's (same settings, database and Redis)."""
    os.environ.update(env)
    import django

    django.setup()


# --- Starting demos through HTTP, as a salesperson's browser does -----------------------------


def open_demo_page(browser: Browser, page: str) -> bytes:
    """The demo's page, as the browser loads it after the start form's redirect."""
    response = browser.get(page)
    if response.status != 200:
        raise st.BenchError(f"{page} answered {response.status}")
    return response.body


def poll_until_settled(browser: Browser, page: str, body: bytes, timeout: float) -> bytes:
    """Poll the status fragment as htmx does (only more often) until it answers 286: each poll
    goes to the URL the last answer's status panel names (`?since=` the newest event shown)."""
    if b'id="live-url"' in body:
        return body  # ready already: the page polls no more
    url = next_poll(body, f"{page}status/")
    deadline = time.perf_counter() + timeout
    while True:
        response = browser.get(url, HTMX)
        if response.status == 286:
            return response.body
        if response.status not in OK_ANSWERS:
            raise st.BenchError(f"status of {page} answered {response.status}")
        if time.perf_counter() > deadline:
            raise st.BenchError(f"{page} did not settle within {timeout:g} s")
        url = next_poll(response.body, url)  # a 204 (nothing new) names no other URL
        time.sleep(POLL_INTERVAL)


# --- Phases ------------------------------------------------------------------------------------


def warm_up(run: Run, browser: Browser, slug: str) -> None:
    """First requests import templates and code lazily in each process: not what a salesperson
    meets on a running portal, so they are not measured."""
    for _ in range(run.scale.web_workers * run.scale.web_threads * 2):
        browser.get("/")
        browser.get("/healthz")
    for _ in range(run.scale.rq_workers * 2):
        start_to_ready(run, browser, slug)


def ready_at(public_id: str) -> float:
    """When the worker marked the demo ready (this machine's clock, as `time.time()`)."""
    from demos.models import Demo

    stamp = Demo.objects.filter(public_id=public_id).values_list("ready_at", flat=True).get()
    if stamp is None:
        raise st.BenchError(f"demo {public_id} settled without becoming ready")
    return stamp.timestamp()


@dataclass(frozen=True)
class StartTiming:
    sent: float  # time.time() when the POST went out
    overhead: float  # until the worker marked the demo ready
    posted: float  # the POST's own round trip
    seen: float  # until a poll showed it ready
    public_id: str


def start_to_ready(run: Run, browser: Browser, slug: str) -> StartTiming:
    """One start through HTTP: POST, the demo page, then polls of its status fragment until it
    answers 286.

    The overhead runs from the request until the worker marked the demo ready, by the clock this
    machine shares with the workers. The poll only confirms what the page shows; its interval
    (htmx's is two seconds) is the browser's choice, not the portal's overhead, so it is not
    part of the figure. Polling much faster than htmx would also take the CPU the worker needs.
    """
    sent = time.time()
    started = time.perf_counter()
    page = post_start(browser, slug, secrets.token_urlsafe(16))
    posted = time.perf_counter() - started
    body = open_demo_page(browser, page)
    body = poll_until_settled(browser, page, body, run.scale.ready_timeout)
    seen = time.perf_counter() - started
    if b'id="live-url"' not in body:
        raise st.BenchError(f"{page} settled without showing its live link")
    public_id = public_id_of(page)
    return StartTiming(sent, ready_at(public_id) - sent, posted, seen, public_id)


def sequential_starts(run: Run, browser: Browser, slug: str) -> None:
    from demos.models import DemoEvent

    count = run.scale.sequential_starts
    log(f"{count} sequential starts through HTTP")
    timings = [start_to_ready(run, browser, slug) for _ in range(count)]
    run.samples["sequential starts (sent, overhead, post)"] = [
        (round(t.sent, 3), round(t.overhead, 4), round(t.posted, 4)) for t in timings
    ]
    samples = [t.overhead for t in timings]
    posts = [t.posted for t in timings]
    seen = [t.seen for t in timings]
    ids = [t.public_id for t in timings]
    job = run.job_floor
    run.add(
        "start-to-ready overhead, median",
        ms(statistics.median(samples)),
        "ms",
        floor=ms(job.median) if job else None,
    )
    run.add(
        "start-to-ready overhead, p95",
        ms(percentile(samples, 95)),
        "ms",
        "<= 200",
        floor=ms(job.p95) if job else None,
    )
    run.add("start-to-ready overhead, max", ms(max(samples)), "ms")
    run.add("start-to-ready: start request (POST), p95", ms(percentile(posts, 95)), "ms")
    run.add(
        f"start-to-ready: seen by a poll every {POLL_INTERVAL * 1000:g} ms, median",
        ms(statistics.median(seen)),
        "ms",
    )

    # Where the time goes, from the demos' own timelines (the same clock).
    marks: dict[int, dict[str, Any]] = {}
    events = DemoEvent.objects.filter(
        demo__public_id__in=ids, kind__in=("admitted", "provisioning", "ready")
    ).values_list("demo_id", "kind", "created_at")
    for demo_id, kind, created_at in events:
        marks.setdefault(demo_id, {})[kind] = created_at
    complete = [m for m in marks.values() if {"admitted", "provisioning", "ready"} <= m.keys()]
    if complete:
        queued = [(m["provisioning"] - m["admitted"]).total_seconds() for m in complete]
        working = [(m["ready"] - m["provisioning"]).total_seconds() for m in complete]
        run.add(
            "start-to-ready: admitted until a worker began, median",
            ms(statistics.median(queued)),
            "ms",
        )
        run.add(
            "start-to-ready: worker began until ready, median",
            ms(statistics.median(working)),
            "ms",
        )


def concurrent_starts(run: Run, sessions: list[str], slug: str) -> None:
    from demos.models import Demo, SimulatedCluster, Status

    count, doubles = run.scale.concurrent_starts, run.scale.double_submits
    log(f"{count} concurrent starts ({doubles} of them double-submitted)")
    tokens = [secrets.token_urlsafe(16) for _ in range(count)]
    # A double submit is the same form (same session, same token) sent twice at once.
    plan = [(sessions[i % len(sessions)], tokens[i]) for i in range(count)]
    plan += plan[:doubles]
    answers: list[int] = []
    lock = threading.Lock()
    gate = threading.Barrier(len(plan) + 1)

    def start(session: str, token: str) -> None:
        browser = Browser(run.port, session)
        gate.wait()
        try:
            response = browser.post_form(f"/templates/{slug}/start/", start_form(token))
            status = response.status
        except OSError:
            status = 0
        finally:
            browser.close()
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=start, args=item, daemon=True) for item in plan]
    for thread in threads:
        thread.start()
    mine = Demo.objects.filter(start_token__in=tokens)

    def all_settled() -> bool:
        return not mine.exclude(status__in=[Status.READY, Status.FAILED]).exists()

    with cpu_use(run, "concurrent starts") as used:
        began_wall = time.time()
        began = time.perf_counter()
        gate.wait()
        for thread in threads:
            thread.join(run.scale.ready_timeout)
        answered = time.perf_counter() - began
        try:
            st.wait_until(
                all_settled, run.scale.ready_timeout, "the concurrent starts to settle", 0.05
            )
        except st.BenchError as exc:
            run.notes.append(str(exc))
    rows = list(mine.values_list("start_token", "status", "ready_at", "cluster_name"))
    per_token: dict[str, int] = {}
    for token, *_rest in rows:
        per_token[token] = per_token.get(token, 0) + 1
    ready = [r for r in rows if r[1] == Status.READY]
    failed = sum(1 for r in rows if r[1] == Status.FAILED)
    duplicates = sum(n - 1 for n in per_token.values() if n > 1)
    # Lost: accepted and then never there, or never settled within the time allowed.
    lost = sum(1 for token in tokens if token not in per_token)
    lost += len(rows) - len(ready) - failed
    clusters = SimulatedCluster.objects.filter(name__in=[r[3] for r in rows]).count()
    last_ready = max((r[2].timestamp() for r in ready), default=began_wall) - began_wall
    run.add("concurrent starts: time until all ready", last_ready, "s")
    run.add(
        "concurrent starts: throughput", len(ready) / last_ready if last_ready else 0, "demos/s"
    )
    run.add("concurrent starts: all requests answered", answered, "s")
    run.add(
        "concurrent starts: error answers", sum(1 for a in answers if a != 302), "requests", "== 0"
    )
    run.add("concurrent starts: duplicates", duplicates, "demos", "== 0")
    run.add("concurrent starts: duplicate clusters", clusters - len(rows), "clusters", "== 0")
    run.add("concurrent starts: lost", lost, "demos", "== 0")
    run.add("concurrent starts: failed", failed, "demos", "== 0")
    run.add("concurrent starts: web CPU per demo", ms(used["web"] / count), "ms")
    run.add(
        "concurrent starts: worker CPU per demo (work horses included)",
        ms(used["worker"] / count),
        "ms",
    )


def claims_and_cold_starts(run: Run, browser: Browser, slug: str) -> None:
    from demos.engine import dispatch
    from demos.models import Demo, DemoTemplate, Status

    template = DemoTemplate.objects.get(slug=slug)
    spares = Demo.objects.filter(template=template, is_spare=True, status=Status.READY)
    count = run.scale.claims
    log(f"{count} cold starts, then {count} warm-pool claims, of one template")

    cold = [start_to_ready(run, browser, slug).overhead for _ in range(count)]

    DemoTemplate.objects.filter(pk=template.pk).update(warm_pool_size=run.scale.pool_size)
    dispatch.request_pool_refill(template.pk)
    st.wait_until(
        lambda: spares.count() >= run.scale.pool_size,
        run.scale.ready_timeout,
        "the warm pool to fill",
    )
    claimed: list[float] = []
    claim_posts: list[float] = []
    fallbacks = 0
    for _ in range(count):
        # A claim on a full pool, the usual case: the refill after the last claim has finished,
        # so its work horse does not compete with this request for the two cores.
        st.wait_until(
            lambda: spares.count() >= run.scale.pool_size,
            run.scale.ready_timeout,
            "the warm pool to refill",
        )
        started = time.perf_counter()
        page = post_start(browser, slug, secrets.token_urlsafe(16))
        posted = time.perf_counter() - started
        body = open_demo_page(browser, page)
        seconds = time.perf_counter() - started
        if Demo.objects.filter(public_id=public_id_of(page), claimed_at__isnull=False).exists():
            if b'id="live-url"' not in body:
                raise st.BenchError(f"claimed demo {page} has no live link on its page")
            claimed.append(seconds)
            claim_posts.append(posted)
        else:
            fallbacks += 1
            poll_until_settled(browser, page, body, run.scale.ready_timeout)
    run.add("cold start of the pool's template to ready, median", ms(statistics.median(cold)), "ms")
    run.add("cold start of the pool's template to ready, p95", ms(percentile(cold, 95)), "ms")
    if claimed:
        run.add("warm-pool claim to live link, median", ms(statistics.median(claimed)), "ms")
        run.add("warm-pool claim to live link, p95", ms(percentile(claimed, 95)), "ms", "< 100")
        pages = [total - post for total, post in zip(claimed, claim_posts, strict=True)]
        run.add(
            "warm-pool claim: start request (POST), median",
            ms(statistics.median(claim_posts)),
            "ms",
        )
        run.add("warm-pool claim: demo page (GET), median", ms(statistics.median(pages)), "ms")
    else:
        run.add("warm-pool claim to live link, p95", None, "ms", "< 100")
    run.add("warm-pool claims that fell back to a cold start", fallbacks, "starts", "== 0")


def fragment_queries(session_owner: Any, demo: Any) -> int:
    """Queries one status poll makes when nothing new happened (the usual poll), counted in
    this process with Django's test client."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(session_owner)
    page = client.get(f"/demos/{demo.public_id}/")
    path = next_poll(page.content, f"/demos/{demo.public_id}/status/")
    # The first poll renders the panel with its version (and loads more of a fresh session than
    # a poll does); the next one, asking with that version, is the usual poll.
    path = next_poll(client.get(path, headers=HTMX).content, path)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, headers=HTMX)
    if response.status_code != HTTPStatus.NO_CONTENT:
        raise st.BenchError(f"a poll without news answered {response.status_code} in-process")
    return len(queries.captured_queries)


@dataclass
class PollTotals:
    result: LoadResult = field(default_factory=LoadResult)
    web_cpu: float = 0.0
    client_cpu: float = 0.0

    def add(self, result: LoadResult, web_cpu: float, client_cpu: float) -> None:
        self.result.requests += result.requests
        self.result.errors += result.errors
        self.result.seconds += result.seconds
        self.result.latencies += result.latencies
        for status, count in result.statuses.items():
            self.result.statuses[status] = self.result.statuses.get(status, 0) + count
        self.web_cpu += web_cpu
        self.client_cpu += client_cpu


POLL_ROUNDS = 3
FOLLOWED = {"status fragment"}  # the full renders stay on their version-less URL


def pollers(run: Run, users: list[Any], sessions: list[str], slug: str) -> None:
    from bench import gate, portal_data
    from demos.models import DemoTemplate

    template = DemoTemplate.objects.get(slug=slug)
    count, seconds = run.scale.pollers, run.scale.poll_seconds
    demos = [portal_data.starting_demo(template, user) for user in users[:count]]
    browsers = [Browser(run.port, session) for session in sessions[:count]]
    log(f"{count} concurrent pollers, {seconds:g} s per view in {POLL_ROUNDS} rounds")
    # Each poller starts where its browser would: the demo page names the first poll's URL.
    first_polls = [
        next_poll(open_demo_page(browser, f"/demos/{demo.public_id}/"), "")
        for browser, demo in zip(browsers, demos, strict=True)
    ]
    if not all(first_polls):
        raise st.BenchError("a starting demo's page does not poll its status")
    # The gate's check as the ingress makes it, for a prospect in a running demo.
    gate_headers, _link = gate.prospect_headers(portal_data.running_demo(template, users[0]))
    # The same polls without the panel's version: every answer is rendered in full, as when
    # each poll brought news. Not the target figure, but what the 204s save is worth seeing.
    full_renders = [without_version(path) for path in first_polls]
    views: list[tuple[str, Any, dict[str, str] | None]] = [
        ("status fragment", lambda i: first_polls[i], HTMX),
        ("status fragment, rendered in full", lambda i: full_renders[i], HTMX),
        ("trivial view (signed in)", lambda i: "/bench/trivial-signed-in/", None),
        ("trivial view (no session)", lambda i: "/bench/trivial/", None),
        ("healthz (one query)", lambda i: "/healthz", None),
        ("gate check", lambda i: "/gate/check/", gate_headers),
    ]
    for name, path_for, headers in views:
        # Warm-up, not measured.
        closed_loop(browsers, path_for, 1.0, headers, ok=OK_ANSWERS, follow=name in FOLLOWED)
    totals = {name: PollTotals() for name, _p, _h in views}
    # Short rounds, taking turns, so a burst of other work on the machine falls on all views
    # alike instead of on whichever was measured at that moment.
    for round_ in range(POLL_ROUNDS):
        for name, path_for, headers in views[round_ % len(views) :] + views[: round_ % len(views)]:
            web_cpu = run.stack.cpu_seconds("web")
            client_cpu = time.process_time()
            result = closed_loop(
                browsers,
                path_for,
                seconds / POLL_ROUNDS,
                headers,
                ok=OK_ANSWERS,
                follow=name in FOLLOWED,
            )
            totals[name].add(
                result,
                run.stack.cpu_seconds("web") - web_cpu,
                time.process_time() - client_cpu,
            )
    for browser in browsers:
        browser.close()

    def cpu(total: PollTotals) -> float:
        return ms(total.web_cpu / max(total.result.requests, 1))

    floor = totals["trivial view (no session)"]
    for name, total in totals.items():
        result = total.result
        if result.errors:
            run.notes.append(f"{name}: {result.errors} errors, statuses {result.statuses}")
        beside = name != "trivial view (no session)"
        run.add(
            f"{name}: throughput",
            result.per_second,
            "req/s",
            floor=floor.result.per_second if beside else None,
        )
        run.add(
            f"{name}: p95",
            ms(percentile(result.latencies, 95)),
            "ms",
            floor=ms(percentile(floor.result.latencies, 95)) if beside else None,
        )
        run.add(
            f"{name}: web CPU per request", cpu(total), "ms", floor=cpu(floor) if beside else None
        )
        if name == "status fragment":
            run.add(f"{name}: errors", result.errors, "requests", "== 0")
            no_news = result.statuses.get(HTTPStatus.NO_CONTENT, 0) / max(result.requests, 1)
            run.add(f"{name}: answered 204 (nothing new)", 100 * no_news, "%")
    rate = {name: total.result.per_second for name, total in totals.items()}
    fragment = rate["status fragment"]
    run.add(
        "status fragment / trivial view (signed in)",
        fragment / rate["trivial view (signed in)"],
        "ratio",
        ">= 0.7",
    )
    run.add(
        "status fragment / trivial view (no session)",
        fragment / rate["trivial view (no session)"],
        "ratio",
    )
    run.add("status fragment / healthz", fragment / rate["healthz (one query)"], "ratio")
    run.add(
        "status fragment rendered in full / trivial view (signed in)",
        rate["status fragment, rendered in full"] / rate["trivial view (signed in)"],
        "ratio",
    )
    run.add(
        "gate check / trivial view (no session)",
        rate["gate check"] / rate["trivial view (no session)"],
        "ratio",
        ">= 0.8",
    )
    run.add(
        "gate check: queries per request", gate.queries_per_check(gate_headers), "queries", "== 0"
    )
    delays = gate.revocation_to_blocked(run.port, template, users[0])
    run.add("revocation to blocked: p95", percentile(delays, 95), "s", "<= 5")
    run.add("revocation to blocked: median", percentile(delays, 50), "s")
    client_cpu = sum(total.client_cpu for total in totals.values())
    requests = sum(total.result.requests for total in totals.values())
    run.add("load generator CPU per request", ms(client_cpu / max(requests, 1)), "ms")
    run.add(
        "status fragment: queries per poll without news",
        fragment_queries(users[0], demos[0]),
        "queries",
    )


def memory(run: Run) -> None:
    run.stack.sample_memory_once()
    peaks = run.stack.memory.peaks
    for role in ("web master", "web worker", "worker", "RQ scheduler", "work horse", "cron"):
        if role in peaks:
            label = {"worker": "RQ worker", "web worker": "web worker (gunicorn)"}.get(role, role)
            run.add(f"peak memory (VmHWM): {label}", peaks[role] / 1024, "MiB")
    run.notes.append(f"work horses sampled for memory: {run.stack.memory.horses_seen}")


def sweep_scaling(run_figures: list[Figure], scale: Scale, logs: Path) -> None:
    sizes = ",".join(str(rows) for rows in scale.sweep_rows)
    log(f"reconcile sweep over {sizes} demos, {scale.sweep_due} due")
    st.recreate_database(SWEEP_DB)
    try:
        # The sweep logs a summary at INFO each time; dozens of them would bury the progress.
        env = st.portal_env(SWEEP_DB, st.REDIS_URL, 8000, LOG_LEVEL="WARNING")
        st.Stack(env, logs).manage("migrate", "--noinput")
        out = logs / "sweep.json"
        subprocess.run(
            [
                st.PYTHON, "-m", "bench", "sweep",
                "--rows", sizes,
                "--due", str(scale.sweep_due),
                "--repeats", str(scale.sweep_repeats),
                "--out", str(out),
            ],
            cwd=st.ROOT,
            env=env,
            check=True,
            timeout=1800,
        )  # fmt: skip
        runs = json.loads(out.read_text())
    finally:
        st.drop_database(SWEEP_DB)
        st.flush_redis(st.REDIS_URL)
    run_figures.extend(fig.sweep_figures(runs, scale.sweep_due))


def run_sweep_subcommand(args: argparse.Namespace) -> int:
    """The sweep measurement, in a process whose Django points at the sweep database."""
    import django

    django.setup()
    from bench import sweep

    sizes = [int(part) for part in args.rows.split(",") if part]
    runs = sweep.scaling(sizes, args.due, args.repeats)
    Path(args.out).write_text(
        json.dumps(
            [
                {
                    "nominal_rows": nominal,
                    "rows": r.rows,
                    "seconds": r.seconds,
                    "queries": r.queries,
                    "expired": r.expired,
                    "db_seconds": r.db_seconds,
                }
                for nominal, r in zip(sizes, runs, strict=True)
            ]
        )
    )
    return 0


def run_portal_phases(run_figures: list[Figure], scale: Scale, logs: Path) -> list[str]:
    port = st.free_port()
    st.recreate_database(BENCH_DB)
    st.flush_redis(st.REDIS_URL)
    env = st.portal_env(BENCH_DB, st.REDIS_URL, port, BENCH_STATIC_ROOT=str(logs / "static"))
    stack = st.Stack(env, logs)
    run = Run(scale, port, stack)
    try:
        log("migrating the bench database and collecting static files")
        stack.manage("migrate", "--noinput")
        stack.manage("collectstatic", "--noinput", "--verbosity", "0")
        setup_django(env)
        from bench import portal_data

        sellers = max(scale.pollers, scale.concurrent_users, 1)
        users = portal_data.salespeople(sellers, "seller")
        sessions = [portal_data.session_for(user) for user in users]
        for slug in ("webshop", "pooled", "polled"):
            portal_data.template(slug)

        log(
            f"starting gunicorn ({scale.web_workers}x{scale.web_threads} gthread), "
            f"{scale.rq_workers} workers, one cron"
        )
        stack.start_portal(port, scale.web_workers, scale.web_threads, scale.rq_workers)
        stack.start_memory_sampler()
        browser = Browser(port, sessions[0])
        warm_up(run, browser, "webshop")

        run.job_floor = floor.job_round_trips(scale.scale_job_round_trips)
        run.add("floor: no-op job round trip, median", ms(run.job_floor.median), "ms")
        run.add("floor: no-op job round trip, p95", ms(run.job_floor.p95), "ms")
        with cpu_use(run, "sequential starts"):
            sequential_starts(run, browser, "webshop")
        stack.check_alive()
        concurrent_starts(run, sessions[: scale.concurrent_users], "webshop")
        stack.check_alive()
        with cpu_use(run, "cold starts and claims"):
            claims_and_cold_starts(run, browser, "pooled")
        stack.check_alive()
        with cpu_use(run, "pollers"):
            pollers(run, users, sessions, "polled")
        stack.check_alive()
        memory(run)
        browser.close()
        (logs / "samples.json").write_text(json.dumps(run.samples))
    finally:
        stack.stop()
        st.close_django_connections()
        st.drop_database(BENCH_DB)
        st.flush_redis(st.REDIS_URL)
    run_figures.extend(run.figures)
    return run.notes


def fanout_phase(run_figures: list[Figure], scale: Scale, logs: Path) -> None:
    """The provisioning fan-out, in a process of its own (its Django points at its database)."""
    out = logs / "fanout.json"
    result = subprocess.run(
        [st.PYTHON, "-m", "bench", "fanout", "--logs", str(logs), "--out", str(out)],
        cwd=st.ROOT,
        check=False,
        timeout=scale.fanout_timeout + 3 * scale.ready_timeout + 600,
    )
    if result.returncode:
        raise st.BenchError("the provisioning fan-out failed (its messages are above)")
    run_figures.extend(fanout.read(out))


def run_fanout_subcommand(args: argparse.Namespace) -> int:
    scale = from_env()
    try:
        figures = fanout.run(scale, Path(args.logs), setup_django)
    except st.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    fanout.write(figures, Path(args.out))
    return 0


def scale_phase(run_figures: list[Figure], scale: Scale, logs: Path) -> None:
    from bench import at_scale

    run_figures.extend(at_scale.run(scale, logs, setup_django))


PHASES = ("sweep", "portal", "scale", "fanout")


def chosen_phases(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The phases BENCH_PHASES names (all of them by default), in their usual order."""
    raw = (environ if environ is not None else os.environ).get("BENCH_PHASES", "")
    wanted = {part.strip() for part in raw.split(",") if part.strip()} or set(PHASES)
    unknown = wanted - set(PHASES)
    if unknown:
        raise SystemExit(f"BENCH_PHASES: unknown {', '.join(sorted(unknown))}; use {PHASES}")
    return tuple(phase for phase in PHASES if phase in wanted)


def run_phase_subcommand(args: argparse.Namespace) -> int:
    """One run of one phase, in a process of its own: each run sets Django up afresh against
    its own database (Django can be set up once per process)."""
    scale = from_env()
    logs = Path(args.logs)
    figures: list[Figure] = []
    notes: list[str] = []
    try:
        if args.phase == "sweep":
            sweep_scaling(figures, scale, logs)
        elif args.phase == "portal":
            notes += run_portal_phases(figures, scale, logs)
        elif args.phase == "scale":
            scale_phase(figures, scale, logs)
        else:
            fanout_phase(figures, scale, logs)
    except st.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    Path(args.out).write_text(
        json.dumps({"figures": [f.as_dict() for f in figures], "notes": notes})
    )
    return 0


def run_phase(phase: str, scale: Scale, logs: Path, repeat: int) -> tuple[list[Figure], list[str]]:
    out = logs / f"{phase}-{repeat}.json"
    timeout = 3600 + scale.fanout_timeout + 3 * scale.ready_timeout
    result = subprocess.run(
        [st.PYTHON, "-m", "bench", "phase", phase, "--logs", str(logs), "--out", str(out)],
        cwd=st.ROOT,
        check=False,
        timeout=timeout,
    )
    if result.returncode:
        raise st.BenchError(f"phase {phase} failed in run {repeat} (its messages are above)")
    document = json.loads(out.read_text())
    return [Figure(**item) for item in document["figures"]], document["notes"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    sweep_parser = sub.add_parser("sweep", help="internal: the sweep measurement alone")
    sweep_parser.add_argument("--rows", required=True)
    sweep_parser.add_argument("--due", type=int, default=10)
    sweep_parser.add_argument("--repeats", type=int, default=3)
    sweep_parser.add_argument("--out", required=True)
    fanout_parser = sub.add_parser("fanout", help="internal: the provisioning fan-out alone")
    fanout_parser.add_argument("--logs", required=True)
    fanout_parser.add_argument("--out", required=True)
    phase_parser = sub.add_parser("phase", help="internal: one run of one phase")
    phase_parser.add_argument("phase", choices=PHASES)
    phase_parser.add_argument("--logs", required=True)
    phase_parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return run_sweep_subcommand(args)
    if args.command == "fanout":
        return run_fanout_subcommand(args)
    if args.command == "phase":
        return run_phase_subcommand(args)

    scale = from_env()
    phases = chosen_phases()
    repeats = max(scale.repeats, 1)
    stamp = st.run_stamp(scale.name, list(phases), repeats)
    log(f"scale {scale.name}; phases {', '.join(phases)}; {repeats} runs of each; {stamp}")
    started = time.monotonic()
    runs: list[list[Figure]] = [[] for _ in range(repeats)]
    notes: list[str] = []
    if slow_wake := floor.wake_up_note(stamp["wake_up_round_trip_us"]):
        log(f"note: {slow_wake}")
        notes.append(slow_wake)
    try:
        with st.scratch_dir("portal-bench-") as logs:
            # Phase by phase, each repeated before the next: a phase's runs see the machine in
            # about the same state, and a slow phase shows as spread, not as a shifted median.
            for phase in phases:
                for repeat in range(repeats):
                    log(f"phase {phase}, run {repeat + 1} of {repeats}")
                    figures, phase_notes = run_phase(phase, scale, logs, repeat)
                    runs[repeat] += figures
                    notes += [f"{phase} run {repeat + 1}: {note}" for note in phase_notes]
    except st.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    stamp["seconds"] = round(time.monotonic() - started)
    stamp["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    latest, kept = fig.report(
        runs,
        stamp,
        f"Demo portal benchmark ({scale.name} scale, median of {repeats} runs)",
        "bench",
        complete=phases == PHASES,
    )
    for note in notes:
        print(f"note: {note}")
    wrote = f"{latest.name} and " if latest != kept else "(only some ran) "
    log(f"done in {time.monotonic() - started:.0f} s; wrote {wrote}runs/{kept.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
