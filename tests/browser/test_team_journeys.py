"""Team work in the browser, at desktop and phone sizes: adding a colleague, the colleague seeing
and extending the demo, a prospect's request for more time answered in one click, and handing
the demo over."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from playwright.sync_api import Browser, Page, expect

from demos import roles
from demos.engine.lifecycle import Actor
from demos.models import Demo, DemoTemplate
from demos.sharing import links
from tests.browser.conftest import DESKTOP, PHONE, log_in, screenshot
from tests.conftest import PASSWORD, make_demo

pytestmark = [pytest.mark.browser]
SIZES = pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])


@pytest.fixture
def colleague(transactional_db: None) -> User:
    user = User.objects.create_user(
        "bob", "bob@example.com", PASSWORD, first_name="Bob", last_name="Baker"
    )
    user.groups.add(Group.objects.get(name=roles.SALES))
    return user


def fits_the_width(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def as_someone_else(browser: Browser, size: dict[str, int], site_url: str, username: str) -> Page:
    other = browser.new_context(viewport=size, locale="en-GB").new_page()
    log_in(other, site_url, username)
    return other


@SIZES
def test_a_colleague_is_added_sees_the_demo_and_extends_it(
    page: Page,
    browser: Browser,
    size: dict[str, int],
    site_url: str,
    sales_user: User,
    colleague: User,
    template: DemoTemplate,
    csp_violations: list[str],
) -> None:
    page.set_viewport_size(size)
    demo = make_demo(template, sales_user, prospect_company="Acme", prospect_name="Pat Lee")
    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/demos/{demo.public_id}/")
    page.get_by_role("link", name="Colleagues and hand-over").click()
    page.get_by_label("Colleague", exact=True).fill("Bob Baker <bob@example.com>")
    page.get_by_role("button", name="Add colleague").click()
    expect(page.get_by_text("Bob Baker now works on this demo")).to_be_visible()
    expect(page.locator(".team-list")).to_contain_text("Bob Baker")
    assert fits_the_width(page)
    if size == DESKTOP:  # both sizes, once
        screenshot(page, "team-page")

    bob = as_someone_else(browser, size, site_url, "bob")
    bob.goto(f"{site_url}/demos/")
    row = bob.locator(f"#demo-row-{demo.public_id}")
    expect(row).to_contain_text("Shared with you by Sam Seller")
    row.get_by_role("link", name="Webshop for Acme", exact=True).click()
    expect(bob.get_by_text("Shared with you by Sam Seller")).to_be_visible()
    bob.locator("#status-panel").get_by_role("button", name=re.compile("^Extend by")).click()
    expect(bob.locator("#status-panel .alert--success")).to_contain_text(
        "Extended: the demo now ends at"
    )
    assert fits_the_width(bob)
    demo.refresh_from_db()
    assert demo.extension_count == 1
    bob.context.close()
    assert csp_violations == []


@SIZES
def test_a_request_for_more_time_is_answered_in_one_click(
    page: Page,
    size: dict[str, int],
    site_url: str,
    sales_user: User,
    template: DemoTemplate,
    csp_violations: list[str],
) -> None:
    page.set_viewport_size(size)
    demo = make_demo(template, sales_user, prospect_company="Acme", prospect_name="Pat Lee")
    link = links.create_share_link(demo=demo, actor=Actor.of(sales_user), recipient="Pat").link
    cache.delete(f"prospect:more-time:{link.pk}")  # ids repeat across runs: no old cooldown
    assert links.request_more_time(link)
    log_in(page, site_url, "sales")

    page.goto(f"{site_url}/demos/")
    badge = page.locator(f"#demo-row-{demo.public_id} .more-time")
    expect(badge).to_contain_text("Pat Lee asked for more time")
    assert fits_the_width(page)
    if size == DESKTOP:
        screenshot(page, "more-time-badge")

    page.goto(f"{site_url}/demos/{demo.public_id}/")
    badge = page.locator("#status-panel .more-time")
    expect(badge).to_contain_text("Pat Lee asked for more time")
    badge.get_by_role("button", name=re.compile("^Extend by")).click()
    expect(page.locator("#status-panel .alert--success")).to_contain_text(
        "Extended: the demo now ends at"
    )
    expect(page.locator(".more-time")).to_have_count(0)
    demo.refresh_from_db()
    assert demo.more_time_requested_at is None
    assert csp_violations == []


@SIZES
def test_the_demo_is_handed_over_and_the_old_owner_stays_on(
    page: Page,
    browser: Browser,
    size: dict[str, int],
    site_url: str,
    sales_user: User,
    colleague: User,
    template: DemoTemplate,
    csp_violations: list[str],
) -> None:
    page.set_viewport_size(size)
    demo = make_demo(template, sales_user, prospect_company="Acme")
    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/demos/{demo.public_id}/team/")
    page.get_by_label("New owner").fill("bob@example.com")
    expect(page.get_by_label("Keep the current owner on as a colleague")).to_be_checked()
    page.get_by_role("button", name="Hand over").click()
    expect(page.get_by_text("The demo now belongs to Bob Baker")).to_be_visible()
    expect(page.get_by_text("Shared with you by Bob Baker")).to_be_visible()
    assert fits_the_width(page)
    demo = Demo.objects.get(pk=demo.pk)
    assert demo.owner == colleague
    assert list(demo.colleagues.all()) == [sales_user]

    bob = as_someone_else(browser, size, site_url, "bob")
    bob.goto(f"{site_url}/demos/")
    row = bob.locator(f"#demo-row-{demo.public_id}")
    expect(row).to_be_visible()
    expect(row).not_to_contain_text("Shared with you")
    bob.context.close()
    assert csp_violations == []
