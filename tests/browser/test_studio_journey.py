"""A template admin's whole path through the studio, in a real browser at desktop size, with a
real worker behind the test launch: create, fix the errors the summary points at, test-launch,
publish, edit, compare and roll back; a demo running meanwhile never changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from demos import roles
from demos.models import DemoTemplate
from tests.browser.conftest import DESKTOP, log_in, screenshot
from tests.conftest import PASSWORD, make_demo

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def tara(transactional_db: None) -> User:
    user = User.objects.create_user(
        "tara", "tara@example.com", PASSWORD, first_name="Tara", last_name="Admin", is_staff=True
    )
    user.groups.add(Group.objects.get(name=roles.TEMPLATE_ADMINS))
    return user


def _save(page: Page) -> None:
    page.get_by_role("button", name="Save draft").click()


def confirm(page: Page, question: str, accept: str) -> None:
    """The portal's dialog asks before a change that salespeople see; the person confirms."""
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(question)
    dialog.get_by_role("button", name=accept, exact=True).click()


def test_a_template_admin_creates_tests_publishes_edits_compares_and_rolls_back(
    page: Page,
    site_url: str,
    quick_worker: Any,
    tara: User,
    sales_user: User,
    csp_violations: list[str],
) -> None:
    assert page.viewport_size == DESKTOP
    log_in(page, site_url, "tara")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    expect(page).to_have_title("Template studio · Demo portal")
    page.get_by_role("link", name="New template").click()

    # A first try with two mistakes: each is listed at the top and shown at its field.
    page.get_by_label("Name", exact=True).fill("CRM Suite")
    page.get_by_label("Slug").fill("crm")
    page.get_by_label("Control-plane memory").fill("256m")
    page.get_by_label("Default lifetime", exact=True).fill("10")
    chart = page.locator("#chart-1")
    chart.get_by_label("Release name").fill("crm")
    chart.get_by_label("Namespace").fill("crm")
    chart.get_by_label("Repository").fill("oci://registry.example.com/charts")
    chart.get_by_label("Chart", exact=True).fill("crm")
    chart.get_by_label("Version", exact=True).fill("2.0.0")
    _save(page)

    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_count(2)
    screenshot(page, "studio-errors")
    summary.get_by_role("link", name="A lowercase m means thousandths").click()
    memory = page.get_by_label("Control-plane memory")
    expect(memory).to_be_focused()
    expect(page.locator("#field-control_plane_memory .errorlist")).to_contain_text(
        "A lowercase m means thousandths, not mega"
    )
    summary.get_by_role("link", name="is longer than the maximum lifetime").click()
    expect(page.get_by_label("Default lifetime", exact=True)).to_be_focused()
    expect(page.locator("#field-default_lifetime .errorlist")).to_be_visible()

    memory.fill("256Mi")
    page.get_by_label("Default lifetime", exact=True).fill("2")
    _save(page)
    expect(page.get_by_role("heading", name="CRM Suite")).to_be_visible()
    expect(page.get_by_text("Draft, never published")).to_be_visible()

    # Test launch: a demo of the draft, ready on the simulated backend, each chart reported.
    page.get_by_role("button", name="Test launch").click()
    expect(page).to_have_title("Test launch of CRM Suite · Demo portal")
    expect(page.locator("#time-to-ready")).to_be_visible(timeout=30_000)
    expect(page.locator("#chart-results")).to_contain_text("crm")
    expect(page.locator("#chart-results")).to_contain_text("Installed")
    screenshot(page, "studio-test-launch")

    # Publish: version 1, offered to salespeople; one of them runs a demo of it.
    page.get_by_role("link", name="CRM Suite").click()
    page.get_by_role("button", name="Publish draft").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert DemoTemplate.objects.get(slug="crm").published_version_id is None  # still a draft
    page.get_by_role("button", name="Publish draft").click()
    confirm(page, "Publish the draft as a new version?", "Publish")
    expect(page.get_by_text("Published version 1.")).to_be_visible()
    crm = DemoTemplate.objects.get(slug="crm")
    running = make_demo(crm, sales_user, prospect_company="Acme")
    spec = running.spec

    # Edit and publish again.
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Maximum extensions", exact=True).fill("5")
    page.locator("#chart-1").get_by_label("Version", exact=True).fill("2.1.0")
    _save(page)
    expect(page.get_by_text("Draft saved.")).to_be_visible()
    page.get_by_role("button", name="Publish draft").click()
    confirm(page, "Publish the draft as a new version?", "Publish")
    expect(page.get_by_text("Published version 2.")).to_be_visible()

    # Compare version 1 with version 2.
    page.get_by_label("Compare from version 1").check()
    page.get_by_label("Compare to version 2").check()
    page.get_by_role("button", name="Compare selected versions").click()
    expect(page.get_by_role("heading", name="Version 1 to Version 2")).to_be_visible()
    diff = page.locator(".studio-diff")
    expect(diff.locator(".diff-added")).to_contain_text(["max_extensions: 5", "version: 2.1.0"])
    expect(diff.locator(".diff-removed")).to_contain_text(["max_extensions: 3", "version: 2.0.0"])
    screenshot(page, "studio-compare")

    # Roll back: version 1's content, published again as version 3.
    page.get_by_role("link", name="CRM Suite").click()
    page.get_by_role("button", name="Roll back to version 1").click()
    confirm(page, "Publish version 1's content again", "Roll back")
    expect(page.get_by_text("Published version 3 with the content of version 1.")).to_be_visible()
    crm.refresh_from_db()
    assert (crm.version, crm.max_extensions) == (3, 3)
    assert crm.charts.get().version == "2.0.0"

    # The demo started from version 1 kept the spec it started with throughout.
    running.refresh_from_db()
    assert (running.spec, running.from_version.number) == (spec, 1)
    assert csp_violations == []
