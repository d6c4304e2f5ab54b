"""Pages at scale: the portal's pages on a year of history of a large sales team.

A stack of its own (its own database, built by `bench.dataset`; gunicorn, workers and cron as in
the other phases) with the query-counting middleware on (`bench/query_count.py`). Every page is
loaded by the same number of concurrent clients, each signed in as a different person where the
page is a person's own, in short rounds that take turns so that a burst of other work on the
machine falls on all pages alike. The floor (the trivial views, a no-op job) is measured in the
same rounds.

Runs in a process of its own (`python -m bench phase scale`), since its Django points at its own
database.
"""

from __future__ import annotations

import html
import re
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from bench import stack as st
from bench.client import (
    HTMX,
    Browser,
    LoadResult,
    Response,
    closed_loop,
    next_poll,
    paced_loop,
    without_version,
)
from bench.figures import Figure, ms
from bench.scale import Scale
from demos.durations import percentile

SCALE_DB = st.db_name("bench_scale")
PREFIX = "at scale"
ROUNDS = 3
OK = (HTTPStatus.OK, HTTPStatus.NO_CONTENT)

# Pages as they appear in figure names.
CATALOG = "catalog"
MY_DEMOS = "my demos (salesperson)"
MY_DEMOS_MANAGER = "my demos (manager)"
DEMO_PAGE = "demo page"
POLL_204 = "status poll (204)"
POLL_FULL = "status poll (full)"
ROW_POLL = "row poll (204)"
FLEET = "fleet overview"
FLEET_CSV = "fleet csv"
PROSPECT = "prospect page"
TRIVIAL = "trivial view (no session)"
TRIVIAL_SIGNED_IN = "trivial view (signed in)"
FLOORS = (TRIVIAL, TRIVIAL_SIGNED_IN)
PAGES = (
    CATALOG, MY_DEMOS, MY_DEMOS_MANAGER, DEMO_PAGE, POLL_204, POLL_FULL, ROW_POLL, FLEET,
    FLEET_CSV, PROSPECT,
)  # fmt: skip

# Queries per request each page may make, whatever the size of the history or of a person's
# list: the typical answer's count in a small run on the data set with the indexes, pagination
# and caches of issue 17 (the pages' own tests pin their counts at 1 and at 50 demos).
QUERY_TARGETS: dict[str, int] = {
    CATALOG: 5,
    # The demos shared with them and a page of prints of each section (demos.sales.row_cache).
    # The data set's portal is full and most salespeople's lists show queued demos: saying when
    # each starts reads the capacity and the running demos' ends apart (one query more,
    # CapacityPicture._running_ends).
    MY_DEMOS: 6,
    MY_DEMOS_MANAGER: 5,
    DEMO_PAGE: 5,
    POLL_204: 1,
    POLL_FULL: 3,
    ROW_POLL: 1,
    FLEET: 3,  # the figures are shared for seconds: one answer in many reads them (9)
    FLEET_CSV: 1,
    PROSPECT: 4,
}


@dataclass
class View:
    """One page as the clients load it: a path per client, and whose browser asks."""

    name: str
    paths: list[str]
    browsers: list[Browser]
    headers: dict[str, str] | None = None
    streamed: bool = False


@dataclass
class Measured:
    """One page's measurements: `paced` for latency, `result` (closed loop) for throughput and
    CPU, the query counts of every answer of both."""

    result: LoadResult = field(default_factory=LoadResult)
    paced: LoadResult = field(default_factory=LoadResult)
    web_cpu: float = 0.0
    queries: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, response: Response) -> None:
        count = response.headers.get("x-bench-queries")
        if count is not None:
            with self.lock:
                self.queries.append(int(count))

    def add(self, result: LoadResult, web_cpu: float) -> None:
        merge(self.result, result)
        self.web_cpu += web_cpu


def merge(total: LoadResult, result: LoadResult) -> None:
    total.requests += result.requests
    total.errors += result.errors
    total.seconds += result.seconds
    total.latencies += result.latencies
    for status, count in result.statuses.items():
        total.statuses[status] = total.statuses.get(status, 0) + count


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def row_poll_url(my_demos_page: bytes, public_id: str) -> str:
    """The URL the row of `public_id` in My demos polls, as the page renders it."""
    pattern = rf'hx-get="([^"]*/demos/{re.escape(public_id)}/status/\?[^"]*fragment=row[^"]*)"'
    match = re.search(pattern, my_demos_page.decode(errors="replace"))
    return html.unescape(match.group(1)) if match else ""


def current_poll(browser: Browser, first: str) -> str:
    """A poll URL with the version the portal answers 204 to: the page's own, or, when the page
    names none, the one the first poll's answer names (as htmx swaps it in)."""
    if "v=" in first:
        return first
    response = browser.get(first, HTMX)
    return next_poll(response.body, first) if response.status == 200 else first


def streamed_queries(browser: Browser, path: str) -> int | None:
    """Queries of one streamed response, which the middleware leaves in the cache under the id
    this request carries (its headers were sent before most of them ran)."""
    from django.core.cache import cache

    from bench.query_count import REQUEST_HEADER, cache_key

    request_id = secrets.token_hex(8)
    response = browser.get(path, {REQUEST_HEADER: request_id})
    if response.status != 200:
        return None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        count = cache.get(cache_key(request_id))
        if count is not None:
            return int(count)
        time.sleep(0.05)
    return None


def measure(
    run_stack: st.Stack, views: list[View], seconds: float, pace: float
) -> dict[str, Measured]:
    """The rendered pages, each for `seconds` paced (one request per client every `pace`
    seconds: latency) and `seconds` in a closed loop (capacity), in short rounds taking
    turns."""
    for view in views:  # warm-up, not measured: first requests import and compile lazily
        closed_loop(view.browsers, view.paths.__getitem__, 0.5, view.headers, ok=OK)
    totals = {view.name: Measured() for view in views}
    for round_ in range(ROUNDS):
        turn = round_ % len(views)
        for view in views[turn:] + views[:turn]:
            log(f"  {view.name}, round {round_ + 1} of {ROUNDS}")
            measured = totals[view.name]
            paced = paced_loop(
                view.browsers,
                view.paths.__getitem__,
                seconds / ROUNDS,
                pace,
                view.headers,
                ok=OK,
                observe=measured.observe,
            )
            merge(measured.paced, paced)
            web_cpu = run_stack.cpu_seconds("web")
            result = closed_loop(
                view.browsers,
                view.paths.__getitem__,
                seconds / ROUNDS,
                view.headers,
                ok=OK,
                observe=measured.observe,
            )
            measured.add(result, run_stack.cpu_seconds("web") - web_cpu)
    return totals


def full_download(port: int, session: str) -> list[Figure]:
    """The whole fleet CSV downloaded once, alone, to its last byte: how long a year of history
    takes to export, and at what pace it streams."""
    browser = Browser(port, session, timeout=900)
    try:
        response = browser.get("/fleet/export/demos.csv")
    finally:
        browser.close()
    if response.status != HTTPStatus.OK:
        raise st.BenchError(f"the full CSV download answered {response.status}")
    rows = response.body.count(b"\n") - 1
    log(f"  full CSV: {rows} rows, {len(response.body) / 1e6:.1f} MB in {response.seconds:.1f} s")
    return [
        Figure.of(f"{PREFIX}: {FLEET_CSV}: full download", response.seconds, "s"),
        Figure.of(f"{PREFIX}: {FLEET_CSV}: rows per second", rows / response.seconds, "rows/s"),
    ]


def page_figures(name: str, measured: Measured, floor: Measured | None) -> list[Figure]:
    result = measured.result
    # Latency of paced clients; a download (measured all at once) has only its own.
    lat = measured.paced.latencies or result.latencies
    cpu = ms(measured.web_cpu / max(result.requests, 1))
    floor_lat = (floor.paced.latencies or floor.result.latencies) if floor else []
    floor_cpu = ms(floor.web_cpu / max(floor.result.requests, 1)) if floor else None
    figures = [
        Figure.of(
            f"{PREFIX}: {name}: p95",
            ms(percentile(lat, 95)) if lat else None,
            "ms",
            "<= 50",
            floor=ms(percentile(floor_lat, 95)) if floor_lat else None,
        ),
        Figure.of(
            f"{PREFIX}: {name}: p50",
            ms(percentile(lat, 50)) if lat else None,
            "ms",
            floor=ms(percentile(floor_lat, 50)) if floor_lat else None,
        ),
        Figure.of(f"{PREFIX}: {name}: web CPU per request", cpu, "ms", floor=floor_cpu),
        Figure.of(f"{PREFIX}: {name}: throughput", result.per_second, "req/s"),
        Figure.of(
            f"{PREFIX}: {name}: errors",
            result.errors + measured.paced.errors,
            "requests",
            "== 0",
        ),
    ]
    if measured.queries:
        # The typical answer's count carries the target: a cache refilled now and then (the
        # session, the time-to-ready figures) adds queries to one answer, not to every one.
        target = QUERY_TARGETS.get(name)
        figures += [
            Figure.of(
                f"{PREFIX}: {name}: queries per request",
                statistics.median_low(measured.queries),
                "queries",
                f"<= {target}" if target is not None else None,
                floor=0,
            ),
            Figure.of(
                f"{PREFIX}: {name}: queries per request, most", max(measured.queries), "queries"
            ),
        ]
    return figures


def build_views(port: int, data: Any, sessions: dict[int, str], clients: int) -> list[View]:
    """Every page with the path each client asks for. Salespeople's pages go to the measured
    salespeople (each client a different one), managers' pages to the managers in turn."""
    sellers = [data.typical[i % len(data.typical)] for i in range(clients)]
    bosses = [data.managers[i % len(data.managers)] for i in range(clients)]

    def browsers(people: list[int]) -> list[Browser]:
        return [Browser(port, sessions[pk]) for pk in people]

    seller_browsers = browsers(sellers)
    manager_browsers = browsers(bosses)
    # An export is timed to its first rows, as a person waits for a download to start; the
    # whole history is downloaded once, alone (`full_download`).
    downloaders = [Browser(port, sessions[pk], first_rows_only=True) for pk in bosses]
    anonymous = [Browser(port) for _ in range(clients)]
    prospects = [Browser(port) for _ in range(clients)]

    # The polls start where a browser would: the demo page and My demos name their URLs.
    status_polls, row_polls = [], []
    for pk, browser in zip(sellers, seller_browsers, strict=True):
        public_id = data.starting_demo[pk]
        page = browser.get(f"/demos/{public_id}/")
        if page.status != 200:
            raise st.BenchError(f"the starting demo's page answered {page.status}")
        first = next_poll(page.body, "")
        if not first:
            raise st.BenchError("a starting demo's page does not poll its status")
        status_polls.append(current_poll(browser, first))
        listing = browser.get("/demos/")
        row = row_poll_url(listing.body, public_id)
        if not row:
            raise st.BenchError("My demos does not poll the row of a starting demo")
        row_polls.append(current_poll(browser, row))
    tokens = [data.prospect_tokens[i % len(data.prospect_tokens)] for i in range(clients)]
    return [
        View(CATALOG, ["/"] * clients, seller_browsers),
        View(MY_DEMOS, ["/demos/"] * clients, seller_browsers),
        View(MY_DEMOS_MANAGER, ["/demos/"] * clients, manager_browsers),
        View(DEMO_PAGE, [f"/demos/{data.ready_demo[pk]}/" for pk in sellers], seller_browsers),
        View(POLL_204, status_polls, seller_browsers, HTMX),
        View(POLL_FULL, [without_version(p) for p in status_polls], seller_browsers, HTMX),
        View(ROW_POLL, row_polls, seller_browsers, HTMX),
        View(FLEET, ["/fleet/"] * clients, manager_browsers),
        View(FLEET_CSV, ["/fleet/export/demos.csv"] * clients, downloaders, streamed=True),
        View(PROSPECT, [f"/p/{token}/" for token in tokens], prospects),
        View(TRIVIAL, ["/bench/trivial/"] * clients, anonymous),
        View(TRIVIAL_SIGNED_IN, ["/bench/trivial-signed-in/"] * clients, seller_browsers),
    ]


def run(scale: Scale, logs: Path, setup_django: Callable[[dict[str, str]], None]) -> list[Figure]:
    """Build the data set, start the portal on it, measure every page; the figures."""
    port = st.free_port()
    st.recreate_database(SCALE_DB)
    st.flush_redis(st.REDIS_URL)
    env = st.portal_env(
        SCALE_DB,
        st.REDIS_URL,
        port,
        BENCH_STATIC_ROOT=str(logs / "static-scale"),
        BENCH_COUNT_QUERIES="1",
    )
    stack = st.Stack(env, logs)
    figures: list[Figure] = []
    try:
        log("pages at scale: migrating its database and collecting static files")
        stack.manage("migrate", "--noinput")
        stack.manage("collectstatic", "--noinput", "--verbosity", "0")
        setup_django(env)
        from bench import dataset, floor, portal_data

        size = dataset.Size(
            historical=scale.scale_demos,
            live=scale.scale_live,
            salespeople=scale.scale_salespeople,
            managers=scale.scale_managers,
            templates=scale.scale_templates,
            measured=scale.scale_clients,
        )
        log(
            f"building the data set: {size.historical:,} historical demos, {size.live:,} live, "
            f"{size.salespeople} salespeople"
        )
        data = dataset.build(size)
        log(f"built in {data.seconds:.1f} s: {data.counts}")
        figures.append(Figure.of(f"{PREFIX}: data set build", data.seconds, "s"))
        for what, count in data.counts.items():
            figures.append(Figure.of(f"{PREFIX}: data set: {what}", count, "rows"))
        figures.append(
            Figure.of(
                f"{PREFIX}: data set: demos of each measured salesperson (median)",
                sorted(data.historical_per_typical)[len(data.historical_per_typical) // 2],
                "demos",
            )
        )
        # A full portal, as on a busy afternoon: the queued demos stay queued, and nobody is
        # refused for having too many.
        stack.env["DEMO_MAX_ACTIVE_TOTAL"] = str(max(dataset.active_count(), 1))
        stack.env["DEMO_MAX_ACTIVE_PER_USER"] = str(max(dataset.busiest_owner_active() + 5, 3))

        from django.contrib.auth.models import User

        people = User.objects.in_bulk([*data.typical, *data.managers])
        sessions = {pk: portal_data.session_for(user) for pk, user in people.items()}
        log(
            f"starting gunicorn ({scale.web_workers}x{scale.web_threads} gthread), "
            f"{scale.rq_workers} workers, one cron"
        )
        stack.start_portal(port, scale.web_workers, scale.web_threads, scale.rq_workers)
        views = build_views(port, data, sessions, scale.scale_clients)
        log(
            f"{len(views)} views, {scale.scale_clients} clients each, "
            f"{scale.scale_seconds:g} s per view paced (a request per client every "
            f"{scale.scale_pace:g} s) and as many in a closed loop, in {ROUNDS} rounds"
        )
        totals = measure(stack, views, scale.scale_seconds, scale.scale_pace)
        stack.check_alive()
        download = full_download(port, sessions[data.managers[0]])
        job_floor = floor.job_round_trips(scale.scale_job_round_trips)
        for view in views:
            if view.streamed:  # one more download, whole and alone, to read its count
                counter = Browser(port, sessions[data.managers[0]], timeout=900)
                count = streamed_queries(counter, view.paths[0])
                counter.close()
                totals[view.name].queries += [count] if count is not None else []
        for view in views:
            for browser in view.browsers:
                browser.close()
        figures += results(totals, job_floor)
        figures += download
    finally:
        stack.stop()
        st.close_django_connections()
        st.drop_database(SCALE_DB)
        st.flush_redis(st.REDIS_URL)
    return figures


def results(totals: dict[str, Measured], job_floor: Any) -> list[Figure]:
    floor = totals[TRIVIAL]
    figures: list[Figure] = []
    for name, measured in totals.items():
        if name in FLOORS:
            continue
        figures += page_figures(name, measured, floor)
        if name in (POLL_204, ROW_POLL):
            statuses = measured.result.statuses
            share = statuses.get(HTTPStatus.NO_CONTENT, 0) / max(measured.result.requests, 1)
            figures.append(Figure.of(f"{PREFIX}: {name}: answered 204", 100 * share, "%"))
    rate = {name: m.result.per_second for name, m in totals.items()}
    figures.append(
        Figure.of(
            "status poll / trivial view (no session)",
            rate[POLL_204] / rate[TRIVIAL] if rate[TRIVIAL] else None,
            "ratio",
            ">= 0.5",
            floor=1.0,
        )
    )
    figures.append(
        Figure.of(
            "status poll / trivial view (signed in)",
            rate[POLL_204] / rate[TRIVIAL_SIGNED_IN] if rate[TRIVIAL_SIGNED_IN] else None,
            "ratio",
            floor=1.0,
        )
    )
    for name in FLOORS:
        result = totals[name].result
        lat = totals[name].paced.latencies
        figures += [
            Figure.of(
                f"{PREFIX}: floor: {name}: p95", ms(percentile(lat, 95)) if lat else None, "ms"
            ),
            Figure.of(
                f"{PREFIX}: floor: {name}: p50", ms(percentile(lat, 50)) if lat else None, "ms"
            ),
            Figure.of(
                f"{PREFIX}: floor: {name}: web CPU per request",
                ms(totals[name].web_cpu / max(result.requests, 1)),
                "ms",
            ),
            Figure.of(f"{PREFIX}: floor: {name}: throughput", result.per_second, "req/s"),
        ]
    figures += [
        Figure.of(f"{PREFIX}: floor: no-op job round trip, median", ms(job_floor.median), "ms"),
        Figure.of(f"{PREFIX}: floor: no-op job round trip, p95", ms(job_floor.p95), "ms"),
    ]
    return figures
