"""The portal's front door: a salesperson logs in, lands on the catalog, and logs out."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in, screenshot

pytestmark = pytest.mark.browser


def test_a_salesperson_logs_in_and_sees_the_landing_page(
    page: Page, live_server: object, sales_user: User, csp_violations: list[str]
) -> None:
    base = str(live_server)
    page.goto(f"{base}/demos/")
    expect(page).to_have_title("Log in · Demo portal")
    expect(page.get_by_text("Please log in to see that page.")).to_be_visible()
    screenshot(page, "login")

    page.get_by_label("Username").fill("sales")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("enter a correct username and password")

    page.goto(f"{base}/")
    expect(page.get_by_text("Please log in to see that page.")).to_have_count(0)
    log_in(page, base, "sales")
    expect(page).to_have_title("Catalog · Demo portal")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Catalog")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="My demos")).to_be_visible()
    expect(nav.get_by_role("link", name="Fleet")).to_have_count(0)
    expect(page.get_by_role("note")).to_contain_text("Simulated backend")
    expect(page.get_by_text("No demos to start yet")).to_be_visible()

    # The skip link is the first stop for keyboard users and moves focus to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    page.get_by_text("Sam Seller").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_title("Log in · Demo portal")
    assert csp_violations == []
