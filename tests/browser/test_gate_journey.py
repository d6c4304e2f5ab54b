"""The gate in Chromium behind a real nginx (as ingress-nginx gates demo hosts): a team member
goes in from the demo's page; a stranger with the address sees only that the demo is private."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from demos.models import DemoTemplate
from tests.browser.conftest import log_in, screenshot
from tests.conftest import PASSWORD, make_demo

pytestmark = [pytest.mark.browser]


def test_a_team_member_goes_in_and_a_stranger_is_kept_out(
    page: Page,
    browser: Browser,
    site_url: str,
    nginx_port: int,
    sales_user: User,
    template: DemoTemplate,
    csp_violations: list[str],
) -> None:
    demo = make_demo(template, sales_user, prospect_company="Acme")
    assert urlsplit(demo.live_url).port == nginx_port  # the live link goes through nginx

    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/demos/{demo.public_id}/")
    with page.expect_popup() as popup:
        page.get_by_role("link", name="Open demo").click()
    app = popup.value
    expect(app.get_by_text("Welcome, Acme!")).to_be_visible()
    assert app.url == demo.live_url

    stranger = browser.new_context()
    elsewhere = stranger.new_page()
    elsewhere.goto(demo.live_url + "admin/")
    expect(elsewhere.get_by_role("heading", name="This demo is private")).to_be_visible()
    expect(elsewhere.get_by_text("Acme")).to_have_count(0)
    screenshot(elsewhere, "gate-private")
    # Signing in from there leads straight into the page that was asked for.
    elsewhere.get_by_role("link", name="Sign in").click()
    elsewhere.get_by_label("Username").fill("sales")
    elsewhere.get_by_label("Password").fill(PASSWORD)
    elsewhere.get_by_role("button", name="Log in").click()
    expect(elsewhere.get_by_text("Welcome, Acme!")).to_be_visible()
    assert urlsplit(elsewhere.url).path == "/admin/"
    stranger.close()
    assert csp_violations == []
