"""Pages and sweeps that stay cheap with a year of history: paging, the row poll's 204, the kept
time-to-ready figures, and the sweep's batches that cannot hide a demo behind others."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from demos import paging
from demos.engine import reconcile, speeds
from demos.engine.lifecycle import deadline
from demos.fleet import exports, selectors
from demos.fleet.views import FLEET_PAGE_SIZE
from demos.models import Demo, DemoTemplate, Status, TemplateSpeed
from demos.sales.pages import OWNERS_CACHE_KEY, OWNERS_KEEP_SECONDS
from demos.sales.sections import SECTION_PAGE_SIZES
from tests.conftest import make_demo, make_template


@pytest.fixture
def roomy(settings: Any) -> None:
    settings.DEMO_MAX_ACTIVE_PER_USER = 1000
    settings.DEMO_MAX_ACTIVE_TOTAL = 1000


def html_of(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def section(html: str, key: str) -> str:
    start = html.index(f'id="section-{key}"')
    end = html.find('<section class="demo-section"', start)
    return html[start : end if end != -1 else len(html)]


# --- Paging -------------------------------------------------------------------------------------


class TestPaging:
    def test_a_page_reads_one_row_more_than_it_shows_and_never_counts(
        self, template: DemoTemplate, alice: User, django_assert_num_queries: Any
    ) -> None:
        for _ in range(3):
            make_demo(template, alice, Status.DELETED)
        demos = Demo.objects.order_by("pk")
        with django_assert_num_queries(1) as queries:
            first = paging.page_of(demos, _query(""), size=2)
        assert "COUNT" not in queries.captured_queries[0]["sql"]
        assert "LIMIT 3" in queries.captured_queries[0]["sql"]
        assert (len(first), first.has_next, first.has_previous) == (2, True, False)
        second = paging.page_of(demos, _query("page=2"), size=2)
        assert (len(second), second.has_next, second.has_previous) == (1, False, True)
        assert [d.pk for d in [*first, *second]] == list(demos.values_list("pk", flat=True))

    @pytest.mark.parametrize("raw", ["", "0", "-1", "abc", "²", "501", "1" * 30])
    def test_an_unreadable_page_number_means_the_first(self, raw: str) -> None:
        assert paging.page_number(_query(f"page={raw}"), "page") == 1

    def test_the_neighbours_keep_the_other_parameters(
        self, template: DemoTemplate, alice: User
    ) -> None:
        for _ in range(3):
            make_demo(template, alice, Status.DELETED)
        params = _query("owner=bob&ended_page=2")
        middle = paging.page_of(Demo.objects.order_by("pk"), params, "ended_page", size=1)
        assert (middle.number, middle.is_paged) == (2, True)
        assert middle.previous_query == "?owner=bob"  # page 1 carries no number
        assert middle.next_query == "?owner=bob&ended_page=3"
        last = paging.page_of(Demo.objects.order_by("pk"), _query("ended_page=3"), "ended_page", 1)
        assert (last.has_next, last.next_query) == (False, "")


def _query(text: str) -> Any:
    from django.http import QueryDict

    return QueryDict(text)


class TestMyDemosPages:
    def test_a_manager_pages_through_everyones_history(
        self, template: DemoTemplate, alice: User, manager: User, client: Client, roomy: None
    ) -> None:
        size = SECTION_PAGE_SIZES["ended"]
        ended = [make_demo(template, alice, Status.DELETED) for _ in range(size + 2)]
        client.force_login(manager)
        first = section(html_of(client, reverse("demos:my_demos")), "ended")
        assert first.count('<li id="demo-row-') == size
        assert 'href="?ended_page=2"' in first
        assert 'rel="prev"' not in first
        second = section(html_of(client, reverse("demos:my_demos") + "?ended_page=2"), "ended")
        assert second.count('<li id="demo-row-') == 2
        assert 'rel="prev"' in second
        # Most recently ended first: the first two ended are the ones left for page 2.
        for demo in ended[:2]:
            assert str(demo.public_id) in second

    def test_a_section_past_its_last_page_says_so(
        self, template: DemoTemplate, alice: User, client: Client
    ) -> None:
        make_demo(template, alice, Status.DELETED)
        client.force_login(alice)
        html = html_of(client, reverse("demos:my_demos") + "?ended_page=7")
        assert "Nothing more here." in section(html, "ended")

    def test_the_owner_filter_lists_only_people_with_demos(
        self, template: DemoTemplate, alice: User, bob: User, manager: User, client: Client
    ) -> None:
        make_demo(template, alice, Status.DELETED)
        client.force_login(manager)
        html = html_of(client, reverse("demos:my_demos"))
        options = re.findall(r'<option value="([^"]*)"', html)
        assert options == ["", "alice"]

    def test_the_owner_filter_is_kept_a_minute_and_any_owner_filters_at_once(
        self, template: DemoTemplate, alice: User, bob: User, manager: User, client: Client
    ) -> None:
        make_demo(template, alice, Status.DELETED)
        client.force_login(manager)
        html_of(client, reverse("demos:my_demos"))
        bobs = make_demo(template, bob, Status.DELETED)
        kept = html_of(client, reverse("demos:my_demos"))
        assert re.findall(r'<option value="([^"]*)"', kept) == ["", "alice"]
        key = cache.make_and_validate_key(OWNERS_CACHE_KEY)
        assert 0 < cache._cache.get_client(key).ttl(key) <= OWNERS_KEEP_SECONDS == 60
        by_bob = html_of(client, reverse("demos:my_demos") + "?owner=bob")
        assert str(bobs.public_id) in by_bob
        cache.delete(OWNERS_CACHE_KEY)  # as a minute later
        later = html_of(client, reverse("demos:my_demos"))
        assert re.findall(r'<option value="([^"]*)"', later) == ["", "alice", "bob"]


class TestFleetPages:
    def test_the_overview_pages_its_demos_and_keeps_the_filter(
        self, template: DemoTemplate, alice: User, manager: User, client: Client, roomy: None
    ) -> None:
        for _ in range(FLEET_PAGE_SIZE + 1):
            make_demo(template, alice, Status.PAUSED)
        client.force_login(manager)
        html = html_of(client, reverse("demos:fleet") + "?status=paused")
        assert html.count('name="demos" value=') == FLEET_PAGE_SIZE
        assert 'href="?status=paused&amp;page=2"' in html
        # The count by status is of all of them, not of the page.
        assert f'data-status="paused">{FLEET_PAGE_SIZE + 1}<' in html
        html = html_of(client, reverse("demos:fleet") + "?status=paused&page=2")
        assert html.count('name="demos" value=') == 1

    def test_failures_are_listed_up_to_a_bound_and_counted_in_full(
        self,
        template: DemoTemplate,
        alice: User,
        manager: User,
        client: Client,
        roomy: None,
        monkeypatch: Any,
    ) -> None:
        monkeypatch.setattr(selectors, "FAILURES_SHOWN", 2)
        for _ in range(3):
            make_demo(template, alice, Status.FAILED)
        client.force_login(manager)
        html = html_of(client, reverse("demos:fleet"))
        failures = html[html.index('id="failures-heading"') : html.index('id="speed-heading"')]
        assert '<span class="count">3</span>' in failures
        assert "The 2 most recent of 3" in failures


# --- The row poll -------------------------------------------------------------------------------


class TestRowPoll:
    def url(self, demo: Demo, version: str = "") -> str:
        url = reverse("demos:status", args=[demo.public_id]) + "?fragment=row"
        return url + (f"&v={version}" if version else "")

    def test_nothing_new_is_204_and_news_sends_the_row_again(
        self, template: DemoTemplate, alice: User, client: Client
    ) -> None:
        demo = make_demo(template, alice, Status.PROVISIONING)
        client.force_login(alice)
        first = client.get(self.url(demo))
        assert first.status_code == 200
        version = re.search(r"v=([0-9a-f]{16})", first.content.decode()).group(1)
        assert client.get(self.url(demo, version)).status_code == 204
        Demo.objects.filter(pk=demo.pk).update(prospect_company="Changed Co")
        again = client.get(self.url(demo, version))
        assert again.status_code == 200
        assert "Changed Co" in again.content.decode()
        assert f"v={version}" not in again.content.decode()

    def test_the_204_is_only_for_those_who_may_see_the_demo(
        self, template: DemoTemplate, alice: User, bob: User, client: Client
    ) -> None:
        demo = make_demo(template, alice, Status.PROVISIONING)
        client.force_login(alice)
        version = re.search(r"v=([0-9a-f]{16})", client.get(self.url(demo)).content.decode())
        client.force_login(bob)
        assert client.get(self.url(demo, version.group(1))).status_code == 404

    def test_a_settled_demo_stops_the_polling_even_with_a_current_version(
        self, template: DemoTemplate, alice: User, client: Client
    ) -> None:
        demo = make_demo(template, alice, Status.DELETED)
        client.force_login(alice)
        response = client.get(self.url(demo))
        version = re.search(r"v=([0-9a-f]{16})", response.content.decode())
        assert response.status_code == 286
        assert version is None  # a settled row does not poll at all

    def test_a_starting_row_counts_its_clock_in_the_browser(
        self, template: DemoTemplate, alice: User, client: Client
    ) -> None:
        make_demo(template, alice, Status.PROVISIONING)
        client.force_login(alice)
        html = html_of(client, reverse("demos:my_demos"))
        assert re.search(r'Requested <span data-elapsed="[0-9.]+"', html)


# --- Typical time to ready ----------------------------------------------------------------------


class TestKeptSpeeds:
    def test_each_demo_that_becomes_ready_refreshes_its_templates_figure(
        self, template: DemoTemplate, alice: User
    ) -> None:
        assert speeds.typical_times_to_ready([template.pk]) == {}
        for seconds in (10, 20, 60):
            make_demo(template, alice, ready_after=timedelta(seconds=seconds))
        speed = TemplateSpeed.objects.get(template=template)
        assert (speed.typical_time_to_ready, speed.samples) == (timedelta(seconds=20), 3)

    def test_a_starting_demo_reads_the_figure_cached_and_sees_a_refresh_at_once(
        self,
        template: DemoTemplate,
        alice: User,
        django_assert_num_queries: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        make_demo(template, alice, ready_after=timedelta(seconds=30))
        assert speeds.typical_time_to_ready(template.pk) == timedelta(seconds=30)
        with django_assert_num_queries(0):  # a poll's read, while cached
            assert speeds.typical_time_to_ready(template.pk) == timedelta(seconds=30)
        with django_capture_on_commit_callbacks(execute=True):
            make_demo(template, alice, ready_after=timedelta(seconds=90))
        assert speeds.typical_time_to_ready(template.pk) == timedelta(seconds=60)

    def test_only_the_latest_demos_people_waited_for_count(
        self, template: DemoTemplate, alice: User, roomy: None
    ) -> None:
        for _ in range(speeds.RECENT_DEMOS):
            make_demo(template, alice, ready_after=timedelta(seconds=100))
        for _ in range(speeds.RECENT_DEMOS // 2 + 1):
            make_demo(template, alice, ready_after=timedelta(seconds=5))
        # A spare nobody waited for is the newest, yet does not count (nor does it refresh).
        make_demo(template, None, is_spare=True, ready_after=timedelta(seconds=1))
        speed = speeds.refresh(template.pk)
        assert speed.samples == speeds.RECENT_DEMOS
        assert speed.typical_time_to_ready == timedelta(seconds=5)

    def test_the_catalog_reads_the_kept_figure_in_one_query(
        self, template: DemoTemplate, alice: User, django_assert_num_queries: Any
    ) -> None:
        other = make_template("crm", name="CRM")
        make_demo(template, alice, ready_after=timedelta(seconds=42))
        with django_assert_num_queries(1):
            figures = speeds.typical_times_to_ready([template.pk, other.pk])
        assert figures == {template.pk: timedelta(seconds=42)}


class TestFleetSpeedsCache:
    def test_the_fleet_figures_are_shared_for_a_minute(
        self, template: DemoTemplate, alice: User
    ) -> None:
        from django.core.cache import cache

        make_demo(template, alice, ready_after=timedelta(seconds=30))
        first = selectors.time_to_ready_recent()
        make_demo(template, alice, ready_after=timedelta(seconds=90))
        # Within the minute the shared figures stand, though a demo became ready since.
        assert [row.count for row in selectors.time_to_ready_recent()] == [first[0].count]
        # A minute on, the first view computes them anew ...
        with time_machine.travel(timezone.now() + timedelta(seconds=61)):
            assert [row.count for row in selectors.time_to_ready_recent()] == [2]
        cache.delete(selectors.TIME_TO_READY_CACHE_KEY)  # nothing kept: computed by the view
        assert [row.count for row in selectors.time_to_ready_recent()] == [2]

    def test_views_while_one_computes_them_anew_are_given_the_figures_before(
        self, template: DemoTemplate, alice: User
    ) -> None:
        from django.core.cache import cache

        make_demo(template, alice, ready_after=timedelta(seconds=30))
        selectors.time_to_ready_recent()
        make_demo(template, alice, ready_after=timedelta(seconds=90))
        later = timezone.now() + timedelta(seconds=61)
        refresh = f"{selectors.TIME_TO_READY_CACHE_KEY}:refresh"
        with time_machine.travel(later), mock.patch.object(selectors, "time_to_ready") as compute:
            cache.add(refresh, 1, 60)  # another view is computing them
            assert [row.count for row in selectors.time_to_ready_recent()] == [1]
            compute.assert_not_called()
        cache.delete(refresh)  # it failed half-way, or its claim ran out: the next view computes
        with time_machine.travel(later):
            assert [row.count for row in selectors.time_to_ready_recent()] == [2]
            assert [row.count for row in selectors.time_to_ready_recent()] == [2]

    def test_figures_nobody_looked_at_for_a_while_are_given_while_one_computes_them_anew(
        self, template: DemoTemplate, alice: User
    ) -> None:
        from django.core.cache import cache

        make_demo(template, alice, ready_after=timedelta(seconds=30))
        selectors.time_to_ready_recent()
        key = cache.make_and_validate_key(selectors.TIME_TO_READY_CACHE_KEY)
        # Kept by Redis for the hour, not for a few times its minute: so a view that comes
        # after a quiet spell, while another computes them, is not left to compute its own.
        assert cache._cache.get_client(key).ttl(key) > 50 * 60
        make_demo(template, alice, ready_after=timedelta(seconds=90))
        refresh = f"{selectors.TIME_TO_READY_CACHE_KEY}:refresh"
        quiet_spell = timezone.now() + timedelta(minutes=20)
        with (
            time_machine.travel(quiet_spell),
            mock.patch.object(selectors, "time_to_ready") as compute,
        ):
            cache.add(refresh, 1, 60)  # another view is computing them
            assert [row.count for row in selectors.time_to_ready_recent()] == [1]
            compute.assert_not_called()

    def test_without_redis_each_view_computes_its_own(
        self, template: DemoTemplate, alice: User
    ) -> None:
        make_demo(template, alice, ready_after=timedelta(seconds=30))
        broken = mock.Mock(side_effect=RedisConnectionError("Redis is down"))
        with mock.patch.object(selectors.cache, "get", broken):
            rows = selectors.time_to_ready_recent()
        assert [(row.template.pk, row.count) for row in rows] == [(template.pk, 1)]


# --- The sweep's batches ------------------------------------------------------------------------


class TestSweepBatches:
    def test_demos_within_a_long_deadline_do_not_hide_those_past_a_short_one(
        self, alice: User, rq_redis: Any, roomy: None, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(reconcile, "BATCH", 3)
        patient = make_template("patient", provisioning_timeout=timedelta(hours=3))
        hasty = make_template("hasty", name="Hasty", provisioning_timeout=timedelta(minutes=5))
        # The patient ones started first, so they come first oldest-first: more than a batch.
        with time_machine.travel(timezone.now() - timedelta(minutes=30), tick=False):
            for _ in range(7):
                make_demo(patient, alice, Status.INSTALLING)
        stuck = make_demo(hasty, alice, Status.INSTALLING)
        with time_machine.travel(deadline(stuck) + timedelta(seconds=1), tick=False):
            assert reconcile.fail_stuck(timezone.now()) == 1
        stuck.refresh_from_db()
        assert stuck.status == Status.FAILED
        assert not Demo.objects.filter(template=patient, status=Status.FAILED).exists()

    def test_reminders_already_sent_do_not_hide_the_rest(
        self, template: DemoTemplate, alice: User, rq_redis: Any, roomy: None, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(reconcile, "BATCH", 2)
        demos = [make_demo(template, alice) for _ in range(5)]
        soon = max(d.expires_at for d in demos)
        lead = min(reconcile.settings.DEMO_EXPIRY_WARNINGS)
        with time_machine.travel(soon - lead + timedelta(seconds=1), tick=False):
            assert reconcile.warn_before_expiry(timezone.now()) == 5
            assert reconcile.warn_before_expiry(timezone.now()) == 0

    def test_one_pass_is_bounded(
        self, template: DemoTemplate, alice: User, roomy: None, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(reconcile, "BATCH", 2)
        monkeypatch.setattr(reconcile, "PASS_LIMIT", 4)
        for _ in range(7):
            make_demo(template, alice, Status.DELETED)
        seen = list(reconcile.in_batches(Demo.objects.all(), "requested_at"))
        assert len(seen) == 4
        assert [d.pk for d in seen] == list(
            Demo.objects.order_by("requested_at", "pk").values_list("pk", flat=True)[:4]
        )


# --- The CSV export -----------------------------------------------------------------------------


class TestExportStreaming:
    def test_the_header_leaves_alone_and_rows_in_pieces(self) -> None:
        rows = [["a", "b"], *([index, "=x"] for index in range(5))]
        pieces = list(exports.stream_csv(rows, lines_per_piece=2))
        assert pieces == ["a,b\r\n", "0,'=x\r\n1,'=x\r\n", "2,'=x\r\n3,'=x\r\n", "4,'=x\r\n"]

    @pytest.mark.django_db(transaction=True)
    def test_rows_stream_in_a_transaction_that_a_cancelled_download_ends(
        self, template: DemoTemplate, alice: User
    ) -> None:
        """Outside a transaction the export's cursor would be WITH HOLD, which makes PostgreSQL
        read and store every row before the first leaves (exports._streamed)."""
        for _ in range(3):
            make_demo(template, alice, Status.DELETED)
        pieces = exports.stream_csv(exports.demo_rows(), first_piece=1)
        assert next(pieces).startswith("demo_id,")
        assert next(pieces).count("\n") == 1
        assert connection.in_atomic_block
        pieces.close()  # the browser cancelled: the server closes the response
        assert not connection.in_atomic_block
        assert connection.get_autocommit()

    def test_pieces_grow_from_a_few_lines_so_the_first_rows_leave_at_once(self) -> None:
        rows = [["n"], *([index] for index in range(200))]
        pieces = list(exports.stream_csv(rows, lines_per_piece=64, first_piece=2))
        assert [piece.count("\n") for piece in pieces] == [1, 2, 8, 32, 64, 64, 30]

    def test_demos_are_read_as_tuples_of_their_columns_only(
        self, template: DemoTemplate, alice: User, django_assert_num_queries: Any
    ) -> None:
        demo = make_demo(template, alice)
        with django_assert_num_queries(1) as queries:
            header, row = list(exports.demo_rows())
        sql = queries.captured_queries[0]["sql"]
        assert '"spec"' not in sql
        assert '"progress"' not in sql
        assert len(row) == len(header)
        assert (row[0], row[2], row[4], row[9]) == (demo.public_id, "webshop", "alice", "no")


# --- Catalog fragments ----------------------------------------------------------------------


class TestCatalogFragments:
    def test_a_published_edit_shows_at_once_and_the_readiness_is_never_cached(
        self, template: DemoTemplate, alice: User, client: Client
    ) -> None:
        from demos.studio import versions

        def publish(description: str, chart_version: str) -> None:
            document = versions.working_content(template)
            document["description"] = description
            document["charts"][0]["version"] = chart_version
            versions.publish_document(
                template=template, document=document, actor=versions.Actor(label="t"), note=""
            )

        client.force_login(alice)
        publish("The first description.", "1.0.0")
        first = html_of(client, reverse("demos:catalog"))
        assert "The first description." in first
        assert "(first start)" in first
        publish("A brand new description.", "2.5.0")
        html = html_of(client, reverse("demos:catalog"))
        assert "A brand new description." in html
        assert "The first description." not in html
        make_demo(template, alice, ready_after=timedelta(seconds=42))
        assert "about 42 s" in html_of(client, reverse("demos:catalog"))
