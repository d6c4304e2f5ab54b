"""`make screenshots`: every page of `pages.PAGES` at desktop and phone size, whole length, as
PNGs in var/screenshots/<size>/<page>.png for people to look through (not committed).

Marked `screenshots`, which the suite leaves out (pyproject.toml's addopts); `make screenshots`
selects it. It shares the accessibility check's data set and ways of reaching each page.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.pages import PAGES, Showcase, build_showcase, open_context, show
from tests.conftest import ROOT

pytestmark = [pytest.mark.screenshots]

FOLDER = ROOT / "var" / "screenshots"
SIZES = {"desktop": DESKTOP, "phone": PHONE}


@pytest.fixture
def showcase(site_url: str, rq_redis: Any) -> Showcase:
    return build_showcase()


@pytest.mark.parametrize("size", SIZES)
def test_screenshots_of_every_page(
    browser: Browser, site_url: str, showcase: Showcase, size: str
) -> None:
    folder = FOLDER / size
    shutil.rmtree(folder, ignore_errors=True)  # pages no longer in the list leave no stale file
    folder.mkdir(parents=True)
    for portal_page in PAGES:
        context = open_context(browser, site_url, showcase, portal_page, SIZES[size])
        try:
            page = show(context, site_url, showcase, portal_page)
            # Still pictures: no spinner caught mid-turn, no caret blinking.
            page.screenshot(
                path=folder / f"{portal_page.name}.png",
                full_page=True,
                animations="disabled",
                caret="hide",
            )
        finally:
            context.close()
    print(f"\n{len(PAGES)} {size} screenshots in {folder.relative_to(ROOT)}/")
