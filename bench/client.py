"""A minimal browser for the benchmark: keep-alive HTTP to loopback, cookies, CSRF, htmx headers.

`requests` would refuse to send the portal's cookies back: with DEBUG off they are marked Secure,
and the benchmark talks plain HTTP to 127.0.0.1 (TLS ends at the ingress in production). So the
cookies are kept here by hand.
"""

from __future__ import annotations

import html
import http.client
import re
import secrets
import string
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HTMX = {"HX-Request": "true"}
_HX_GET = re.compile(r'hx-get="([^"]+)"')
_CSRF_ALPHABET = string.ascii_letters + string.digits
# Errors after which the request is simply sent again on a fresh connection: the server closed an
# idle keep-alive connection, or a gunicorn worker was recycled (--max-requests).
_RECONNECT = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


class Browser:
    """One salesperson's browser tab: one keep-alive connection and its cookies."""

    def __init__(
        self, port: int, session_key: str = "", timeout: float = 60, first_rows_only: bool = False
    ) -> None:
        self.port = port
        self.timeout = timeout
        # Starts a download, reads its header line and first row, then hangs up: what a person
        # waits for before a download is under way (`Response.seconds` is that time).
        self.first_rows_only = first_rows_only
        # A CSRF secret the browser would have got from any form page; Django accepts a
        # 32-character secret in the cookie and the same value in the form.
        self.csrf = "".join(secrets.choice(_CSRF_ALPHABET) for _ in range(32))
        self.cookies = {"csrftoken": self.csrf}
        if session_key:
            self.cookies["sessionid"] = session_key
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        sent = {
            "Host": f"127.0.0.1:{self.port}",
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            **(headers or {}),
        }
        started = time.perf_counter()
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=sent)
                raw = conn.getresponse()
                data = self._first_rows(raw) if self.first_rows_only else raw.read()
                break
            except _RECONNECT:
                self.close()
                if attempt == 2:
                    raise
        elapsed = time.perf_counter() - started
        response_headers = {name.lower(): value for name, value in raw.getheaders()}
        for name, value in raw.getheaders():
            if name.lower() == "set-cookie":
                cookie_name, _, rest = value.partition("=")
                self.cookies[cookie_name.strip()] = rest.split(";", 1)[0]
        if self.first_rows_only or raw.getheader("Connection", "").lower() == "close":
            self.close()  # a download cut short leaves the connection mid-response
        return Response(raw.status, response_headers, data, elapsed)

    @staticmethod
    def _first_rows(raw: http.client.HTTPResponse) -> bytes:
        """The body up to the end of its second line (a CSV's header and first row), or all of
        it when shorter."""
        data = b""
        while data.count(b"\n") < 2:
            chunk = raw.read1(65536)
            if not chunk:
                break
            data += chunk
        return data

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, data: dict[str, str]) -> Response:
        # Django rotates the CSRF secret at login; the form carries whatever the cookie holds.
        form = {"csrfmiddlewaretoken": self.cookies.get("csrftoken", self.csrf), **data}
        return self.request(
            "POST",
            path,
            body=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


def next_poll(body: bytes, current: str) -> str:
    """The URL htmx polls next: the `hx-get` of the element the last answer swapped in (the
    status panel comes first in the fragment), or the same URL when there is none."""
    match = _HX_GET.search(body.decode(errors="replace"))
    return html.unescape(match.group(1)) if match else current


def without_version(path: str) -> str:
    """A poll URL minus the panel version it carries, so the answer is always rendered."""
    parts = urllib.parse.urlsplit(path)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "v"]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def closed_loop(
    browsers: Sequence[Browser],
    path_for: Callable[[int], str],
    seconds: float,
    headers: dict[str, str] | None = None,
    ok: Sequence[int] = (200,),
    follow: bool = False,
    observe: Callable[[Response], None] | None = None,
) -> LoadResult:
    """Each browser sends its next request as soon as the last one answered, for `seconds`.

    Closed-loop load finds the throughput the server can sustain: with one request in flight per
    poller, the server (not the client's pacing) sets the rate. With `follow`, each browser
    polls the URL the last answer's `hx-get` names, as htmx does. `observe` sees every answer
    counted (from the browsers' threads, so it must be thread-safe).
    """
    return _load(browsers, path_for, seconds, None, headers, ok, follow, observe)


def paced_loop(
    browsers: Sequence[Browser],
    path_for: Callable[[int], str],
    seconds: float,
    interval: float,
    headers: dict[str, str] | None = None,
    ok: Sequence[int] = (200,),
    observe: Callable[[Response], None] | None = None,
) -> LoadResult:
    """Each browser sends one request every `interval` seconds (from a random moment within the
    first interval, so they do not all arrive together), for `seconds`.

    This is how people and polling pages load a server: the offered rate is fixed, so latency
    shows what one request waits and costs. A closed loop instead keeps every client busy, and
    its latency is the number of clients over the throughput (Little's law), whatever a single
    request costs. A browser whose answer came late sends its next request at once, without
    catching up on the ones it missed.
    """
    return _load(browsers, path_for, seconds, interval, headers, ok, False, observe)


def _load(
    browsers: Sequence[Browser],
    path_for: Callable[[int], str],
    seconds: float,
    interval: float | None,
    headers: dict[str, str] | None,
    ok: Sequence[int],
    follow: bool,
    observe: Callable[[Response], None] | None,
) -> LoadResult:
    """One thread per browser, all released together, for `seconds`: each sends its next request
    at once (`interval` None) or `interval` seconds after the last one was due."""
    result = LoadResult()
    lock = threading.Lock()
    start = threading.Barrier(len(browsers) + 1)
    window: dict[str, float] = {}
    offsets = [secrets.SystemRandom().uniform(0, interval or 0) for _ in browsers]

    def next_request_due(due: float) -> float | None:
        """When the next request goes (after sleeping until then), or None once time is up."""
        if interval is None:
            return due if time.perf_counter() < window["end"] else None
        if due >= window["end"]:
            return None
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        return max(due + interval, time.perf_counter())

    def run(index: int) -> None:
        browser = browsers[index]
        path = path_for(index)
        mine: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        start.wait()
        due: float | None = window["began"] + offsets[index]
        while (due := next_request_due(due)) is not None:
            try:
                response = browser.get(path, headers)
            except OSError:
                errors += 1
                browser.close()
                continue
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status in ok:
                mine.append(response.seconds)
                if observe is not None:
                    observe(response)
                if follow:
                    path = next_poll(response.body, path)
            else:
                errors += 1
        with lock:
            result.latencies.extend(mine)
            result.requests += len(mine)
            result.errors += errors
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count

    kind = "load" if interval is None else "paced"
    threads = [
        threading.Thread(target=run, args=(index,), name=f"{kind}-{index}", daemon=True)
        for index in range(len(browsers))
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    window.update(began=began, end=began + seconds)
    start.wait()
    for thread in threads:
        thread.join(seconds + 120)
    result.seconds = time.perf_counter() - began
    return result


def answers_health(browser: Browser) -> bool:
    """Whether the portal behind `browser` answers /healthz (False while it is starting)."""
    try:
        return browser.get("/healthz").status == 200
    except OSError:
        browser.close()
        return False
