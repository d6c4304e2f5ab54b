"""A new share link opens in a wide dialog, readable in full, copied with one click."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from demos.models import DemoTemplate, ShareLink
from demos.sharing import links
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_demo

pytestmark = [pytest.mark.browser]


def test_a_new_link_is_shown_in_full_and_copied_again_later(
    page: Page,
    site_url: str,
    sales_user: User,
    template: DemoTemplate,
    csp_violations: list[str],
) -> None:
    demo = make_demo(template, sales_user, prospect_company="Acme")
    log_in(page, site_url, "sales")
    page.goto(f"{site_url}/demos/{demo.public_id}/")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site_url)
    panel = page.locator("#share-panel")
    panel.get_by_text("New link").click()
    panel.get_by_label("For").fill("Pat Prospect <pat@acme.example>")
    panel.get_by_role("button", name="Create link").click()

    dialog = page.get_by_role(
        "dialog", name="The link for Pat Prospect <pat@acme.example> is ready"
    )
    expect(dialog).to_be_visible()
    assert dialog.evaluate("element => element.matches(':modal')")
    url = links.url_of(ShareLink.objects.get())
    link_field = dialog.get_by_label("New link")
    expect(link_field).to_have_value(url)
    # Wide, and nothing of the link cut off: the field needs no scrolling.
    box = dialog.bounding_box()
    assert box is not None
    assert box["width"] >= 600
    assert link_field.evaluate("element => element.scrollHeight <= element.clientHeight + 1")
    assert link_field.evaluate("element => element.scrollWidth <= element.clientWidth + 1")
    expect(dialog.get_by_role("button", name="Email to prospect")).to_be_visible()

    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == url

    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_be_hidden()
    copy_again = panel.get_by_role("link", name="Copy link for Pat Prospect")
    expect(copy_again).to_be_focused()

    # Later, from the link's row: the same link, in the same dialog.
    copy_again.click()
    again = page.get_by_role("dialog", name="The link for Pat Prospect <pat@acme.example>")
    expect(again.get_by_label("Link for")).to_have_value(url)
    again.get_by_role("button", name="Copy").click()
    expect(again.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == url
    assert csp_violations == []
    # Last: taking it leaves empty style attributes on inputs, which htmx would copy in a swap.
    screenshot(page, "share-link-dialog")
