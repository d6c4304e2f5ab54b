"""The salesperson's pages and actions: who sees what, the polling contract, CSRF, the markup."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from demos.backends.base import Observation, Phase
from demos.engine import lifecycle, progress
from demos.models import Demo, DemoEvent, DemoTemplate, Snapshot, SnapshotKind, Status
from tests.conftest import finish_delete, make_demo, make_template

HTMX = {"HTTP_HX_REQUEST": "true"}


class InlineCodeFinder(HTMLParser):
    """Collects what the Content-Security-Policy would block: inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _value in attrs}
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        if any(name.startswith("on") for name in names):
            self.problems.append(f"event handler attribute on <{tag}>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script" and "src" not in names:
            self._in_inline_script = True
            self.problems.append("<script> without src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False


def assert_no_inline_code(html: str) -> None:
    finder = InlineCodeFinder()
    finder.feed(html)
    assert finder.problems == []


def page(client: Client, url: str, **extra: Any) -> str:
    response = client.get(url, **extra)
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    assert_no_inline_code(html)
    assert "Content-Security-Policy" in response.headers
    return html


def logged_in(user: User, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def csrf_token_of(client: Client, url: str) -> str:
    html = client.get(url).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def starting_demo(template: DemoTemplate, owner: User) -> Demo:
    return lifecycle.start_demo(template=template, owner=owner, prospect_company="Acme")


def provisioning_demo(template: DemoTemplate, owner: User) -> Demo:
    """A demo whose cluster is being created: its first step is running."""
    return make_demo(template, owner, Status.PROVISIONING, prospect_company="Acme")


def failed_demo(template: DemoTemplate, owner: User) -> Demo:
    """A demo whose first chart failed to install."""
    return make_demo(
        template,
        owner,
        Status.FAILED,
        prospect_company="Acme",
        error_message="Chart “app0” failed: image pull error for registry.example.com/x:1.",
        error_detail="pod app0-0: ErrImagePull",
    )


def archived_demo(template: DemoTemplate, owner: User, **start: Any) -> tuple[Demo, Snapshot]:
    demo = make_demo(template, owner, Status.ARCHIVED, **start)
    return demo, demo.snapshots.get(kind=SnapshotKind.ARCHIVED)


def detail_url(demo: Demo) -> str:
    return reverse("demos:detail", args=[demo.public_id])


def next_poll_url(html: str) -> str:
    """The URL htmx polls next: the status panel's `hx-get`."""
    match = re.search(r'hx-get="([^"]+)"', html)
    assert match, "the panel does not poll"
    return unescape(match.group(1))


def status_url(demo: Demo) -> str:
    return reverse("demos:status", args=[demo.public_id])


def action_url(demo: Demo, action: str) -> str:
    return reverse("demos:action", args=[demo.public_id, action])


@pytest.fixture
def demo(template: DemoTemplate, alice: User) -> Demo:
    return make_demo(template, alice, prospect_company="Acme")


# --- Who may see what ---------------------------------------------------------------------------


def _demo_pages(demo: Demo) -> list[str]:
    return [
        detail_url(demo),
        status_url(demo),
        status_url(demo) + "?fragment=row",
        action_url(demo, "delete"),
    ]


class TestAnonymous:
    def test_it_sends_every_page_to_the_login_page(self, client: Client, demo: Demo) -> None:
        urls = [
            reverse("demos:catalog"),
            reverse("demos:my_demos"),
            reverse("demos:start", args=[demo.template.slug]),
            reverse("demos:template_accents"),
            *_demo_pages(demo),
        ]
        for url in urls:
            response = client.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("login") + "?next="), url

    def test_it_cannot_act(self, client: Client, demo: Demo, rq_redis: Any) -> None:
        for url in [
            action_url(demo, "extend"),
            action_url(demo, "delete"),
            reverse("demos:start", args=[demo.template.slug]),
        ]:
            response = client.post(url)
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("login"))
        demo.refresh_from_db()
        assert demo.status == Status.READY
        assert demo.extension_count == 0
        assert Demo.objects.count() == 1

    def test_a_fragment_request_gets_a_full_page_redirect(self, client: Client, demo: Demo) -> None:
        response = client.get(
            status_url(demo), HTTP_HX_CURRENT_URL=f"http://testserver{detail_url(demo)}", **HTMX
        )
        assert response.status_code == 200
        assert response["HX-Redirect"] == f"{reverse('login')}?next={detail_url(demo)}"
        assert b"<form" not in response.content


class TestOtherSalesperson:
    def test_it_sees_nothing_of_anothers_demo(self, bob: User, demo: Demo) -> None:
        client = logged_in(bob)
        for url in _demo_pages(demo):
            assert client.get(url).status_code == 404, url
            assert client.get(url, **HTMX).status_code == 404, url
        html = page(client, reverse("demos:my_demos"))
        assert "Acme" not in html

    def test_it_cannot_act_on_anothers_demo(self, bob: User, demo: Demo, rq_redis: Any) -> None:
        client = logged_in(bob)
        for action in ("extend", "pause", "archive", "delete", "resume", "retry", "unknown"):
            assert client.post(action_url(demo, action)).status_code == 404
            assert client.post(action_url(demo, action), **HTMX).status_code == 404
        demo.refresh_from_db()
        assert demo.status == Status.READY
        assert demo.extension_count == 0

    def test_it_cannot_restore_anothers_snapshot(
        self, bob: User, template: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        demo, snapshot = archived_demo(template, alice)
        url = reverse("demos:restore", args=[demo.public_id, snapshot.pk])
        response = logged_in(bob).post(url, {"start_token": "x" * 22})
        assert response.status_code == 404
        assert Demo.objects.count() == 1

    def test_the_not_found_page_is_the_portals(self, bob: User, demo: Demo) -> None:
        response = logged_in(bob).get(detail_url(demo))
        html = response.content.decode()
        assert response.status_code == 404
        assert "<title>Not found · Demo portal</title>" in html
        assert "portal.css" in html
        assert_no_inline_code(html)


class TestManager:
    def test_it_sees_and_acts_on_everyones_demos(
        self, manager: User, demo: Demo, rq_redis: Any
    ) -> None:
        client = logged_in(manager)
        for url in _demo_pages(demo)[:3]:
            assert client.get(url).status_code in (200, 286), url
        html = page(client, reverse("demos:my_demos"))
        assert "Acme" in html
        assert "Alice" in html  # whose demo it is
        response = client.post(action_url(demo, "extend"))
        assert response.status_code == 302
        demo.refresh_from_db()
        assert demo.extension_count == 1
        assert demo.events.get(kind="extended").actor == manager

    def test_it_filters_by_owner(
        self, manager: User, alice: User, bob: User, template: DemoTemplate
    ) -> None:
        make_demo(template, alice, prospect_company="Alpha Corp")
        make_demo(template, bob, prospect_company="Beta Ltd")
        client = logged_in(manager)
        everyone = page(client, reverse("demos:my_demos"))
        assert "Alpha Corp" in everyone
        assert "Beta Ltd" in everyone
        assert 'name="owner"' in everyone
        only_bob = page(client, reverse("demos:my_demos") + "?owner=bob")
        assert "Beta Ltd" in only_bob
        assert "Alpha Corp" not in only_bob


class TestTemplateAdmin:
    def test_it_watches_but_does_not_act_on_others_demos(
        self, template_admin: User, demo: Demo, rq_redis: Any
    ) -> None:
        client = logged_in(template_admin)
        html = page(client, detail_url(demo))
        assert action_url(demo, "extend") not in html
        response = client.post(action_url(demo, "delete"))
        assert response.status_code == 403
        assert "You cannot do that" in response.content.decode()
        demo.refresh_from_db()
        assert demo.status == Status.READY


# --- Catalog and starting -----------------------------------------------------------------------


class TestCatalog:
    def test_it_is_the_landing_page_after_login(self, alice: User, template: DemoTemplate) -> None:
        client = Client()
        response = client.post(
            reverse("login"), {"username": "alice", "password": "correct-horse-battery"}
        )
        assert response["Location"] == reverse("demos:catalog")
        html = page(client, reverse("demos:catalog"))
        assert "<title>Catalog · Demo portal</title>" in html
        assert "Webshop" in html
        assert "A shop with a database" in html
        assert "Chart0, Chart1" in html  # what is inside, by name
        assert "app0" not in html  # release names and versions are for the studio
        assert "Start demo" in html

    def test_it_shows_the_typical_time_to_ready_or_new(
        self, alice: User, template: DemoTemplate
    ) -> None:
        fresh = make_template("crm", name="CRM")
        for seconds in (30, 40, 90):
            make_demo(template, alice, ready_after=timedelta(seconds=seconds))
        html = page(logged_in(alice), reverse("demos:catalog"))
        webshop = html[html.index('id="template-webshop"') :]
        assert "about 40 s" in webshop[: webshop.index("</article>")]
        crm = html[html.index(f'id="template-{fresh.slug}"') :]
        assert "(first start)" in crm[: crm.index("</article>")]

    def test_it_hides_disabled_templates_and_says_when_there_is_nothing(
        self, alice: User, template: DemoTemplate
    ) -> None:
        DemoTemplate.objects.update(enabled=False)
        html = page(logged_in(alice), reverse("demos:catalog"))
        assert "Webshop" not in html
        assert "No demos to start yet" in html

    def test_it_offers_lifetimes_within_the_templates_bounds(
        self, alice: User, template: DemoTemplate
    ) -> None:
        html = page(logged_in(alice), reverse("demos:catalog"))
        options = re.findall(r'<option value="(\d+)"( selected)?>([^<]+)</option>', html)
        assert [int(value) for value, _sel, _label in options] == [1800, 3600, 7200, 14400, 28800]
        assert [label for _value, selected, label in options if selected] == ["2 h (default)"]

    def test_it_lists_the_persons_running_demos(
        self, alice: User, bob: User, template: DemoTemplate
    ) -> None:
        make_demo(template, alice, prospect_company="Mine Inc")
        make_demo(template, bob, prospect_company="Theirs Inc")
        html = page(logged_in(alice), reverse("demos:catalog"))
        assert "Your demos now" in html
        assert "Mine Inc" in html
        assert "Theirs Inc" not in html

    def test_template_accents_are_a_stylesheet(self, alice: User, template: DemoTemplate) -> None:
        DemoTemplate.objects.filter(pk=template.pk).update(colour="#112233")
        make_template("evil", colour="red;}p{")  # fits the column, is not a colour
        client = logged_in(alice)
        response = client.get(reverse("demos:template_accents"))
        assert response["Content-Type"].startswith("text/css")
        css = response.content.decode()
        assert f".accent-{template.pk} {{ --accent: #112233; }}" in css
        assert "red" not in css
        again = client.get(reverse("demos:template_accents"), HTTP_IF_NONE_MATCH=response["ETag"])
        assert again.status_code == 304


class TestStart:
    def _form(self, client: Client, template: DemoTemplate, **fields: str) -> dict[str, str]:
        html = client.get(reverse("demos:start", args=[template.slug])).content.decode()
        token = re.search(r'name="start_token" value="([^"]+)"', html)
        assert token
        return {"start_token": token.group(1), "lifetime": "3600", **fields}

    def test_it_starts_a_demo_and_shows_its_page(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        client = logged_in(alice)
        page(client, reverse("demos:start", args=[template.slug]))
        data = self._form(client, template, prospect_company="Acme", prospect_name="Ada")
        response = client.post(reverse("demos:start", args=[template.slug]), data)
        demo = Demo.objects.get()
        assert response.status_code == 302
        assert response["Location"] == detail_url(demo)
        assert (demo.owner, demo.prospect_company, demo.prospect_name) == (alice, "Acme", "Ada")
        assert demo.lifetime == timedelta(hours=1)
        assert demo.status == Status.REQUESTED

    def test_a_double_submit_makes_one_demo(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        client = logged_in(alice)
        data = self._form(client, template)
        first = client.post(reverse("demos:start", args=[template.slug]), data)
        second = client.post(reverse("demos:start", args=[template.slug]), data)
        assert Demo.objects.count() == 1
        assert first["Location"] == second["Location"]

    def test_it_refuses_a_lifetime_the_template_does_not_allow(
        self, alice: User, template: DemoTemplate
    ) -> None:
        client = logged_in(alice)
        data = self._form(client, template, lifetime=str(24 * 3600))
        response = client.post(reverse("demos:start", args=[template.slug]), data)
        assert response.status_code == 400
        assert "Select a valid choice" in response.content.decode()
        assert not Demo.objects.exists()

    def test_it_shows_a_refusal_in_words(
        self, alice: User, template: DemoTemplate, rq_redis: Any, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 1
        make_demo(template, alice)
        lifecycle.start_demo(template=template, owner=alice)  # queued: the limit is reached
        client = logged_in(alice)
        response = client.post(
            reverse("demos:start", args=[template.slug]), self._form(client, template)
        )
        html = response.content.decode()
        assert response.status_code == 409
        assert "waiting for capacity" in html
        assert_no_inline_code(html)

    def test_disabled_templates_cannot_be_started(
        self, alice: User, template: DemoTemplate
    ) -> None:
        DemoTemplate.objects.update(enabled=False)
        response = logged_in(alice).get(reverse("demos:start", args=[template.slug]))
        assert response.status_code == 404


# --- The demo page and its polling contract -----------------------------------------------------


class TestDemoPage:
    def test_a_starting_demo_shows_its_steps_and_polls(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = starting_demo(template, alice)
        html = page(logged_in(alice), detail_url(demo))
        assert "Starting your demo" in html
        assert "Creating the cluster" in html
        assert "Installing Chart0" in html  # the chart's name, not its release's
        assert "Checking the app" in html
        assert 'hx-trigger="every 2s"' in html
        assert f'hx-get="{status_url(demo)}?since=' in html
        assert 'http-equiv="refresh"' in html  # the no-JavaScript fallback
        assert "Running for" not in html  # a starting demo says how long it has been starting

    def test_a_queued_demo_shows_its_place_in_the_queue(
        self, alice: User, bob: User, template: DemoTemplate, rq_redis: Any, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_TOTAL = 1
        make_demo(template, bob)
        demo = starting_demo(template, alice)
        assert demo.status == Status.QUEUED
        html = page(logged_in(alice), detail_url(demo))
        assert "Waiting for capacity: number 1 in the queue" in html
        assert "Cancel" in html

    def test_a_ready_demo_shows_the_link_credentials_and_instructions(
        self, alice: User, demo: Demo
    ) -> None:
        html = page(logged_in(alice), detail_url(demo))
        assert "Your demo is ready" in html
        # Through the gate: the button asks the portal for a ticket into the demo's host.
        assert f'href="{reverse("demos:open", args=[demo.public_id])}"' in html
        assert "Open demo" in html
        assert f'value="{demo.live_url}" readonly' in html
        assert "data-copy=" in html
        assert "Username" in html
        assert "<strong>admin</strong>" in html  # markdown rendered
        assert "data-countdown" in html
        assert "1 h 59 min" in html or "2 h" in html  # server-rendered time left
        assert 'hx-trigger="every 2s"' not in html
        for label in ("Extend by 1 h", "Keep for later", "Archive", "Delete"):
            assert label in html
        assert action_url(demo, "resume") not in html
        assert action_url(demo, "retry") not in html

    def test_instructions_are_sanitised(self, alice: User, template: DemoTemplate) -> None:
        DemoTemplate.objects.filter(pk=template.pk).update(
            instructions="Hi <script>alert(1)</script> [x](javascript:alert(1)) "
            '<img src=x onerror="y">'
        )
        template.refresh_from_db()
        demo = make_demo(template, alice)
        html = page(logged_in(alice), detail_url(demo))
        assert "alert(1)" not in html
        assert "onerror" not in html
        assert "javascript:" not in html

    def test_a_manager_sees_the_technical_cause_of_a_failure(
        self, alice: User, manager: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        html = page(logged_in(manager), detail_url(failed_demo(template, alice)))
        assert "image pull error" in html
        assert "ErrImagePull" in html  # the technical detail, folded away

    def test_a_failed_demo_shows_the_cause_with_retry_and_delete(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = failed_demo(template, alice)
        html = page(logged_in(alice), detail_url(demo))
        assert "The demo could not start" in html
        # Plain words for the salesperson; the technical cause is for admins and managers (and
        # the demo's timeline, which records what happened).
        cause = re.search(r'class="failure-cause[^"]*"[^>]*>(.*?)</', html, re.S)
        assert cause is not None
        assert "broken right now" in cause.group(1)
        assert "image pull error" not in cause.group(1)
        assert "ErrImagePull" not in html
        assert "step--failed" in html
        assert ">Retry<" in html
        assert ">Delete<" in html
        assert action_url(demo, "extend") not in html

    def test_a_paused_demo_offers_resume(self, alice: User, template: DemoTemplate) -> None:
        demo = make_demo(template, alice, Status.PAUSED)
        html = page(logged_in(alice), detail_url(demo))
        assert "Kept for later" in html
        assert ">Resume" in html
        assert "Keep for later<" not in html

    def test_an_archived_demo_lists_its_snapshot_to_restore(
        self, alice: User, template: DemoTemplate
    ) -> None:
        demo, snapshot = archived_demo(template, alice)
        html = page(logged_in(alice), detail_url(demo))
        assert reverse("demos:restore", args=[demo.public_id, snapshot.pk]) in html
        assert "Restore" in html

    def test_a_deleted_demo_offers_to_start_again_like_it(
        self, alice: User, template: DemoTemplate
    ) -> None:
        demo = make_demo(template, alice, Status.DELETED)
        html = page(logged_in(alice), detail_url(demo))
        assert "This demo has ended" in html
        assert "Start again like this" in html  # tests/test_team_work.py: what it fills in
        assert "action-form" not in html

    def test_the_timeline_lists_the_events(self, alice: User, demo: Demo) -> None:
        DemoEvent.objects.create(demo=demo, kind="ready", message="Ready after 12 s.")
        html = page(logged_in(alice), detail_url(demo))
        assert "Timeline" in html
        assert "Ready after 12 s." in html

    def test_it_leaves_room_for_sharing_and_marks_the_simulated_backend(
        self, alice: User, demo: Demo
    ) -> None:
        html = page(logged_in(alice), detail_url(demo))
        assert "Simulated backend" in html
        assert 'aria-live="polite"' in html
        assert 'class="skip-link"' in html


class TestPolling:
    def test_the_fragment_keeps_polling_while_the_demo_works(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = starting_demo(template, alice)
        client = logged_in(alice)
        response = client.get(status_url(demo), **HTMX)
        html = response.content.decode()
        assert response.status_code == 200
        assert 'hx-trigger="every 2s"' in html
        assert 'id="status-panel"' in html
        assert re.search(r'<section id="timeline"[^>]* hx-swap-oob="true"', html)
        assert "<html" not in html
        assert_no_inline_code(html)

    def test_the_timeline_is_resent_only_when_it_has_news(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = starting_demo(template, alice)
        client = logged_in(alice)
        latest = demo.events.order_by("-pk").first().pk
        quiet = client.get(f"{status_url(demo)}?since={latest}", **HTMX).content.decode()
        assert 'id="status-panel"' in quiet
        assert 'id="timeline"' not in quiet
        assert f"?since={latest}" in quiet  # the next poll asks the same question
        lifecycle.record_event(demo, "progress", "Installing app0: done (1.0 s).")
        news = client.get(f"{status_url(demo)}?since={latest}", **HTMX).content.decode()
        assert re.search(r'<section id="timeline"[^>]* hx-swap-oob="true"', news)
        assert "Installing app0: done" in news
        assert f"?since={latest}" not in news

    def test_a_poll_whose_panel_is_current_gets_no_content(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = provisioning_demo(template, alice)
        client = logged_in(alice)
        first = client.get(status_url(demo), **HTMX).content.decode()
        poll = next_poll_url(first)
        quiet = client.get(poll, **HTMX)
        assert quiet.status_code == 204
        assert quiet.content == b""

        # Anything the panel shows changes its version: the next poll renders it again.
        demo.refresh_from_db()
        lifecycle.record_start(demo, demo.steps, Observation(Phase.INSTALLING, "Installing app0."))
        news = client.get(poll, **HTMX)
        assert news.status_code == 200
        assert "Creating the cluster" in news.content.decode()
        assert next_poll_url(news.content.decode()) != poll
        assert client.get(next_poll_url(news.content.decode()), **HTMX).status_code == 204

    def test_the_demo_page_hands_its_panel_a_version(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = starting_demo(template, alice)
        client = logged_in(alice)
        poll = next_poll_url(page(client, detail_url(demo)))
        assert "&v=" in poll
        assert client.get(poll, **HTMX).status_code == 204

    def test_a_current_version_reveals_nothing_to_others(
        self, alice: User, bob: User, manager: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = starting_demo(template, alice)
        poll = next_poll_url(logged_in(alice).get(status_url(demo), **HTMX).content.decode())
        assert logged_in(bob).get(poll, **HTMX).status_code == 404
        anonymous = Client().get(poll, **HTMX)
        assert anonymous.status_code != 204
        assert anonymous.headers["HX-Redirect"].startswith(reverse("login"))
        assert logged_in(manager).get(poll, **HTMX).status_code == 204

    def test_the_version_follows_everything_the_panel_shows(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = starting_demo(template, alice)
        client = logged_in(alice)
        changes: list[Callable[[Demo], object]] = [
            lambda d: lifecycle.record_event(d, "progress", "Something happened."),
            lambda d: Demo.objects.filter(pk=d.pk).update(
                progress=progress.mark(d.progress, "cluster", "active")
            ),
            lambda d: Demo.objects.filter(pk=d.pk).update(error_message="Trying again."),
            lambda d: Demo.objects.filter(pk=d.pk).update(live_url="https://x.example.com/"),
            lambda d: Demo.objects.filter(pk=d.pk).update(extension_count=1),
        ]
        poll = next_poll_url(client.get(status_url(demo), **HTMX).content.decode())
        for change in changes:
            demo.refresh_from_db()
            change(demo)
            answer = client.get(poll, **HTMX)
            assert answer.status_code == 200
            poll = next_poll_url(answer.content.decode())
            assert client.get(poll, **HTMX).status_code == 204

    def test_a_queued_demo_moving_up_the_queue_is_news(
        self, alice: User, bob: User, template: DemoTemplate, rq_redis: Any, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_TOTAL = 0
        ahead = starting_demo(template, bob)
        mine = starting_demo(template, alice)
        assert (ahead.status, mine.status) == (Status.QUEUED, Status.QUEUED)
        client = logged_in(alice)
        first = client.get(status_url(mine), **HTMX).content.decode()
        assert "number 2 in the queue" in first
        poll = next_poll_url(first)
        assert client.get(poll, **HTMX).status_code == 204
        lifecycle.delete_demo(demo=ahead, actor=lifecycle.Actor.of(bob))
        moved = client.get(poll, **HTMX)
        assert moved.status_code == 200
        assert "number 1 in the queue" in moved.content.decode()

    def test_time_passing_alone_changes_nothing_the_server_renders(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        """Running durations tick in the browser, so "no news" may honestly answer 204."""
        demo = provisioning_demo(template, alice)
        client = logged_in(alice)

        def panel() -> str:
            html = client.get(status_url(demo), **HTMX).content.decode()
            assert html.count("data-elapsed=") == 2  # "Running for" and the active step
            # Leave out the figures the browser counts on from.
            return re.sub(r'data-elapsed="[^"]*"([^>]*)>[^<]*', r"data-elapsed\1>", html)

        before = panel()
        with time_machine.travel(timezone.now() + timedelta(minutes=7, seconds=3)):
            after = panel()
        assert after == before

    def test_a_settled_demo_is_sent_whatever_the_version(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = starting_demo(template, alice)
        client = logged_in(alice)
        poll = next_poll_url(client.get(status_url(demo), **HTMX).content.decode())
        finish_delete(lifecycle.delete_demo(demo=demo, actor=lifecycle.Actor.of(alice)))
        assert client.get(poll, **HTMX).status_code == 286

    def test_it_answers_286_once_the_demo_has_settled(self, alice: User, demo: Demo) -> None:
        response = logged_in(alice).get(status_url(demo), **HTMX)
        assert response.status_code == 286
        assert 'hx-trigger="every 2s"' not in response.content.decode()
        assert "Your demo is ready" in response.content.decode()

    @pytest.mark.parametrize("status", [Status.PAUSED, Status.ARCHIVED, Status.DELETED])
    def test_every_settled_state_stops_polling(
        self, alice: User, template: DemoTemplate, status: Status
    ) -> None:
        demo = make_demo(template, alice, status)
        assert logged_in(alice).get(status_url(demo), **HTMX).status_code == 286

    def test_a_failed_demo_stops_polling(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = failed_demo(template, alice)
        assert logged_in(alice).get(status_url(demo), **HTMX).status_code == 286

    def test_rows_of_my_demos_poll_the_same_way(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        starting = starting_demo(template, alice)
        ready = make_demo(template, alice)
        client = logged_in(alice)
        response = client.get(status_url(starting) + "?fragment=row", **HTMX)
        assert response.status_code == 200
        assert f'id="demo-row-{starting.public_id}"' in response.content.decode()
        assert 'hx-trigger="every 2s"' in response.content.decode()
        assert client.get(status_url(ready) + "?fragment=row", **HTMX).status_code == 286

    def test_the_ready_panel_refreshes_itself_when_its_time_is_up(
        self, alice: User, demo: Demo
    ) -> None:
        html = logged_in(alice).get(detail_url(demo)).content.decode()
        assert 'hx-trigger="demo-expired"' in html


# --- Actions ------------------------------------------------------------------------------------


class TestActions:
    @pytest.mark.parametrize(
        ("action", "before", "after"),
        [
            ("extend", Status.READY, Status.READY),
            ("pause", Status.READY, Status.PAUSING),
            ("archive", Status.READY, Status.ARCHIVING),
            ("delete", Status.READY, Status.DELETING),
            ("resume", Status.PAUSED, Status.RESUMING),
        ],
    )
    def test_the_owner_acts_without_javascript(
        self,
        alice: User,
        template: DemoTemplate,
        rq_redis: Any,
        action: str,
        before: Status,
        after: Status,
    ) -> None:
        demo = make_demo(template, alice, before)
        client = logged_in(alice)
        response = client.post(action_url(demo, action))
        assert response.status_code == 302
        assert response["Location"] == detail_url(demo)
        demo.refresh_from_db()
        assert demo.status == after
        html = page(client, detail_url(demo))
        assert "alert--success" in html  # the message says what happened

    def test_retry_starts_a_failed_demo_again(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = failed_demo(template, alice)
        response = logged_in(alice).post(action_url(demo, "retry"), **HTMX)
        assert response.status_code == 200
        assert "Trying again." in response.content.decode()
        demo.refresh_from_db()
        assert demo.status == Status.REQUESTED

    def test_htmx_actions_answer_in_place(self, alice: User, demo: Demo, rq_redis: Any) -> None:
        response = logged_in(alice).post(action_url(demo, "extend"), **HTMX)
        html = response.content.decode()
        assert response.status_code == 200
        assert 'id="status-panel"' in html
        assert "Extended: the demo now ends at" in html
        assert "hx-swap-oob" in html  # the timeline comes along
        assert "<html" not in html
        demo.refresh_from_db()
        assert demo.extension_count == 1

    def test_an_action_from_the_list_answers_with_the_row(
        self, alice: User, demo: Demo, rq_redis: Any
    ) -> None:
        row_id = f"demo-row-{demo.public_id}"
        response = logged_in(alice).post(action_url(demo, "pause"), HTTP_HX_TARGET=row_id, **HTMX)
        html = response.content.decode()
        assert response.status_code == 200
        assert html.strip().startswith(f'<li id="{row_id}"')
        assert "Keeping it for later" in html
        assert 'hx-trigger="every 2s"' in html  # pausing: the row watches it settle

    def test_a_refused_action_explains_itself_in_place(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice, extensions=template.max_extensions)
        response = logged_in(alice).post(action_url(demo, "extend"), **HTMX)
        assert response.status_code == 409
        assert "the most" in response.content.decode()
        assert 'role="alert"' in response.content.decode()

    def test_a_refused_action_without_javascript_comes_back_with_a_message(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice, Status.DELETED)
        client = logged_in(alice)
        response = client.post(action_url(demo, "delete"), follow=True)
        assert "already" in response.content.decode() or "has been deleted" in (
            response.content.decode()
        )

    def test_without_javascript_delete_asks_first(self, alice: User, demo: Demo) -> None:
        client = logged_in(alice)
        html = page(client, action_url(demo, "delete") + "?next=/demos/")
        assert "Are you sure?" in html
        assert "Delete demo</button>" in html
        assert "cannot be undone" in html
        assert 'name="next" value="/demos/"' in html
        demo.refresh_from_db()
        assert demo.status == Status.READY  # asking changed nothing

    def test_actions_without_a_question_never_act_on_get(self, alice: User, demo: Demo) -> None:
        response = logged_in(alice).get(action_url(demo, "extend"))
        assert response.status_code == 302
        demo.refresh_from_db()
        assert demo.extension_count == 0

    def test_it_returns_to_the_page_it_came_from_but_only_ours(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        client = logged_in(alice)
        first = make_demo(template, alice)
        response = client.post(action_url(first, "pause"), {"next": "/demos/?owner="})
        assert response["Location"] == "/demos/?owner="
        second = make_demo(template, alice)
        response = client.post(action_url(second, "pause"), {"next": "https://evil.example/"})
        assert response["Location"] == detail_url(second)

    def test_restoring_a_snapshot_starts_a_new_demo(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo, snapshot = archived_demo(template, alice)
        url = reverse("demos:restore", args=[demo.public_id, snapshot.pk])
        client = logged_in(alice)
        response = client.post(url, {"start_token": "t" * 22})
        again = client.post(url, {"start_token": "t" * 22})
        restored = Demo.objects.exclude(pk=demo.pk).get()
        assert restored.restored_from == snapshot
        assert response["Location"] == again["Location"] == detail_url(restored)


class TestCsrf:
    def test_actions_need_the_token(self, alice: User, demo: Demo, rq_redis: Any) -> None:
        client = logged_in(alice, csrf=True)
        for action in ("extend", "pause", "delete"):
            assert client.post(action_url(demo, action)).status_code == 403
            assert client.post(action_url(demo, action), **HTMX).status_code == 403
        demo.refresh_from_db()
        assert (demo.status, demo.extension_count) == (Status.READY, 0)

    def test_htmx_sends_the_token_as_a_header(self, alice: User, demo: Demo, rq_redis: Any) -> None:
        client = logged_in(alice, csrf=True)
        html = client.get(detail_url(demo)).content.decode()
        token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', html)
        assert token
        response = client.post(action_url(demo, "extend"), HTTP_X_CSRFTOKEN=token.group(1), **HTMX)
        assert response.status_code == 200
        demo.refresh_from_db()
        assert demo.extension_count == 1

    def test_starting_and_restoring_need_the_token(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demo, snapshot = archived_demo(template, alice)
        client = logged_in(alice, csrf=True)
        start = reverse("demos:start", args=[template.slug])
        restore = reverse("demos:restore", args=[demo.public_id, snapshot.pk])
        assert client.post(start, {"start_token": "a" * 22, "lifetime": "3600"}).status_code == 403
        assert client.post(restore, {"start_token": "b" * 22}).status_code == 403
        assert Demo.objects.count() == 1
        token = csrf_token_of(client, start)
        response = client.post(
            start, {"start_token": "a" * 22, "lifetime": "3600", "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302

    def test_the_csrf_failure_page_is_the_portals(self, alice: User, demo: Demo) -> None:
        response = logged_in(alice, csrf=True).post(action_url(demo, "extend"))
        html = response.content.decode()
        assert "That form has expired" in html
        assert_no_inline_code(html)

    def test_logging_out_is_a_post_with_the_token(self, alice: User) -> None:
        client = logged_in(alice, csrf=True)
        assert client.post(reverse("logout")).status_code == 403
        token = csrf_token_of(client, reverse("demos:catalog"))
        response = client.post(reverse("logout"), {"csrfmiddlewaretoken": token})
        assert response["Location"] == reverse("login")
        assert client.get(reverse("demos:catalog")).status_code == 302


# --- My demos -----------------------------------------------------------------------------------


class TestMyDemos:
    def test_it_splits_demos_into_active_kept_and_ended(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        make_demo(template, alice, prospect_company="Running Co")
        failed_demo(template, alice)
        make_demo(template, alice, Status.PAUSED, prospect_company="Paused Co")
        archived_demo(template, alice, prospect_company="Archived Co")
        make_demo(template, alice, Status.DELETED, prospect_company="Gone Co")
        html = page(logged_in(alice), reverse("demos:my_demos"))
        active = html[html.index('id="section-active"') : html.index('id="section-kept"')]
        kept = html[html.index('id="section-kept"') : html.index('id="section-ended"')]
        ended = html[html.index('id="section-ended"') :]
        assert "Running Co" in active
        assert "Acme" in active  # the failed one needs attention
        assert "Paused Co" in kept
        assert "Archived Co" in kept
        assert "Gone Co" in ended
        assert "Ends in" in active
        assert "<span>Open <svg" in active  # with the external-link icon
        assert "#external" in active
        assert "Ready" in active
        assert "Failed" in active  # badges carry text

    def test_it_says_what_to_do_when_there_is_nothing(self, alice: User) -> None:
        html = page(logged_in(alice), reverse("demos:my_demos"))
        assert "No demos yet" in html
        assert "Start one from the catalog" in html
        assert "<title>My demos · Demo portal</title>" in html

    def test_quick_actions_fit_each_demos_state(self, alice: User, template: DemoTemplate) -> None:
        ready = make_demo(template, alice)
        paused = make_demo(template, alice, Status.PAUSED)
        html = page(logged_in(alice), reverse("demos:my_demos"))
        assert action_url(ready, "extend") in html
        assert action_url(ready, "pause") in html
        assert action_url(ready, "archive") not in html  # only on the demo page
        assert action_url(paused, "resume") in html
        assert action_url(paused, "extend") not in html


# --- Layout, accounts and error pages -----------------------------------------------------------


class TestLayout:
    def test_the_login_page_is_in_the_portals_look(self, client: Client, db: None) -> None:
        html = page(client, reverse("login"))
        assert "<title>Log in · Demo portal</title>" in html
        assert "portal.css" in html
        assert "favicon.svg" in html
        assert 'name="username"' in html
        assert "My demos" not in html  # no navigation before logging in

    def test_a_failed_login_says_so(self, client: Client, alice: User) -> None:
        response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
        assert 'role="alert"' in response.content.decode()

    def test_the_navigation_shows_fleet_only_to_those_who_may_see_it(
        self, alice: User, manager: User, template: DemoTemplate
    ) -> None:
        html = page(logged_in(alice), reverse("demos:catalog"))
        assert 'aria-current="page">Catalog' in html
        assert ">Fleet<" not in html
        assert "Log out" in html
        manager_html = page(logged_in(manager), reverse("demos:catalog"))
        try:
            fleet_url = reverse("demos:fleet")
        except Exception:
            fleet_url = None
        if fleet_url:
            assert f'href="{fleet_url}"' in manager_html

    def test_the_htmx_config_keeps_htmx_within_the_csp(self, alice: User) -> None:
        html = page(logged_in(alice), reverse("demos:catalog"))
        assert '"includeIndicatorStyles": false' in html
        assert '"allowEval": false' in html
        csp = logged_in(alice).get(reverse("demos:catalog"))["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "style-src 'self'" in csp

    def test_the_server_error_page_needs_no_request(self) -> None:
        html = render_to_string("500.html")
        assert "Something went wrong on our side" in html
        assert "portal.css" in html
        assert_no_inline_code(html)


@pytest.mark.parametrize(
    "make",
    [starting_demo, failed_demo, lambda t, o: make_demo(t, o)],
    ids=["starting", "failed", "ready"],
)
def test_no_page_has_inline_code(
    make: Callable[[DemoTemplate, User], Demo],
    alice: User,
    template: DemoTemplate,
    rq_redis: Any,
) -> None:
    demo = make(template, alice)
    client = logged_in(alice)
    for url in (
        reverse("demos:catalog"),
        reverse("demos:my_demos"),
        reverse("demos:start", args=[template.slug]),
        detail_url(demo),
    ):
        page(client, url)
