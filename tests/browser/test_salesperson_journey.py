"""A salesperson's whole day with one demo, in a real browser, with a real worker behind it."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from demos.models import Demo, DemoTemplate, Status
from tests.browser.conftest import DESKTOP, log_in, screenshot, start_worker, stop_worker
from tests.conftest import make_demo, make_template, wait_for_status

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def _heading(page: Page, name: str) -> Any:
    return page.locator("#status-panel").get_by_role("heading", name=name)


def _watch_steps_until_ready(page: Page, timeout: float = 30) -> list[int]:
    """How many steps were done at each look, until the panel says the demo is ready."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = page.locator("#status-panel .step--done").count()
        if not seen or seen[-1] != done:
            seen.append(done)
        if _heading(page, "Your demo is ready").count():
            return seen
        page.wait_for_timeout(150)
    raise AssertionError(f"the demo did not become ready; steps done seen: {seen}")


def _other_demos_for_the_list(template: DemoTemplate, owner: User) -> None:
    """A few more demos in other states, so My demos shows what a busy day looks like."""
    crm = make_template("crm", charts=1, name="CRM Suite", icon="☎", colour="#0e7490")
    make_demo(crm, owner, prospect_company="Globex", prospect_name="Hank Scorpio")
    make_demo(template, owner, Status.PAUSED, prospect_company="Initech")
    three_hours_ago = timezone.now() - timedelta(hours=3)
    make_demo(crm, owner, Status.DELETED, prospect_company="Umbrella", at=three_hours_ago)


def test_a_salesperson_runs_a_demo_from_start_to_end(
    page: Page,
    site_url: str,
    watchable_worker: Any,
    sales_user: User,
    template: DemoTemplate,
    csp_violations: list[str],
) -> None:
    DemoTemplate.objects.filter(pk=template.pk).update(
        name="Webshop", icon="🛒", description="An online shop with a **product catalogue**."
    )
    make_template("analytics", charts=3, name="Analytics", icon="📊", colour="#b45309")

    # The catalog is the landing page.
    log_in(page, site_url, "sales")
    expect(page).to_have_title("Catalog · Demo portal")
    expect(page.get_by_role("heading", name="Start a demo")).to_be_visible()
    screenshot(page, "catalog")

    # Start a demo for a prospect, with a shorter lifetime.
    card = page.locator("#template-webshop")
    card.get_by_text("Prospect and lifetime").click()
    card.get_by_label("Prospect company").fill("Acme")
    card.get_by_label("Prospect name").fill("Ada Lovelace")
    card.get_by_label("Runs for").select_option(label="1 h")
    card.get_by_role("button", name="Start demo").click()

    # Watch the steps advance while the worker works.
    expect(page).to_have_title("Webshop for Acme · Demo portal")
    expect(_heading(page, "Starting your demo")).to_be_visible()
    cluster_step = page.locator("#status-panel .step--done", has_text="Creating the cluster")
    expect(cluster_step).to_be_visible(timeout=10_000)
    expect(page.locator("#status-panel .step--pending").first).to_be_visible()
    screenshot(page, "demo-in-progress")
    seen = _watch_steps_until_ready(page)
    assert len(seen) >= 3, f"steps did not advance one by one: {seen}"
    assert seen == sorted(seen)
    expect(page.locator("#announcer")).to_have_text("Your demo is ready")
    demo = Demo.objects.get(prospect_company="Acme")
    assert demo.status == Status.READY

    # Ready: the link, its copy button, credentials, instructions and the countdown.
    # The demo's own host, on the live server's port: the app answers there, behind the gate.
    demo_origin = site_url.replace("//localhost", f"//{demo.cluster_name}.demos.localhost")
    expect(page.get_by_label("Demo link")).to_have_value(demo_origin + "/")
    expect(page.locator("time[data-countdown]")).to_have_text(re.compile(r"^(59|60) min"))
    expect(page.locator(".credentials")).to_contain_text("admin")
    expect(page.locator(".prose strong", has_text="admin")).to_be_visible()
    screenshot(page, "demo-ready")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site_url)
    page.locator("#status-panel").get_by_role("button", name="Copy").first.click()
    expect(page.locator("#status-panel").get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == demo.live_url

    # Open the live link: the simulated app, greeting the prospect.
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open demo").click()
    live = opened.value
    live.wait_for_load_state()
    assert live.url == demo_origin + "/"  # through a ticket, which left the address
    expect(live.get_by_text("Welcome, Acme!")).to_be_visible()
    live.close()

    # My demos, with a few more demos in other states.
    _other_demos_for_the_list(template, sales_user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My demos").click()
    expect(page).to_have_title("My demos · Demo portal")
    active = page.locator("section", has=page.get_by_role("heading", name=re.compile("^Active")))
    expect(active).to_contain_text("Webshop for Acme")
    expect(active).to_contain_text("Globex")
    screenshot(page, "my-demos")
    # A quick action answers in its own row.
    globex = active.locator("li", has_text="Globex")
    globex.get_by_role("button", name=re.compile("^Extend by 1 h")).click()
    expect(globex.locator(".inline-notice")).to_contain_text("Extended")
    expect(globex.locator("time[data-countdown]")).to_have_text(re.compile(r"^(2 h 59 min|3 h)"))
    active.get_by_role("link", name="Webshop for Acme", exact=True).click()

    # Extend: the answer comes in place, and the countdown moves an hour on.
    page.get_by_role("button", name="Extend by 1 h").click()
    expect(page.locator("#status-panel .alert--success")).to_contain_text("Extended")
    expect(page.locator("#announcer")).to_contain_text("Extended")
    expect(page.locator("time[data-countdown]")).to_have_text(re.compile(r"^1 h 5\d min"))
    demo.refresh_from_db()
    assert demo.extension_count == 1

    # Keep for later, then resume.
    page.get_by_role("button", name="Keep for later").click()
    expect(_heading(page, "Kept for later")).to_be_visible(timeout=15_000)
    expect(page.locator("#announcer")).to_have_text("Kept for later")
    page.get_by_role("button", name="Resume").click()
    expect(_heading(page, "Your demo is ready")).to_be_visible(timeout=15_000)

    # Delete, after saying yes in the confirmation dialog.
    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("cannot be undone")
    dialog.get_by_role("button", name="Delete demo").click()
    expect(_heading(page, "This demo has ended")).to_be_visible(timeout=15_000)
    wait_for_status(demo, Status.DELETED)
    timeline = page.locator("#timeline")
    for moment in ("Extended", "Pausing", "Resum", "Deleted"):
        expect(timeline).to_contain_text(moment)

    assert csp_violations == []


def test_a_failed_demo_offers_retry_and_delete(
    page: Page,
    site_url: str,
    worker_env: dict[str, str],
    sales_user: User,
    csp_violations: list[str],
) -> None:
    make_template("broken", name="Broken app", icon="⚠")
    worker = start_worker(
        worker_env, SITE_URL=site_url, DEMO_SIM_STEP_SECONDS="0", DEMO_SIM_FAIL_TEMPLATES="broken"
    )
    try:
        log_in(page, site_url, "sales")
        page.locator("#template-broken").get_by_role("button", name="Start demo").click()
        expect(_heading(page, "The demo could not start")).to_be_visible(timeout=15_000)
        panel = page.locator("#status-panel")
        # Plain words for the salesperson; the technical cause is for admins and the event log.
        expect(panel.locator(".failure-cause")).to_contain_text("broken right now")
        expect(panel.get_by_role("button", name="Retry")).to_be_visible()
        screenshot(page, "demo-failed")
        panel.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
        expect(_heading(page, "The demo could not start")).to_be_visible()
        panel.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete demo").click()
        expect(_heading(page, "This demo has ended")).to_be_visible(timeout=15_000)
    finally:
        stop_worker(worker)
    assert csp_violations == []


def test_everything_works_without_javascript(
    browser: Any, site_url: str, quick_worker: Any, sales_user: User, template: DemoTemplate
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = context.new_page()
    try:
        log_in(page, site_url, "sales")
        page.locator("#template-webshop").get_by_role("button", name="Start demo").click()
        # No polling without JavaScript: the page refreshes itself until the demo is ready.
        expect(page.get_by_role("heading", name="Your demo is ready")).to_be_visible(timeout=20_000)
        page.get_by_role("button", name="Extend by 1 h").click()
        expect(page.locator("#messages")).to_contain_text("Extended")
        page.get_by_role("button", name="Delete").click()
        expect(page).to_have_title("Delete demo · Demo portal")
        screenshot(page, "confirm-without-javascript")
        page.get_by_role("button", name="Delete demo").click()
        expect(page.locator("#messages")).to_contain_text("Deleting")
        demo = Demo.objects.get()
        wait_for_status(demo, Status.DELETED)
    finally:
        context.close()


def test_running_clocks_tick_while_polls_bring_no_news(
    page: Page, site_url: str, sales_user: User, template: DemoTemplate
) -> None:
    """No worker: the demo stays on its first step, so every poll finds nothing new (204), and
    the browser alone moves "Running for" and the step's time on."""
    five_seconds_ago = timezone.now() - timedelta(seconds=5)
    demo = make_demo(
        template, sales_user, Status.PROVISIONING, prospect_company="Acme", at=five_seconds_ago
    )
    polls: list[int] = []
    page.on("response", lambda r: polls.append(r.status) if "/status/" in r.url else None)
    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/demos/{demo.public_id}/")
    running = page.locator("#status-panel .elapsed [data-elapsed]")
    step_time = page.locator("#status-panel .step--active .step-time")
    first_running, first_step = running.text_content(), step_time.text_content()
    for _ in range(2):
        with page.expect_response(lambda r: "/status/" in r.url):
            pass
    assert set(polls) == {204}, polls
    assert running.text_content() != first_running
    assert step_time.text_content() != first_step
    assert re.fullmatch(r"\d+(\.\d)? s", step_time.text_content() or "")
