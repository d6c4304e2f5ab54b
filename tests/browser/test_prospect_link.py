"""A salesperson shares a demo; a prospect with no account opens it; revoking shuts the door."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from demos.models import DemoTemplate
from tests.browser.conftest import SCREENSHOTS, log_in, screenshot
from tests.conftest import make_demo

pytestmark = [pytest.mark.browser]


def test_a_prospect_opens_a_shared_demo_until_the_link_is_revoked(
    page: Page,
    browser: Browser,
    site_url: str,
    sales_user: User,
    template: DemoTemplate,
    csp_violations: list[str],
) -> None:
    demo = make_demo(template, sales_user, prospect_company="Acme")
    # The live app on its own host, behind the gate (Chromium resolves *.localhost to loopback).
    assert demo.live_url.startswith(f"http://{demo.cluster_name}.demos.localhost:")

    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/demos/{demo.public_id}/")
    panel = page.locator("#share-panel")
    panel.get_by_text("New link").click()
    panel.get_by_label("For").fill("Pat Prospect <pat@acme.example>")
    panel.get_by_label("Note").fill("Enjoy the tour!")
    panel.get_by_role("button", name="Create link").click()
    link_field = panel.get_by_label("New link")
    expect(link_field).to_have_value(re.compile(r"/p/[\w-]{43}/$"))
    url = link_field.input_value()
    screenshot(page, "share-link-created")

    prospect = browser.new_context(viewport={"width": 390, "height": 844})
    visitor = prospect.new_page()
    visitor.goto(url)
    expect(visitor.get_by_role("heading", name="Your demo is ready")).to_be_visible()
    expect(visitor.get_by_text("Enjoy the tour!")).to_be_visible()
    expect(visitor.locator("time[data-countdown]")).to_contain_text("h")
    expect(visitor.get_by_role("link", name="Log in")).to_have_count(0)
    visitor.screenshot(path=SCREENSHOTS / "prospect-landing-phone.png", full_page=True)
    with visitor.expect_popup() as popup:
        visitor.get_by_role("link", name="Open demo").click()
    app = popup.value
    expect(app.get_by_text("Welcome, Acme!")).to_be_visible()
    assert app.url == demo.live_url  # the ticket was traded for the cookie and left the address
    access = [c for c in prospect.cookies(demo.live_url) if c["name"] == "__Host-demo-access"]
    assert len(access) == 1
    assert access[0]["httpOnly"]
    assert access[0]["secure"]
    assert access[0]["domain"] == f"{demo.cluster_name}.demos.localhost"  # host-only
    # The address alone, in a browser that never had the link, shows nothing of the demo.
    stranger = browser.new_context()
    elsewhere = stranger.new_page()
    elsewhere.goto(demo.live_url)
    expect(elsewhere.get_by_role("heading", name="This demo is private")).to_be_visible()
    expect(elsewhere.get_by_text("Acme")).to_have_count(0)
    stranger.close()

    page.reload()
    page.locator("#share-panel").get_by_role("button", name="Revoke").click()
    page.locator("#confirm-dialog [data-confirm-accept]").click()
    expect(page.locator("#share-panel")).to_contain_text("no longer works")

    # The open app stops at its next request; the link's page says it was turned off, and
    # nothing more about the demo or the prospect.
    app.reload()
    expect(app.get_by_role("heading", name="This demo is private")).to_be_visible()
    expect(app.get_by_text("Welcome, Acme!")).to_have_count(0)
    visitor.goto(url)
    expect(visitor.get_by_role("heading", name="This demo was turned off")).to_be_visible()
    expect(visitor.get_by_text("Acme")).to_have_count(0)
    prospect.close()
    assert csp_violations == []
