"""Fragments kept per process (demos.fragments): a kept row of My demos or catalog card is the
one rendered afresh, with the reader's own CSRF token, today's times and fresh start tokens, and
nothing a person typed can pass for one of its holes."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from demos import fragments, roles
from demos.fleet import rows
from demos.models import Demo, DemoTemplate, Status
from demos.sales import catalog, row_cache
from demos.sharing import views as sharing_views
from portal.redis_connection import shared
from tests.conftest import forget_fragments, make_demo, make_template

MY_DEMOS = "/demos/"
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def roomy(settings: Any) -> None:
    settings.DEMO_MAX_ACTIVE_PER_USER = 100
    settings.DEMO_MAX_ACTIVE_TOTAL = 100


@pytest.fixture
def demos_of_alice(roomy: None, template: DemoTemplate, alice: User) -> list[Demo]:
    """One demo in each state a row shows differently, with a request for more time."""
    demos = [
        make_demo(template, alice, status, prospect_company=f"Company {status}")
        for status in (Status.READY, Status.PAUSED, Status.DELETED, Status.PROVISIONING)
    ]
    Demo.objects.filter(pk=demos[0].pk).update(more_time_requested_at=timezone.now())
    return demos


def page(client: Client) -> str:
    response = client.get(MY_DEMOS)
    assert response.status_code == 200
    return response.content.decode()


def without_tokens(html: str) -> str:
    return re.sub(r'("X-CSRFToken": ")[^"]+', r"\1-", TOKEN.sub('value="-"', html))


def renders_during(client: Client) -> int:
    """How many rows a view of My demos rendered, rather than took from the kept ones."""
    with mock.patch.object(row_cache, "_render", wraps=row_cache._render) as render:
        page(client)
    return render.call_count


class TestKeptRows:
    def test_a_kept_row_is_the_row_rendered_afresh(
        self, client: Client, alice: User, demos_of_alice: list[Demo]
    ) -> None:
        client.force_login(alice)
        with time_machine.travel(timezone.now(), tick=False):
            with mock.patch.object(caches["fragments"], "get_many", return_value={}):
                fresh = page(client)
            first = page(client)
            assert renders_during(client) == 0
            kept = page(client)
        assert without_tokens(kept) == without_tokens(first) == without_tokens(fresh)
        assert "asked for more time" in kept
        assert "Company provisioning" in kept

    def test_a_kept_row_takes_the_times_of_now(
        self, client: Client, alice: User, template: DemoTemplate, roomy: None
    ) -> None:
        client.force_login(alice)
        ended = make_demo(template, alice, Status.DELETED).ended_at
        with time_machine.travel(ended + timedelta(minutes=5), tick=False):
            assert "Ended 5 min ago" in page(client)
        with time_machine.travel(ended + timedelta(minutes=7, seconds=3), tick=False):
            assert renders_during(client) == 0
            assert "Ended 7 min 3 s ago" in page(client)

    def test_a_change_to_the_demo_renders_its_row_again(
        self, client: Client, alice: User, demos_of_alice: list[Demo]
    ) -> None:
        client.force_login(alice)
        page(client)
        Demo.objects.filter(pk=demos_of_alice[1].pk).update(prospect_company="Initech")
        assert renders_during(client) == 1
        assert "Initech" in page(client)

    def test_each_reader_gets_a_token_of_their_own_that_works(
        self, template: DemoTemplate, alice: User, manager: User, roomy: None
    ) -> None:
        """Two managers see the same rows; the second is served the rows the first caused to be
        kept, and the Extend form on them works with the second's session."""
        demo = make_demo(template, alice, Status.READY)
        other = User.objects.create_user("max", "max@example.com", "pw-12345678")
        other.groups.set(manager.groups.all())
        first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
        first.force_login(manager)
        second.force_login(other)
        seen_first = TOKEN.findall(page(first))
        html = page(second)
        assert renders_during(second) == 0
        extend_url = reverse("demos:action", args=[demo.public_id, "extend"])
        form = html[html.index(f'action="{extend_url}"') :]
        token = TOKEN.search(form).group(1)
        assert token not in seen_first
        before = Demo.objects.get(pk=demo.pk).expires_at
        response = second.post(extend_url, {"csrfmiddlewaretoken": token, "next": MY_DEMOS})
        assert response.status_code == 302
        assert Demo.objects.get(pk=demo.pk).expires_at > before

    def test_a_kept_row_is_found_by_its_print_without_loading_the_demo(
        self, client: Client, alice: User, template: DemoTemplate, roomy: None
    ) -> None:
        for status in (Status.READY, Status.PAUSED, Status.DELETED):
            make_demo(template, alice, status)
        client.force_login(alice)
        page(client)
        with CaptureQueriesContext(connection) as kept:
            page(client)
        # The rows not kept are loaded by their ids, in one query.
        loads = '"demos_demo"."id" IN ('
        assert not [q for q in kept.captured_queries if loads in q["sql"]]
        forget_fragments()
        with CaptureQueriesContext(connection) as afresh:
            page(client)
        assert len([q for q in afresh.captured_queries if loads in q["sql"]]) == 1
        assert len(afresh.captured_queries) == len(kept.captured_queries) + 1

    def test_a_change_to_the_template_or_the_owner_renders_the_row_again(
        self, client: Client, template: DemoTemplate, alice: User, manager: User, roomy: None
    ) -> None:
        """The print covers the template's whole row and the owner's names, not only the
        demo's: a row shows both."""
        make_demo(template, alice, Status.PAUSED)
        client.force_login(manager)
        page(client)
        DemoTemplate.objects.filter(pk=template.pk).update(name="Webshop Pro")  # no updated_at
        assert renders_during(client) == 1
        User.objects.filter(pk=alice.pk).update(first_name="Alicia", last_name="Able")
        assert renders_during(client) == 1
        html = page(client)
        assert "Webshop Pro" in html
        assert "Alicia Able" in html

    def test_a_queued_demo_says_its_place_anew_though_its_row_is_unchanged(
        self, client: Client, template: DemoTemplate, alice: User, bob: User, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 100
        settings.DEMO_MAX_ACTIVE_TOTAL = 1
        make_demo(template, bob, Status.READY)
        ahead = make_demo(template, bob, Status.QUEUED)
        mine = make_demo(template, alice, Status.QUEUED)
        Demo.objects.filter(pk=ahead.pk).update(requested_at=mine.requested_at - timedelta(1))
        client.force_login(alice)
        assert "Number 2 in the queue" in page(client)
        Demo.objects.filter(pk=ahead.pk).update(status=Status.DELETED)
        html = page(client)
        assert "Number 1 in the queue" in html
        assert "Number 2 in the queue" not in html

    def test_the_same_demo_shows_each_reader_their_own_note_and_buttons(
        self, template: DemoTemplate, alice: User, bob: User, roomy: None
    ) -> None:
        """Owner and colleague read the same print; the row says "Shared with you" only to
        the colleague, and a template admin watching the fleet gets no buttons."""
        demo = make_demo(template, alice, Status.READY)
        demo.colleagues.add(bob)
        watcher = User.objects.create_user("watcher", "w@example.com", "pw-12345678")
        watcher.groups.set(Group.objects.filter(name=roles.TEMPLATE_ADMINS))
        views = {}
        for person in (alice, bob, watcher):
            browser = Client()
            browser.force_login(person)
            views[person.username] = page(browser)
        extend = reverse("demos:action", args=[demo.public_id, "extend"])
        assert "Shared with you" not in views["alice"]
        assert "Shared with you by" in views["bob"]
        assert extend in views["alice"]
        assert extend in views["bob"]
        assert extend not in views["watcher"]

    def test_elsewhere_than_on_postgresql_the_print_is_the_columns_hashed(
        self, client: Client, alice: User, demos_of_alice: list[Demo]
    ) -> None:
        client.force_login(alice)
        sqlite = mock.patch.object(connection, "vendor", "sqlite")
        with sqlite, time_machine.travel(timezone.now(), tick=False):
            first = page(client)
            assert renders_during(client) == 0
            Demo.objects.filter(pk=demos_of_alice[1].pk).update(prospect_company="Initech")
            assert renders_during(client) == 1
            again = page(client)
        assert "Initech" in again
        assert without_tokens(again) == without_tokens(first).replace("Company paused", "Initech")

    @pytest.mark.parametrize("typed", ["<!--ended-->", "csrf-placeholder", "<!--left-->"])
    def test_text_a_person_typed_cannot_pass_for_a_hole(
        self, client: Client, alice: User, template: DemoTemplate, roomy: None, typed: str
    ) -> None:
        make_demo(template, alice, Status.DELETED, prospect_company=typed)
        client.force_login(alice)
        page(client)
        html = page(client)  # from the kept row
        shown = typed.replace("<", "&lt;").replace(">", "&gt;")
        assert f"for {shown}" in html


NOTHING_LISTENS = "redis://127.0.0.1:1/0"


class TestSharedBetweenProcesses:
    """The rows one process rendered are found in Redis by the others, and by a worker that
    gunicorn has just started in place of one it retired (a process with nothing kept)."""

    def test_a_fresh_process_takes_the_rows_another_rendered(
        self, client: Client, alice: User, demos_of_alice: list[Demo]
    ) -> None:
        client.force_login(alice)
        with time_machine.travel(timezone.now(), tick=False):
            first = page(client)
            caches["fragments"].clear()  # as in a new worker
            assert renders_during(client) == 0
            again = page(client)
        assert without_tokens(again) == without_tokens(first)
        assert len(caches["fragments"].get_many(_kept_keys())) == len(demos_of_alice)
        # Kept in Redis as long as in a process: longer than the minute of the sessions' copies.
        redis = shared()
        ttls = {redis.ttl(key) for key in redis.scan_iter("portal-fragments:*", count=1000)}
        assert all(60 < ttl <= fragments.KEEP_SECONDS for ttl in ttls), ttls

    def test_with_redis_away_rows_are_rendered_and_kept_in_the_process(
        self, client: Client, alice: User, demos_of_alice: list[Demo], settings: Any
    ) -> None:
        settings.CACHES = {
            **settings.CACHES,
            "shared_fragments": {
                **settings.CACHES["shared_fragments"],
                "LOCATION": NOTHING_LISTENS,
            },
        }
        client.force_login(alice)
        with time_machine.travel(timezone.now(), tick=False):
            assert renders_during(client) == len(demos_of_alice)
            assert renders_during(client) == 0  # kept in this process all the same
            html = page(client)
        assert "Company provisioning" in html
        assert _kept_keys() == []  # nothing reached Redis, and nothing failed for it

    def test_a_new_release_renders_anew_what_the_one_before_kept(
        self, client: Client, alice: User, demos_of_alice: list[Demo]
    ) -> None:
        client.force_login(alice)
        with mock.patch.object(fragments, "release", return_value="the-release-before"):
            assert renders_during(client) == len(demos_of_alice)
        caches["fragments"].clear()  # a new release starts new processes
        assert renders_during(client) == len(demos_of_alice), "nothing taken from the one before"
        assert renders_during(client) == 0

    def test_the_release_digest_follows_every_file_it_reads(self, tmp_path: Path) -> None:
        template, code = tmp_path / "row.html", tmp_path / "rows.py"
        template.write_text("<li>{{ demo }}</li>")
        code.write_text("LABEL = 'Ready'")
        before = fragments.digest_of([template, code])
        assert fragments.digest_of([code, template]) == before  # in any order
        code.write_text("LABEL = 'Running'")
        assert fragments.digest_of([template, code]) != before


def _kept_keys() -> list[str]:
    """The keys of the rows kept in Redis now."""
    prefix = "portal-fragments:1:"
    return [
        key.decode().removeprefix(prefix) for key in shared().scan_iter(f"{prefix}*", count=1000)
    ]


START_TOKEN = re.compile(r'name="start_token" value="([^"]+)"')


class TestKeptCatalogCards:
    def test_each_view_gets_fresh_start_tokens_and_a_kept_card_starts_a_demo(
        self, template: DemoTemplate, alice: User, roomy: None
    ) -> None:
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(alice)
        first = page_of_catalog(browser)
        with mock.patch.object(catalog, "render_to_string", wraps=catalog.render_to_string) as r:
            second = page_of_catalog(browser)
        assert r.call_count == 0, "the card was kept"
        assert START_TOKEN.findall(first) != START_TOKEN.findall(second)
        assert without_tokens(START_TOKEN.sub("-", first)) == without_tokens(
            START_TOKEN.sub("-", second)
        )
        form = second[second.index(f'action="{reverse("demos:start", args=[template.slug])}"') :]
        response = browser.post(
            reverse("demos:start", args=[template.slug]),
            {
                "csrfmiddlewaretoken": TOKEN.search(form).group(1),
                "start_token": START_TOKEN.search(form).group(1),
                "lifetime": int(template.default_lifetime.total_seconds()),
            },
        )
        assert response.status_code == 302
        assert Demo.objects.filter(owner=alice).count() == 1

    def test_cards_rendered_afresh_read_their_charts_once_and_kept_ones_not_at_all(
        self, client: Client, template: DemoTemplate, alice: User
    ) -> None:
        for slug in ("crm", "shop", "wiki"):
            make_template(slug, name=slug.title())
        client.force_login(alice)
        client.get(reverse("demos:catalog"))  # the session and user cached, as for a real reader
        forget_fragments()
        with CaptureQueriesContext(connection) as afresh:
            html = page_of_catalog(client)
        charts = [q for q in afresh.captured_queries if "templatechart" in q["sql"]]
        assert len(charts) == 1, "one query for the charts of all four cards"
        assert "Crm" in html
        assert "Wiki" in html
        with CaptureQueriesContext(connection) as kept:
            page_of_catalog(client)
        assert not [q for q in kept.captured_queries if "templatechart" in q["sql"]]
        assert len(kept.captured_queries) == len(afresh.captured_queries) - 1

    def test_a_card_changes_with_its_template(
        self, client: Client, template: DemoTemplate, alice: User
    ) -> None:
        client.force_login(alice)
        page_of_catalog(client)
        template.name = "Webshop Pro"
        template.save()
        assert "Webshop Pro" in page_of_catalog(client)


def page_of_catalog(client: Client) -> str:
    response = client.get(reverse("demos:catalog"))
    assert response.status_code == 200
    return response.content.decode()


FLEET = "/fleet/"


class TestKeptFleetRows:
    def test_kept_rows_are_the_rows_rendered_afresh_with_the_times_of_now(
        self, template: DemoTemplate, alice: User, manager: User, roomy: None
    ) -> None:
        for status in (Status.READY, Status.PAUSED, Status.FAILED, Status.PROVISIONING):
            make_demo(template, alice, status, error_message="Chart shop failed: pull error")
        browser = Client()
        browser.force_login(manager)
        now = timezone.now()
        with time_machine.travel(now, tick=False):
            fresh = browser.get(FLEET).content.decode()
        with time_machine.travel(now + timedelta(minutes=3), tick=False):
            with mock.patch.object(rows, "_render", wraps=rows._render) as render:
                later = browser.get(FLEET).content.decode()
            forget_fragments()
            afresh = browser.get(FLEET).content.decode()
        assert render.call_count == 0, "every row was kept"
        assert without_tokens(later) == without_tokens(afresh)
        assert without_tokens(later) != without_tokens(fresh)  # the times moved on
        assert "Chart shop failed: pull error" in later

    def test_a_change_to_a_demo_renders_its_row_again(
        self, template: DemoTemplate, alice: User, manager: User, roomy: None
    ) -> None:
        demo = make_demo(template, alice, Status.PAUSED)
        browser = Client()
        browser.force_login(manager)
        browser.get(FLEET)
        Demo.objects.filter(pk=demo.pk).update(prospect_company="Initech")
        with mock.patch.object(rows, "_render", wraps=rows._render) as render:
            page = browser.get(FLEET).content.decode()
        assert render.call_count == 1
        assert "Initech" in page


class TestKeptNewLinkForm:
    """The demo page's blank "New link" form is the same for everyone in one time zone: its
    fields are rendered once and kept (demos.sharing.views.new_link_fields)."""

    @staticmethod
    def fields_rendered(browser: Client, url: str) -> tuple[str, int]:
        with mock.patch.object(
            sharing_views, "render_to_string", wraps=sharing_views.render_to_string
        ) as render:
            response = browser.get(url)
        assert response.status_code == 200
        return response.content.decode(), render.call_count

    def test_a_kept_form_is_the_form_rendered_afresh(
        self, template: DemoTemplate, alice: User, roomy: None
    ) -> None:
        demo = make_demo(template, alice, Status.READY)
        browser = Client()
        browser.force_login(alice)
        url = reverse("demos:detail", args=[demo.public_id])
        forget_fragments()
        afresh, first = self.fields_rendered(browser, url)
        kept, later = self.fields_rendered(browser, url)
        assert (first, later) == (1, 0)
        assert without_tokens(kept) == without_tokens(afresh)
        assert 'name="recipient"' in kept
        assert re.search(r'value="follow"[^>]* checked', kept), "the demo's end is chosen"

    def test_each_time_zone_has_its_own_and_a_form_with_errors_is_its_own(
        self, template: DemoTemplate, alice: User, bob: User, roomy: None
    ) -> None:
        from demos.sales import account

        account.set_time_zone(user=bob, time_zone="America/New_York")
        demos = {person: make_demo(template, person, Status.READY) for person in (alice, bob)}
        pages = {}
        for person, demo in demos.items():
            browser = Client()
            browser.force_login(person)
            browser.get(reverse("demos:detail", args=[demo.public_id]))  # keeps the blank form
            pages[person] = browser.get(reverse("demos:detail", args=[demo.public_id]))
            if person == alice:
                invalid = browser.post(
                    reverse("demos:create_link", args=[demo.public_id]),
                    {"recipient": "Pat of Initech", "ends": "fixed"},
                    HTTP_HX_REQUEST="true",
                ).content.decode()
                after = browser.get(reverse("demos:detail", args=[demo.public_id]))
        assert "Time (UTC)" in pages[alice].content.decode()
        assert "Time (America/New York)" in pages[bob].content.decode()
        assert "Time (UTC)" not in pages[bob].content.decode()
        # Sent back with what was typed and why it was refused, never from the kept form.
        assert 'value="Pat of Initech"' in invalid
        assert "Choose when the link stops working" in invalid
        assert "Pat of Initech" not in after.content.decode()
        assert "Choose when the link stops working" not in after.content.decode()
