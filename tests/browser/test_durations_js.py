"""The browser writes durations exactly as the server does: portal.js against demos.durations.

Live clocks and countdowns are counted on in the browser from a figure the server wrote, so the
two must agree to the letter, or a figure would change its wording a second after the page loads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, Route

from demos.durations import format_duration
from tests.conftest import ROOT

pytestmark = pytest.mark.browser

ORIGIN = "http://portal.test"
SECONDS = [
    0,
    0.4,
    1,
    9.95,
    59,
    59.99,
    60,
    61,
    185,
    185.7,
    600,
    3599,
    3600,
    3601,
    3661,
    7199,
    86399,
    86400,
    90061,
    172800,
    259200,
    604800 + 5 * 3600 + 7,
    -3,
]
NOW = datetime(2025, 3, 5, 10, 0, tzinfo=UTC)
COUNTDOWNS = [1, 59, 185, 3599, 3661, 86399, 259200]


def _serve(page: Page, body: str) -> None:
    """A page with portal.js as the portal serves it, on an origin of its own (no server)."""
    script = (ROOT / "static" / "js" / "portal.js").read_text()

    def answer(route: Route) -> None:
        if route.request.url.endswith("/portal.js"):
            route.fulfill(body=script, content_type="text/javascript")
        else:
            html = (
                f'<!doctype html><html><body>{body}<script src="/portal.js"></script></body></html>'
            )
            route.fulfill(body=html, content_type="text/html")

    page.route(f"{ORIGIN}/**", answer)


def test_it_formats_every_duration_as_the_server_does(page: Page) -> None:
    _serve(page, "")
    page.goto(f"{ORIGIN}/")
    written = page.evaluate("(all) => all.map(window.portal.formatDuration)", SECONDS)
    assert dict(zip(SECONDS, written, strict=True)) == {s: format_duration(s) for s in SECONDS}


def test_a_countdown_shows_the_time_left_as_the_server_writes_it(page: Page) -> None:
    # Installed a minute early: the fake clock runs from installation, and pausing can only go
    # forward, so installing at NOW itself failed whenever a millisecond passed in between.
    page.clock.install(time=NOW - timedelta(minutes=1))
    page.clock.pause_at(NOW)
    countdowns = "".join(
        f'<p><time data-countdown datetime="{(NOW + timedelta(seconds=s)).isoformat()}"></time></p>'
        for s in COUNTDOWNS
    )
    _serve(page, countdowns)
    page.goto(f"{ORIGIN}/")
    shown = page.locator("time[data-countdown]").all_text_contents()
    assert shown == [format_duration(s) for s in COUNTDOWNS]
