"""The prospect's page as a prospect sees it, on a desktop and on a phone: the portal's branding,
the salesperson's card, the text meant for prospects, and what a link that ended says."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from demos import branding, images, profiles
from demos.engine.lifecycle import Actor
from demos.models import Branding, DemoTemplate
from demos.sharing import links
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.conftest import make_demo

pytestmark = [pytest.mark.browser]

SALES_NOTES = "Good for showing checkout to retail prospects."
ACCENT = "#0e7c3a"
# A credential with no place to break: it must wrap inside its card on a phone, not push it.
LONG_TOKEN = "eyJhbGciOiJIUzI1NiJ9" * 4

# Every element whose box reaches past the viewport's right edge (or starts left of it), but
# for those kept off-screen on purpose (for screen readers, or until focused).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("body *")]
    .filter((element) => !element.closest(".visually-hidden, .skip-link"))
    .filter((element) => {
      const box = element.getBoundingClientRect();
      return box.width > 0 && (box.right > width + 0.5 || box.left < -0.5);
    })
    .map((element) => element.outerHTML.slice(0, 80));
}"""
# Whether the element's box lies within the card that holds it.
INSIDE_ITS_CARD = """(element) => {
  const card = element.closest(".card").getBoundingClientRect();
  const box = element.getBoundingClientRect();
  return box.left >= card.left - 0.5 && box.right <= card.right + 0.5
    && box.top >= card.top - 0.5 && box.bottom <= card.bottom + 0.5;
}"""


def _png(size: tuple[int, int], colour: str) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return SimpleUploadedFile("picture.png", out.getvalue(), content_type="image/png")


@pytest.fixture
def branded(transactional_db: None) -> Branding:
    logo = images.checked_logo(_png((600, 200), ACCENT))
    row = Branding.objects.create(
        name="Acme Cloud", accent_colour=ACCENT, logo=logo.data, logo_type=logo.content_type
    )
    branding.forget_branding()
    return row


@pytest.fixture
def shared_url(sales_user: User, template: DemoTemplate, site_url: str) -> str:
    template.description = SALES_NOTES
    template.prospect_description = "Run your **whole shop** from one page."
    template.credentials = f"Username: admin\nPassword: demo\nAPI token: {LONG_TOKEN}"
    template.save()
    profiles.save_profile(
        user=sales_user,
        first_name="Sam",
        last_name="Seller",
        job_title="Account executive",
        phone="+44 20 7946 0958",
        booking_url="https://book.example.com/sam",
    )
    profiles.set_photo(user=sales_user, image=images.checked_photo(_png((300, 300), "#888888")))
    demo = make_demo(template, sales_user, prospect_company="Acme")
    return links.create_share_link(demo=demo, actor=Actor.of(sales_user), recipient="Pat").url


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_prospect_sees_the_company_and_whom_to_talk_to(
    browser: Browser, branded: Branding, shared_url: str, size: dict[str, int]
) -> None:
    context = browser.new_context(viewport=size, locale="en-GB")
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.goto(shared_url)

    header = page.locator(".brand-bar")
    expect(header).to_contain_text("Acme Cloud")
    logo = header.locator("img.brand-logo")
    expect(logo).to_be_visible()
    assert logo.evaluate("image => image.complete && image.naturalHeight === 200")
    # The admin's colour reaches the buttons through the brand stylesheet (no inline styles).
    open_demo = page.get_by_role("link", name="Open demo")
    expect(open_demo).to_be_visible()
    assert open_demo.evaluate("link => getComputedStyle(link).backgroundColor") == (
        "rgb(14, 124, 58)"
    )

    card = page.locator(".contact-card")
    expect(card.get_by_role("heading", name="Sam Seller")).to_be_visible()
    expect(card).to_contain_text("Account executive at Acme Cloud")
    expect(card.get_by_role("link", name="sales@example.com")).to_have_attribute(
        "href", "mailto:sales@example.com"
    )
    expect(card.get_by_role("link", name="+44 20 7946 0958")).to_be_visible()
    expect(card.get_by_role("link", name="Book a meeting")).to_have_attribute(
        "href", "https://book.example.com/sam"
    )
    photo = card.locator("img.contact-photo")
    assert photo.evaluate("image => image.complete && image.naturalWidth === 256")
    expect(page.locator(".prose strong", has_text="whole shop")).to_be_visible()
    expect(page.get_by_text(SALES_NOTES)).to_have_count(0)
    expect(page.get_by_role("heading", name="Need more time?")).to_be_visible()

    # Nothing sticks out sideways, and the buttons stay inside their cards.
    assert page.evaluate(OVERFLOWING) == []
    copies = page.locator("button[data-copy]")
    expect(copies.first).to_be_visible()
    for button in [open_demo, *copies.all()]:
        assert button.evaluate(INSIDE_ITS_CARD), button.inner_text()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    label = "phone" if size == PHONE else "desktop"
    page.screenshot(path=SCREENSHOTS / f"prospect-branded-{label}.png", full_page=True)
    context.close()


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_revoked_link_says_so_in_a_fresh_browser_and_an_unknown_one_says_nothing(
    browser: Browser, branded: Branding, shared_url: str, site_url: str, size: dict[str, int]
) -> None:
    from demos.models import ShareLink

    link = ShareLink.objects.get()
    links.revoke_share_link(link=link, actor=Actor.of(link.demo.owner))

    context = browser.new_context(viewport=size)  # never opened the link before
    page: Page = context.new_page()
    page.goto(shared_url)
    expect(page.get_by_role("heading", name="This demo was turned off", level=1)).to_be_visible()
    card = page.locator(".contact-card")
    expect(card.get_by_role("heading", name="Sam Seller")).to_be_visible()
    expect(card.get_by_role("link", name="Book a meeting")).to_be_visible()
    expect(page.locator(".brand-bar")).to_contain_text("Acme Cloud")
    expect(page.get_by_text("Acme", exact=True)).to_have_count(0)
    assert page.evaluate(OVERFLOWING) == []
    label = "phone" if size == PHONE else "desktop"
    page.screenshot(path=SCREENSHOTS / f"prospect-revoked-{label}.png", full_page=True)

    page.goto(f"{site_url}/p/{'x' * 43}/")
    expect(page.get_by_role("heading", name="This link is not available")).to_be_visible()
    expect(page.get_by_text("Sam Seller")).to_have_count(0)
    expect(page.locator(".contact-card")).to_have_count(0)
    context.close()
