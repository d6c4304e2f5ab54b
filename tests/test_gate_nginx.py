"""The gate behind a real nginx, as ingress-nginx uses it: only a prospect's link or a team
member gets through to the demo's app, and revocation or the demo's end cuts an open session.

The portal runs as the live server; nginx (tests/nginx_gate.py) stands in front of the demo
hosts. Requests go to nginx's port with the demo's Host header, and each host keeps its own
cookies, as a browser keeps them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.utils import timezone

from demos.engine import lifecycle
from demos.engine.lifecycle import Actor
from demos.gate import passes, state
from demos.models import Demo, SimulatedCluster, Status
from demos.sharing import links
from tests.conftest import WorkerProcess, make_demo, wait_for, wait_for_status
from tests.nginx_gate import nginx_binary

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed"),
]


class Browser:
    """Follows redirects and keeps cookies per host, sending demo hosts to nginx."""

    def __init__(self, nginx_port: int) -> None:
        self.nginx_port = nginx_port
        self.cookies: dict[str, dict[str, str]] = defaultdict(dict)
        self.visited: list[str] = []

    def get(self, url: str) -> requests.Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        target = url
        headers = {"User-Agent": "Mozilla/5.0 (test browser)"}
        if host.endswith(".demos.localhost"):
            # What a browser's resolver does for *.localhost: loopback, here nginx's port.
            target = f"http://127.0.0.1:{parts.port}{parts.path}"
            target += f"?{parts.query}" if parts.query else ""
            headers["Host"] = parts.netloc
        jar = self.cookies[host]
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        response = requests.get(target, headers=headers, allow_redirects=False, timeout=10)
        for header in response.raw.headers.getlist("Set-Cookie"):
            parsed = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                jar[name] = morsel.value
        self.visited.append(url)
        return response

    def follow(self, url: str, hops: int = 10) -> tuple[str, requests.Response]:
        for _ in range(hops):
            response = self.get(url)
            if response.status_code not in (301, 302, 303, 307):
                return url, response
            url = urljoin(url, response.headers["Location"])
        raise AssertionError(f"too many redirects: {self.visited}")


@pytest.fixture
def demo(template: Any, alice: Any, nginx_port: int) -> Demo:
    made = make_demo(template, alice, prospect_company="Acme")
    assert urlsplit(made.live_url).port == nginx_port
    return made


def share(demo: Demo) -> links.NewLink:
    return links.create_share_link(
        demo=demo, actor=Actor.of(demo.owner), recipient="pat@acme.example"
    )


def enter_with_link(browser: Browser, demo: Demo) -> links.NewLink:
    new = share(demo)
    url, response = browser.follow(new.url + "open/")
    assert response.status_code == 200, (url, response.text[:300])
    assert urlsplit(url).hostname == f"{demo.cluster_name}.demos.localhost"
    assert "Acme" in response.text  # the simulated app shows the prospect's company
    return new


def test_a_prospect_link_opens_the_app_through_nginx(demo: Demo, nginx_port: int) -> None:
    browser = Browser(nginx_port)
    enter_with_link(browser, demo)
    host = f"{demo.cluster_name}.demos.localhost"
    assert passes.cookie_name() in browser.cookies[host]
    # Every later request of that browser goes straight through.
    assert browser.get(demo.live_url + "shop/cart").status_code == 200


def test_without_a_pass_nginx_sends_the_browser_to_the_portal(demo: Demo, nginx_port: int) -> None:
    browser = Browser(nginx_port)
    response = browser.get(demo.live_url)
    assert response.status_code == 302
    assert "/gate/signin/?rd=" in response.headers["Location"]
    _url, page = browser.follow(demo.live_url)
    assert page.status_code == 403
    assert "This demo is private" in page.text
    assert "Acme" not in page.text


def test_another_demos_cookie_is_refused(
    demo: Demo, template: Any, alice: Any, nginx_port: int
) -> None:
    other = make_demo(template, alice, prospect_company="Other Inc")
    browser = Browser(nginx_port)
    enter_with_link(browser, demo)
    mine = browser.cookies[f"{demo.cluster_name}.demos.localhost"]
    browser.cookies[f"{other.cluster_name}.demos.localhost"].update(mine)
    assert browser.get(other.live_url).status_code == 302


def blocked_within(browser: Browser, demo: Demo, seconds: float) -> float:
    """Request the app until nginx refuses; how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if browser.get(demo.live_url).status_code == 302:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"still let through after {seconds} s")


def test_revoking_the_link_cuts_the_open_session(demo: Demo, nginx_port: int) -> None:
    browser = Browser(nginx_port)
    new = enter_with_link(browser, demo)
    assert browser.get(demo.live_url).status_code == 200
    links.revoke_share_link(link=new.link, actor=Actor.of(demo.owner))
    assert blocked_within(browser, demo, 5) < 5


def test_the_end_of_the_demo_cuts_the_open_session(demo: Demo, nginx_port: int) -> None:
    browser = Browser(nginx_port)
    enter_with_link(browser, demo)
    Demo.objects.filter(pk=demo.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    demo.refresh_from_db()
    state.publish_demo(demo)  # what the expiry's transition does; here before its job runs
    assert blocked_within(browser, demo, 5) < 5


@pytest.mark.worker
def test_a_sleeping_demo_wakes_for_its_prospect_and_lets_them_in(
    demo: Demo, nginx_port: int, worker_env: dict[str, str], settings: Any
) -> None:
    worker_env.update(
        SITE_URL=settings.SITE_URL,
        SIMULATED_APP_ORIGIN=settings.SIMULATED_APP_ORIGIN,
        DEMO_GATE_CONTROLLER="ingress-nginx",
    )
    # Waking takes a step of the simulated cluster: a second, so the waking page shows first.
    SimulatedCluster.objects.filter(name=demo.cluster_name).update(step_seconds=1)
    worker = WorkerProcess(worker_env)
    worker.start()
    try:
        browser = Browser(nginx_port)
        enter_with_link(browser, demo)
        asleep = wait_for_status(lifecycle.sleep_demo(demo=demo), Status.ASLEEP, Status.FAILED)
        assert asleep.status == Status.ASLEEP, asleep.error_message
        # The worker tells the gate just after its transaction commits, so the database may show
        # the demo asleep a moment before the gate's entry does.
        wait_for(
            lambda: state._redis().get(state.demo_key(demo.cluster_name)) == state.ASLEEP.encode(),
            timeout=5,
            message="the worker never told the gate the demo sleeps",
        )
        # A demo sleeps after minutes without a request: by then no decision is held.
        time.sleep(settings.DEMO_GATE_CACHE_SECONDS)

        # The prospect's next request: nginx refuses it, the portal knows the browser, wakes the
        # demo and shows the waking page.
        waking_url, page = browser.follow(demo.live_url + "shop/")
        assert urlsplit(waking_url).path == f"/gate/waking/{demo.public_id}/"
        assert page.status_code == 200
        assert "Waking up" in page.text

        # The page polls itself; once the demo runs it goes on into the app, at the page asked.
        def in_the_app() -> bool:
            _url, response = browser.follow(waking_url)
            return response.status_code == 200 and "Welcome, Acme!" in response.text

        wait_for(in_the_app, timeout=30, message="the woken demo never let the prospect in")
        assert browser.visited[-1].endswith("/shop/")
        demo.refresh_from_db()
        assert demo.status == Status.READY
    finally:
        worker.stop()
