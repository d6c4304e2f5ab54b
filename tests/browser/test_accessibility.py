"""Every page of the portal passes axe-core's WCAG 2 A/AA rules with no serious or critical
violation, at desktop and phone size, and nothing on a phone makes the page scroll sideways.

One test per size walks the whole list (`pages.PAGES`) over one data set, and reports every
page that fails, not just the first.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import Page as BrowserPage

from tests.browser import a11y
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.pages import PAGES, Showcase, build_showcase, open_context, show

pytestmark = [pytest.mark.browser]

SIZES = {"desktop": DESKTOP, "phone": PHONE}


@pytest.fixture
def showcase(site_url: str, rq_redis: Any) -> Showcase:
    return build_showcase()


def sideways_overflow(page: BrowserPage) -> str:
    """What sticks out past the right edge of the window, or "" when nothing does."""
    return page.evaluate(
        """() => {
            const width = window.innerWidth;
            if (document.documentElement.scrollWidth <= width) return "";
            const wide = [...document.querySelectorAll("body *")]
                .filter(element => element.getBoundingClientRect().right > width + 1)
                .slice(0, 5)
                .map(element => element.tagName.toLowerCase()
                    + (element.className ? "." + [...element.classList].join(".") : ""));
            return `page is ${document.documentElement.scrollWidth}px wide in ${width}px: `
                + wide.join(", ");
        }"""
    )


@pytest.mark.parametrize("size", SIZES)
def test_every_page_passes_axe(
    browser: Browser, site_url: str, showcase: Showcase, size: str
) -> None:
    problems: list[str] = []
    for portal_page in PAGES:
        context = open_context(browser, site_url, showcase, portal_page, SIZES[size])
        try:
            page = show(context, site_url, showcase, portal_page)
            found = a11y.serious_violations(page)
            if found:
                problems.append(a11y.report(portal_page.name, found))
            if size == "phone" and (overflow := sideways_overflow(page)):
                problems.append(f"{portal_page.name}:\n  - scrolls sideways: {overflow}")
        finally:
            context.close()
    assert not problems, f"at {size} size:\n" + "\n".join(problems)


def test_the_check_finds_what_it_is_there_for(page: BrowserPage) -> None:
    """The check itself: a page with a nameless button and a field without a label fails it,
    and the report names the rules and where they broke."""
    page.set_content(
        '<!doctype html><html lang="en"><head><title>Broken</title></head><body><main>'
        '<h1>Broken</h1><button id="nameless"></button><input id="unlabelled" type="text">'
        "</main></body></html>"
    )
    found = a11y.serious_violations(page)
    assert {violation.rule for violation in found} >= {"button-name", "label"}
    printed = a11y.report("broken", found)
    assert "#nameless" in printed
    assert "#unlabelled" in printed
