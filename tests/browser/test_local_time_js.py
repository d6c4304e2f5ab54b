"""Times in the reader's zone: a browser in New York sees New York time, and sets links in it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, expect

from demos.durations import format_duration
from demos.engine.lifecycle import Actor
from demos.models import Demo, DemoTemplate, ShareLink, Status
from demos.sales import account
from demos.sharing import links
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_demo

pytestmark = [pytest.mark.browser]

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def new_york(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(timezone_id="America/New_York", locale="en-GB")
    yield context
    context.close()


def written(moment: datetime, zone: ZoneInfo, *, day: bool = True) -> str:
    """How the page writes `moment` in `zone`: "3 Dec, 12:44 EST" (or "12:44 EST")."""
    local = moment.astimezone(zone)
    clock = f"{local:%H:%M} {local.tzname()}"
    return f"{local.day} {local:%b}, {clock}" if day else clock


def open_demo(context: BrowserContext, site_url: str, demo: Demo) -> Page:
    page = context.new_page()
    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/demos/{demo.public_id}/")
    return page


def test_the_demo_page_shows_times_in_the_browsers_zone(
    new_york: BrowserContext,
    site_url: str,
    sales_user: User,
    template: DemoTemplate,
    csp_violations: list[str],
) -> None:
    demo = make_demo(template, sales_user)
    page = open_demo(new_york, site_url, demo)
    requested = page.locator("time[data-local]").first
    expect(requested).to_have_text(written(demo.requested_at, NEW_YORK))
    expect(requested).to_have_text(re.compile(r" E[SD]T$"))
    ends = page.locator(".expiry time[data-local='time']")
    expect(ends).to_have_text(written(demo.expires_at, NEW_YORK, day=False))
    # The timeline, swapped in by htmx polls as the demo moves on, is local too.
    expect(page.locator(".timeline time[data-local]").first).to_have_text(re.compile(r" E[SD]T$"))
    expect(page.get_by_text("UTC", exact=False)).to_have_count(0)
    screenshot(page, "local-time-demo")
    assert not csp_violations


def test_a_chosen_zone_wins_over_the_browsers(
    new_york: BrowserContext, site_url: str, sales_user: User, template: DemoTemplate
) -> None:
    demo = make_demo(template, sales_user)
    page = new_york.new_page()
    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/account/")
    expect(page.get_by_text("Your browser's zone: America/New York.")).to_be_visible()
    zone = page.get_by_role("region", name="Time zone")  # the page's own section of its form
    zone.get_by_role("combobox").select_option("Europe/Berlin")
    zone.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Times now show in Europe/Berlin time.")).to_be_visible()
    screenshot(page, "account-settings")
    page.goto(f"{site_url}/demos/{demo.public_id}/")
    berlin = ZoneInfo("Europe/Berlin")
    expect(page.locator("time[data-local]").first).to_have_text(written(demo.requested_at, berlin))


def test_a_link_set_in_local_time_ends_at_that_moment(
    new_york: BrowserContext, site_url: str, sales_user: User, template: DemoTemplate
) -> None:
    demo = make_demo(template, sales_user)
    page = open_demo(new_york, site_url, demo)
    panel = page.locator("#share-panel")
    panel.get_by_text("New link").click()
    panel.get_by_label("For").fill("Pat Prospect")
    panel.get_by_label("At a set time").check()
    time_field = panel.get_by_label(re.compile(r"^Time \(America/New York\)"))
    moment = (timezone.now() + timedelta(minutes=30)).replace(second=0, microsecond=0)
    time_field.fill(moment.astimezone(NEW_YORK).strftime("%Y-%m-%dT%H:%M"))
    panel.get_by_role("button", name="Create link").click()
    expect(panel.get_by_text("Pat Prospect").first).to_be_visible()
    expect(panel.locator(".share-links time[data-local]").first).to_have_text(
        written(moment, NEW_YORK)
    )
    link = ShareLink.objects.get(demo=demo)
    assert link.expires_at == moment.astimezone(UTC)


def test_too_late_a_link_says_when_the_demo_ends_in_local_time(
    new_york: BrowserContext, site_url: str, sales_user: User, template: DemoTemplate
) -> None:
    demo = make_demo(template, sales_user)
    page = open_demo(new_york, site_url, demo)
    panel = page.locator("#share-panel")
    panel.get_by_text("New link").click()
    panel.get_by_label("For").fill("Pat Prospect")
    panel.get_by_label("At a set time").check()
    late = demo.expires_at + timedelta(hours=2)
    panel.get_by_label(re.compile(r"^Time \(")).fill(
        late.astimezone(NEW_YORK).strftime("%Y-%m-%dT%H:%M")
    )
    panel.get_by_role("button", name="Create link").click()
    expect(panel.get_by_role("alert")).to_contain_text(
        f"the demo ends at {written(demo.expires_at, NEW_YORK)}"
    )
    assert not ShareLink.objects.filter(demo=demo).exists()


def test_a_prospect_sees_the_end_in_their_browsers_zone(
    browser: Browser, site_url: str, sales_user: User, template: DemoTemplate
) -> None:
    demo = make_demo(template, sales_user)
    account.set_time_zone(user=sales_user, time_zone="Europe/Berlin")  # the owner's, not theirs
    new = links.create_share_link(demo=demo, actor=Actor.of(sales_user), recipient="Pat")
    india = browser.new_context(timezone_id="Asia/Kolkata", locale="en-GB")
    visitor = india.new_page()
    visitor.goto(new.url)
    until = visitor.locator(".expiry time[data-local='time']")
    expect(until).to_have_text(written(demo.expires_at, ZoneInfo("Asia/Kolkata"), day=False))
    india.close()


def test_requested_just_now_counts_on_in_the_browser(
    page: Page, site_url: str, sales_user: User, template: DemoTemplate
) -> None:
    """ "Requested just now" on My demos becomes "2 min ago" without a reload, worded as the
    server words it (the browser's clock is driven by the test, not waited for)."""
    make_demo(template, sales_user, Status.INSTALLING, prospect_company="Acme")
    page.clock.install()
    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/demos/")
    requested = page.locator("[data-ago]").first
    expect(requested).to_have_text("just now")
    # From here the browser counts on by itself: the row's polls (which would bring the
    # server's own, unmoved, clock) go nowhere.
    page.route("**/*", lambda route: route.abort())
    page.clock.run_for(50_000)
    expect(requested).to_have_text("just now")
    page.clock.run_for(71_000)
    # "2 min 1 s ago" and on: the page's clock runs on from there at its own pace.
    expect(requested).to_have_text(re.compile(rf"^{format_duration(timedelta(minutes=2))}.* ago$"))
