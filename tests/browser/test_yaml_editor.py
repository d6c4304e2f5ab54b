"""The YAML code editor in the template admin: highlighting, line numbers, saving, the reported
error at its line, keyboard use, and the plain textarea without JavaScript, under the strict CSP."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Locator, Page, expect

from demos.models import DemoTemplate
from tests.browser.conftest import PHONE, log_in, screenshot
from tests.conftest import PASSWORD, change_url, make_template

pytestmark = pytest.mark.browser

# Registered before any page script runs: every Content-Security-Policy violation of the page,
# whatever it blocked (a <style> element, an inline script, a style attribute).
RECORD_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"}` +
    ` at ${event.sourceFile}:${event.lineNumber}:${event.columnNumber} ${event.sample}`
  );
});
"""


@pytest.fixture
def superuser(transactional_db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def shop(transactional_db: None) -> DemoTemplate:
    return make_template("webshop", charts=2)


@pytest.fixture
def policy_violations(page: Page) -> list[str]:
    """Every CSP violation on any page this test opens, as the browser reports it."""
    violations: list[str] = []

    def record(violation: str) -> None:
        violations.append(violation)

    page.expose_function("reportCspViolation", record)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    return violations


@pytest.fixture
def admin_page(page: Page, live_server: Any, superuser: User, policy_violations: list[str]) -> Page:
    log_in(page, str(live_server), superuser.username)
    expect(page).to_have_title("Catalog · Demo portal")
    return page


def policy_errors(console_errors: list[str]) -> list[str]:
    # The admin pages name no icon, so Chromium's own request for /favicon.ico is a 404 there.
    return [error for error in console_errors if "Content Security Policy" in error]


def editor_of(page: Page, name: str) -> Locator:
    """The code editor that took over the textarea of form field `name`."""
    return page.locator(f"textarea[name='{name}'] + .cm-editor")


def test_the_yaml_fields_become_code_editors_and_edits_are_saved(
    admin_page: Page,
    live_server: Any,
    shop: DemoTemplate,
    policy_violations: list[str],
    csp_violations: list[str],
) -> None:
    page = admin_page
    page.goto(f"{live_server}{change_url(shop)}")

    # The four YAML fields a superuser sees, and nothing else, became editors.
    expect(page.locator(".cm-editor")).to_have_count(5)
    for name in ("credentials", "vcluster_overrides", "unsafe_vcluster_overrides"):
        expect(editor_of(page, name)).to_be_visible()
    expect(page.locator("textarea[name='description'] + .cm-editor")).to_have_count(0)
    expect(page.locator("textarea[name='description']")).to_be_visible()

    values = editor_of(page, "charts-0-values")
    expect(values.locator(".cm-lineNumbers .cm-gutterElement", has_text="2")).to_be_visible()
    expect(values.locator(".yaml-key", has_text="greeting")).to_be_visible()
    expect(values.locator(".yaml-key").first).to_have_css("color", "rgb(67, 56, 202)")
    # The editor is the labelled text box; the textarea behind it is out of sight and reach.
    textbox = page.get_by_role("textbox", name="Credentials:", exact=True)
    expect(textbox).to_have_attribute("contenteditable", "true")
    expect(page.locator("textarea[name='credentials']")).to_have_attribute("tabindex", "-1")

    page.evaluate(
        """() => {
            window.valuesInputs = 0;
            document.querySelector("#demotemplate_form").addEventListener("input", (event) => {
                if (event.target.name === "charts-0-values") window.valuesInputs += 1;
            });
        }"""
    )
    values.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("replicas: 2")
    # Each keystroke reaches the form as an input event from the field, as from a textarea.
    assert page.evaluate("window.valuesInputs") == len("replicas: 2")
    # Synced on every change, not only on submit: an htmx request would send it as it stands.
    expect(page.locator("textarea[name='charts-0-values']")).to_have_value(
        "host: ${DEMO_HOST}\ngreeting: Hello ${PROSPECT_COMPANY}\nreplicas: 2"
    )
    # Typing over a selection that starts in a highlighted word, where Chromium would otherwise
    # add a style attribute of its own (refused by the CSP).
    values.locator(".yaml-key", has_text="greeting").click()
    page.keyboard.press("Home")
    page.keyboard.press("Shift+End")
    page.keyboard.type("welcome: Hello ${PROSPECT_COMPANY}")
    expect(page.locator("textarea[name='charts-0-values']")).to_have_value(
        "host: ${DEMO_HOST}\nwelcome: Hello ${PROSPECT_COMPANY}\nreplicas: 2"
    )
    screenshot(page, "yaml-editor")
    page.get_by_role("button", name="Save and continue editing").first.click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    # A chart row the admin adds on the page gets an editor too; its blank template does not.
    page.get_by_role("button", name=re.compile("add another chart", re.IGNORECASE)).click()
    expect(editor_of(page, "charts-2-values")).to_be_visible()
    expect(page.locator(".empty-form .cm-editor")).to_have_count(0)

    chart = shop.charts.get(position=0)
    assert chart.values == "host: ${DEMO_HOST}\nwelcome: Hello ${PROSPECT_COMPANY}\nreplicas: 2"
    assert policy_violations == []
    assert policy_errors(csp_violations) == []


def test_an_invalid_value_is_marked_at_the_reported_line(
    admin_page: Page,
    live_server: Any,
    shop: DemoTemplate,
    policy_violations: list[str],
    csp_violations: list[str],
) -> None:
    page = admin_page
    page.goto(f"{live_server}{change_url(shop)}")
    credentials = editor_of(page, "credentials")
    expect(credentials.locator(".yaml-error-marker")).to_have_count(0)

    credentials.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n  Password: demo")
    page.get_by_role("button", name="Save and continue editing").first.click()
    expect(page.locator(".errornote")).to_be_visible()

    credentials = editor_of(page, "credentials")
    textarea = page.locator("textarea[name='credentials']")
    expect(textarea).to_have_attribute("data-yaml-error-line", "3")
    # Line 3 carries the marker, the highlight and the message; the text is as it was submitted.
    expect(credentials.locator(".yaml-error-line")).to_have_count(1)
    expect(credentials.locator(".yaml-error-line")).to_have_text("  Password: demo")
    expect(credentials.locator(".yaml-error-gutter .yaml-error-marker")).to_be_visible()
    message = credentials.locator(".yaml-error-message")
    expect(message).to_contain_text("Credentials: invalid YAML at line 3, column 11")
    # The gutter marker sits beside that line. The editor measures its lines once it is on
    # screen, so it is brought there first, as a person reading the error would.
    credentials.scroll_into_view_if_needed()
    credentials.evaluate(
        """editor => new Promise((resolve, reject) => {
            const aligned = () => {
                const marker = editor.querySelector(".yaml-error-marker").getBoundingClientRect();
                const line = editor.querySelector(".yaml-error-line").getBoundingClientRect();
                const middle = marker.top + marker.height / 2;
                return line.top <= middle && middle <= line.bottom;
            };
            const started = Date.now();
            (function check() {
                if (aligned()) resolve();
                else if (Date.now() - started > 3000) reject(new Error("marker not on its line"));
                else requestAnimationFrame(check);
            })();
        })"""
    )
    expect(credentials.locator(".yaml-error-at")).to_have_text(":")
    screenshot(page, "yaml-editor-error")

    # An error summary's link to the field lands in the editor, on the reported line.
    page.evaluate(
        """() => {
            const link = document.createElement("a");
            link.href = "#id_credentials";
            link.textContent = "Credentials: invalid YAML";
            link.id = "summary-link";
            document.querySelector("#content").prepend(link);
        }"""
    )
    link = page.locator("#summary-link")
    link.scroll_into_view_if_needed()
    expect(credentials.locator(".yaml-error-line")).not_to_be_in_viewport()
    link.click()
    content = credentials.locator(".cm-content")
    expect(content).to_be_focused()
    expect(credentials.locator(".yaml-error-line")).to_be_in_viewport()
    expect(credentials.locator(".cm-activeLine")).to_have_text("  Password: demo")

    # Fixing the text and saving clears the mark.
    page.keyboard.press("Home")
    page.keyboard.press("Shift+Home")
    page.keyboard.press("Delete")
    expect(textarea).to_have_value("Username: admin\nPassword: demo\nPassword: demo")
    page.keyboard.press("Shift+End")
    page.keyboard.type("Role: buyer")
    page.get_by_role("button", name="Save and continue editing").first.click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(editor_of(page, "credentials").locator(".yaml-error-line")).to_have_count(0)
    shop.refresh_from_db()
    assert shop.credentials == "Username: admin\nPassword: demo\nRole: buyer"
    assert policy_violations == []
    assert policy_errors(csp_violations) == []


def test_tab_indents_and_escape_then_tab_leaves_the_editor(
    admin_page: Page, live_server: Any, shop: DemoTemplate
) -> None:
    page = admin_page
    page.goto(f"{live_server}{change_url(shop)}")
    textbox = page.get_by_role("textbox", name="Credentials:", exact=True)
    # The field's own help, then how to leave the editor.
    expect(textbox).to_have_accessible_description(
        re.compile(
            r"^YAML mapping .* Tab indents\. "
            r"To leave the editor with the keyboard, press Esc, then Tab\.$"
        )
    )

    # The label leads to the editor, as it led to the textarea.
    page.locator("label[for='id_credentials']").click()
    expect(textbox).to_be_focused()
    page.keyboard.press("Control+Home")
    page.keyboard.press("Tab")
    expect(page.locator("textarea[name='credentials']")).to_have_value(
        "  Username: admin\nPassword: demo"
    )
    expect(textbox).to_be_focused()

    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    expect(textbox).not_to_be_focused()
    focused_outside = page.evaluate("!document.activeElement.closest('.cm-editor')")
    assert focused_outside
    # The textarea behind the editor is not a stop of its own.
    assert page.evaluate("document.activeElement.name") != "credentials"


def test_content_swapped_in_later_gets_an_editor_that_respects_readonly_and_disabled(
    admin_page: Page, live_server: Any, shop: DemoTemplate
) -> None:
    page = admin_page
    page.goto(f"{live_server}{change_url(shop)}")
    # What htmx does after a swap: the new content fires htmx:load, which the editor listens to.
    page.evaluate(
        """() => {
            const box = document.createElement("div");
            box.innerHTML = `
              <label for="id_locked">Locked</label>
              <textarea id="id_locked" name="locked" data-yaml-editor readonly>a: 1</textarea>
              <label for="id_off">Off</label>
              <textarea id="id_off" name="off" data-yaml-editor disabled>b: 2</textarea>`;
            document.querySelector("#content").prepend(box);
            box.dispatchEvent(new CustomEvent("htmx:load", { bubbles: true }));
        }"""
    )
    locked = page.get_by_role("textbox", name="Locked")
    expect(locked).to_have_attribute("aria-readonly", "true")
    locked.click()
    page.keyboard.type("zzz")
    expect(page.locator("#id_locked")).to_have_value("a: 1")
    expect(locked).to_have_text("a: 1")

    off = page.get_by_role("textbox", name="Off")
    expect(off).to_have_attribute("contenteditable", "false")
    expect(off).to_have_attribute("aria-disabled", "true")
    expect(page.locator("#id_off + .cm-editor")).to_have_class(re.compile("yaml-editor--disabled"))
    # A read-only editor does not take Tab, so it needs no way out and shows no hint.
    expect(page.locator("#id_locked-keys")).to_have_count(0)


def test_the_editor_fits_a_phone_and_long_lines_scroll_inside_it(
    admin_page: Page, live_server: Any, shop: DemoTemplate
) -> None:
    chart = shop.charts.get(position=0)
    chart.values = "annotation: " + "x" * 300 + "\n"
    chart.save()
    page = admin_page
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server}{change_url(shop)}")
    values = editor_of(page, "charts-0-values")
    expect(values).to_be_visible()
    # The long line does not widen the editor: it takes the width its field has, and the line
    # scrolls inside it. (In the admin's narrow layout a chart's field is itself a little
    # wider than the chart's box, so the field, not the box, is the measure.)
    box = values.bounding_box()
    field = values.locator("xpath=..").bounding_box()
    assert box
    assert field
    assert box["width"] <= field["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # A field of the template itself fits its section whole.
    credentials = editor_of(page, "credentials").bounding_box()
    section = editor_of(page, "credentials").locator("xpath=ancestor::fieldset[1]").bounding_box()
    assert credentials
    assert section
    assert section["x"] <= credentials["x"]
    assert credentials["x"] + credentials["width"] <= section["x"] + section["width"]
    scroller = values.locator(".cm-scroller")
    assert scroller.evaluate("element => element.scrollWidth > element.clientWidth")


def test_without_javascript_the_field_is_a_plain_textarea_and_saves(
    browser: Browser,
    browser_context_args: dict[str, Any],
    live_server: Any,
    superuser: User,
    shop: DemoTemplate,
) -> None:
    context = browser.new_context(**browser_context_args, java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, str(live_server), superuser.username)
        page.goto(f"{live_server}{change_url(shop)}")
        expect(page.locator(".cm-editor")).to_have_count(0)
        textarea = page.get_by_role("textbox", name="Credentials:", exact=True)
        expect(textarea).to_be_visible()
        expect(textarea).to_have_attribute("data-yaml-editor", "")
        textarea.fill("Username: admin\nPassword: s3cret")
        page.get_by_role("button", name="Save and continue editing").first.click()
        expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
        shop.refresh_from_db()
        assert shop.credentials == "Username: admin\nPassword: s3cret"
    finally:
        context.close()


def test_the_violation_record_catches_what_a_style_element_would_do(
    admin_page: Page, live_server: Any, shop: DemoTemplate, policy_violations: list[str]
) -> None:
    """The control for the checks above: the record does see the policy refuse a <style>
    element, which is how the editor library styles a document unless the bundle changes it."""
    page = admin_page
    page.goto(f"{live_server}{change_url(shop)}")
    expect(page.locator(".cm-editor")).to_have_count(5)
    page.evaluate(
        """() => {
            const style = document.createElement("style");
            style.textContent = ".cm-editor { color: red }";
            document.head.append(style);
        }"""
    )
    deadline = time.monotonic() + 5
    while not policy_violations and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(policy_violations) == 1
    assert policy_violations[0].startswith("style-src-elem blocked inline")
