"""What a salesperson's browser sends: the login form, the start form, the action buttons.

Shared by the benchmark and the drills, so both start demos through the same view a person uses.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.client import Browser
from bench.stack import BenchError

DEMO_PAGE = re.compile(r"^/demos/([0-9a-f-]{36})/$")


class SalesError(BenchError):
    """The portal answered a salesperson's request with something other than what a working
    portal answers."""


def start_form(token: str) -> dict[str, str]:
    return {
        "prospect_company": "Acme Corp",
        "prospect_name": "Ada",
        "lifetime": str(2 * 3600),
        "start_token": token,
    }


def new_token() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Answer:
    """How the portal answered one request: its status (0 when the connection failed), where it
    redirected, and how long it took."""

    status: int
    location: str
    seconds: float
    detail: str = ""

    @property
    def demo_page(self) -> str:
        """The demo page a successful start redirects to, or ''."""
        return self.location if self.status == 302 and DEMO_PAGE.match(self.location) else ""


def try_start(browser: Browser, slug: str, token: str) -> Answer:
    """POST the start form; never raises: a refused connection is an answer too (status 0)."""
    started = time.perf_counter()
    try:
        response = browser.post_form(f"/templates/{slug}/start/", start_form(token))
    except OSError as exc:
        browser.close()
        return Answer(0, "", time.perf_counter() - started, str(exc))
    location = response.headers.get("location", "")
    detail = "" if response.status == 302 else response.body[:300].decode(errors="replace")
    return Answer(response.status, location, response.seconds, detail)


def post_start(browser: Browser, slug: str, token: str) -> str:
    """POST the start form; the demo's page path from the redirect."""
    answer = try_start(browser, slug, token)
    if not answer.demo_page:
        raise SalesError(
            f"start of {slug} answered {answer.status} {answer.location!r}: {answer.detail}"
        )
    return answer.demo_page


def public_id_of(page: str) -> str:
    match = DEMO_PAGE.match(page)
    if match is None:
        raise SalesError(f"{page!r} is not a demo page")
    return match.group(1)


def act(browser: Browser, public_id: str, action: str) -> Answer:
    """Press an action button (pause, resume, archive, delete...) without JavaScript: a POST
    that redirects back to the demo's page."""
    started = time.perf_counter()
    try:
        response = browser.post_form(f"/demos/{public_id}/actions/{action}/", {})
    except OSError as exc:
        browser.close()
        return Answer(0, "", time.perf_counter() - started, str(exc))
    detail = "" if response.status == 302 else response.body[:300].decode(errors="replace")
    return Answer(response.status, response.headers.get("location", ""), response.seconds, detail)


def log_in(browser: Browser, username: str, password: str) -> None:
    """Sign in through the login form, as a person does; the browser keeps the session."""
    response = browser.post_form("/login/", {"username": username, "password": password})
    if response.status != 302 or "sessionid" not in browser.cookies:
        raise SalesError(f"logging in as {username} answered {response.status}")


def start_all_at_once(
    port: int, sessions: Sequence[str], slug: str, tokens: Sequence[str], timeout: float
) -> list[Answer]:
    """One POST per token, all released together, from `sessions` in turn (one connection
    each, as many browsers would); every answer, in the order of `tokens`."""
    answers: list[Answer | None] = [None] * len(tokens)
    gate = threading.Barrier(len(tokens) + 1)

    def send(index: int) -> None:
        browser = Browser(port, sessions[index % len(sessions)])
        try:
            gate.wait()
            answers[index] = try_start(browser, slug, tokens[index])
        finally:
            browser.close()

    threads = [
        threading.Thread(target=send, args=(index,), daemon=True) for index in range(len(tokens))
    ]
    for thread in threads:
        thread.start()
    gate.wait()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [answer or Answer(0, "", timeout, "no answer in time") for answer in answers]
