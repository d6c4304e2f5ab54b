"""Icons are SVG symbols shipped with the portal, never emoji (which render as empty boxes where
no emoji font is installed): the sprite, the template tags, the template icon picker, and a look
in Chromium that the catalog's icons really draw."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Page, expect

from demos import roles
from demos.models import DemoTemplate
from demos.studio.forms import problems_of, validate_document
from demos.studio.versions import default_content
from demos.templatetags.icons import ICONS, PRODUCT_ICONS, icon_svg, product_icon_name
from tests.browser import conftest as browser
from tests.conftest import PASSWORD, ROOT, change_url, form_data, make_template

SPRITE = ROOT / "static" / "img" / "icons.svg"
SVG = "{http://www.w3.org/2000/svg}"

# Chromium as the browser tests run it (Debian's build, the portal's flags).
browser_type_launch_args = browser.browser_type_launch_args
browser_context_args = browser.browser_context_args
csp_violations = browser.csp_violations
sales_user = browser.sales_user


def render(text: str, **context: Any) -> str:
    return Template("{% load icons %}" + text).render(Context(context))


def symbols() -> dict[str, ElementTree.Element]:
    tree = ElementTree.parse(SPRITE)  # noqa: S314 - the portal's own file
    return {element.get("id", ""): element for element in tree.iter(f"{SVG}symbol")}


class TestSprite:
    def test_it_has_a_symbol_for_every_icon_and_no_other(self) -> None:
        assert set(symbols()) == set(ICONS)

    def test_every_symbol_is_drawn_on_a_24_grid_in_the_text_colour(self) -> None:
        for name, symbol in symbols().items():
            assert symbol.get("viewBox") == "0 0 24 24", name
            assert symbol.get("stroke") == "currentColor", name
            assert symbol.get("fill") == "none", name
            assert len(symbol), f"{name} draws nothing"


class TestTags:
    def test_it_renders_a_decorative_svg_that_uses_the_sprite(self) -> None:
        html = render('{% icon "copy" %}')

        assert html == (
            '<svg class="icon" aria-hidden="true" focusable="false">'
            '<use href="/static/img/icons.svg#copy"></use></svg>'
        )

    def test_it_refuses_an_unknown_icon_name(self) -> None:
        with pytest.raises(ValueError, match="no icon named 'sparkles'"):
            render('{% icon "sparkles" %}')

    @pytest.mark.parametrize(
        ("stored", "shown"),
        [
            ("rocket", "rocket"),
            ("database", "database"),
            ("🛒", "cube"),
            ("◆", "cube"),
            ("", "cube"),
        ],
    )
    def test_a_template_icon_that_is_not_a_name_shows_the_cube(
        self, stored: str, shown: str
    ) -> None:
        assert product_icon_name(stored) == shown
        assert f'icons.svg#{shown}"' in render("{% product_icon value %}", value=stored)

    def test_a_size_is_written_on_the_svg_for_pages_without_the_portal_css(self) -> None:
        html = icon_svg("cube", size=24)

        assert 'width="24" height="24"' in html
        assert "icons.svg#cube" in html

    def test_it_uses_the_hashed_name_of_production_static_files(
        self, settings: Any, tmp_path: Path
    ) -> None:
        settings.STATIC_ROOT = tmp_path
        settings.STORAGES = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
        }
        call_command("collectstatic", interactive=False, verbosity=0)

        html = render('{% icon "external" %}')

        match = re.search(r'href="/static/(img/icons\.[0-9a-f]{12}\.svg)#external"', html)
        assert match, html
        served = (tmp_path / match[1]).read_text()
        assert 'id="external"' in served


# Characters that are pictures rather than text: arrows, technical symbols, shapes, dingbats,
# emoji and the selector that asks for emoji presentation. Punctuation (the middle dot, dashes,
# the ellipsis, curly quotes) and mathematical signs are text, outside these ranges, and stay.
PICTURE_RANGES = [
    (0x2190, 0x21FF),
    (0x2300, 0x23FF),
    (0x2460, 0x27BF),
    (0x2900, 0x297F),
    (0x2B00, 0x2BFF),
    (0x1F000, 0x1FAFF),
    (0xFE0F, 0xFE0F),
]


def picture_characters(text: str) -> list[str]:
    return [char for char in text if any(low <= ord(char) <= high for low, high in PICTURE_RANGES)]


class TestTemplates:
    def test_the_scan_finds_pictures_and_leaves_text_alone(self) -> None:
        assert picture_characters("Open ↗ ◇ 🛒 ✓ ⚠️") == ["↗", "◇", "🛒", "✓", "⚠", "\ufe0f"]
        text = "A \u00b7 B \u2014 \u201cquoted\u201d \u2026 it\u2019s \u22121 \u00d7 2"
        assert picture_characters(text) == []

    def test_no_template_uses_a_picture_character_as_an_icon(self) -> None:
        found = {
            f"{path.relative_to(ROOT)}: {unicodedata.name(char, hex(ord(char)))}"
            for path in (ROOT / "templates").rglob("*")
            if path.is_file()
            for char in picture_characters(path.read_text())
        }
        assert not found, "use {% icon %} instead of:\n" + "\n".join(sorted(found))

    def test_every_icon_the_templates_name_exists(self) -> None:
        names = {
            name
            for path in (ROOT / "templates").rglob("*.html")
            for name in re.findall(r'{%\s*icon\s+"([^"]+)"\s*%}', path.read_text())
        }
        assert names, "the templates use icons"
        assert names <= ICONS, names - ICONS


class TestTemplateIconChoice:
    @pytest.fixture(autouse=True)
    def _database(self, db: None) -> None:
        """The checks read the template table (the slug must be free)."""

    def _problems(self, **changes: Any) -> list[str]:
        document = {**default_content(), "slug": "shop", "name": "Shop", **changes}
        editor = validate_document(
            document, template=None, current=default_content(), allow_unsafe=False
        )
        return problems_of(editor)

    @pytest.mark.parametrize("name", sorted(PRODUCT_ICONS))
    def test_the_studio_accepts_every_product_icon(self, name: str) -> None:
        assert self._problems(icon=name) == []

    @pytest.mark.parametrize("value", ["🛒", "shopping", "external", "Shop"])
    def test_the_studio_refuses_anything_else_and_names_the_icons(self, value: str) -> None:
        problems = self._problems(icon=value)

        assert len(problems) == 1, problems
        assert f"Icon “{value}” is not one of the icons: pick one of shop, chart," in problems[0]

    def test_the_editor_shows_the_icons_as_pictures_in_a_named_group(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        DemoTemplate.objects.filter(pk=template.pk).update(icon="🛒")

        html = admin_client.get(reverse("demos:studio_edit", args=[template.slug])).text

        group = html.split('<fieldset class="field field--choices"', 1)[1].split("</fieldset>")[0]
        assert "<legend>Icon</legend>" in group
        for name in PRODUCT_ICONS:
            assert f'<input type="radio" name="icon" value="{name}"' in group
            assert f'icons.svg#{name}"' in group
        # An emoji from before icons had names shows as what it renders: the cube.
        assert re.search(r'value="cube"[^>]*checked', group)

    def test_the_admin_shows_the_icons_as_pictures(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        html = admin_client.get(change_url(template)).text

        for name in PRODUCT_ICONS:
            assert f'<input type="radio" name="icon" value="{name}"' in html
            # Sized on the svg itself: the admin site has not the portal's stylesheet.
            preview = 'width="24" height="24" aria-hidden="true" focusable="false"><use href='
            assert f'{preview}"/static/img/icons.svg#{name}"' in html

    def test_the_admin_takes_a_product_icon(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        response = admin_client.post(change_url(template), form_data(template, icon="rocket"))

        assert response.status_code == 302
        template.refresh_from_db()
        assert template.icon == "rocket"

    def test_the_admin_refuses_an_emoji(self, admin_client: Client, template: DemoTemplate) -> None:
        response = admin_client.post(change_url(template), form_data(template, icon="🚀"))

        assert response.status_code == 200
        assert "Icon “🚀” is not one of the icons" in response.text
        template.refresh_from_db()
        assert template.icon == "cube"  # as it was

    def test_the_admin_keeps_an_old_icon_nobody_changed(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        DemoTemplate.objects.filter(pk=template.pk).update(icon="◆")  # from before icons had names
        template.refresh_from_db()
        response = admin_client.post(change_url(template), form_data(template, tagline="New"))

        assert response.status_code == 302
        template.refresh_from_db()
        assert (template.icon, template.tagline) == ("◆", "New")


@pytest.mark.browser
def test_the_catalog_draws_its_icons_from_the_sprite(
    page: Page, live_server: Any, sales_user: User, csp_violations: list[str]
) -> None:
    make_template("webshop", name="Webshop", icon="shop")
    make_template("legacy", name="Legacy", icon="🛒")
    base = str(live_server)
    browser.log_in(page, base, "sales")
    expect(page).to_have_title("Catalog · Demo portal")

    for slug, name in (("webshop", "shop"), ("legacy", "cube")):
        use = page.locator(f"#template-{slug} .template-icon svg.icon use")
        expect(use).to_have_attribute("href", re.compile(rf"icons\.svg#{name}$"))
        # The <use> resolved: the symbol's shapes take up room inside the icon.
        size = use.evaluate("element => element.getBBox().width")
        assert size > 0, f"the {name} icon of {slug} draws nothing"
        box = page.locator(f"#template-{slug} .template-icon svg.icon").bounding_box()
        assert box
        assert box["width"] > 10
        assert box["height"] > 10
    # The check can fail: a reference to a symbol the sprite lacks draws nothing.
    missing = page.locator(".template-icon svg.icon use").first.evaluate(
        """element => {
            const copy = element.cloneNode();
            copy.setAttribute("href", element.getAttribute("href").replace(/#.*/, "#missing"));
            element.parentNode.append(copy);
            return new Promise(done => setTimeout(() => done(copy.getBBox().width), 500));
        }"""
    )
    assert missing == 0
    browser.screenshot(page, "catalog-icons")
    assert csp_violations == []


@pytest.mark.browser
def test_a_template_admin_picks_an_icon_by_its_picture(
    page: Page, live_server: Any, csp_violations: list[str]
) -> None:
    admin = User.objects.create_user("tara", "tara@example.com", PASSWORD, is_staff=True)
    admin.groups.add(Group.objects.get(name=roles.TEMPLATE_ADMINS))
    template = make_template("webshop", name="Webshop", icon="🛒")
    base = str(live_server)
    browser.log_in(page, base, "tara")
    page.goto(f"{base}{reverse('demos:studio_edit', args=[template.slug])}")

    group = page.get_by_role("group", name="Icon")
    expect(group.get_by_role("radio")).to_have_count(len(PRODUCT_ICONS))
    cube = group.get_by_role("radio", name="Cube", exact=True)
    expect(cube).to_be_checked()
    # Every choice shows its picture, drawn from the sprite.
    drawn = group.locator("svg.icon use").evaluate_all(
        "uses => uses.filter(use => use.getBBox().width > 0).length"
    )
    assert drawn == len(PRODUCT_ICONS)
    group.get_by_text("Rocket", exact=True).click()
    expect(group.get_by_role("radio", name="Rocket", exact=True)).to_be_checked()
    browser.screenshot(page, "studio-icon-picker")
    page.locator("#basics").screenshot(path=browser.SCREENSHOTS / "studio-icon-picker-basics.png")
    assert csp_violations == []
