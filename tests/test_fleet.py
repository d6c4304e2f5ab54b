"""The fleet pages: numbers, bulk actions through the lifecycle, CSV exports, activity feed."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rq.job import Job

from demos.engine import lifecycle
from demos.fleet import selectors
from demos.fleet.exports import safe_cell
from demos.models import Demo, DemoEvent, DemoTemplate, ShareLink, ShareLinkVisit, Status
from tests.conftest import change_url, form_data, make_demo, make_template

FLEET = reverse("demos:fleet")
BULK = reverse("demos:fleet_bulk")


def ready_in(seconds: float, template: DemoTemplate, owner: Any, days_ago: float = 1) -> Demo:
    """A demo started `days_ago` that took `seconds` to become ready."""
    started = timezone.now() - timedelta(days=days_ago)
    return make_demo(template, owner, at=started, ready_after=timedelta(seconds=seconds))


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def manager_client(client: Client, manager: Any) -> Client:
    client.force_login(manager)
    return client


class TestNumbers:
    def test_it_computes_median_and_p95_per_template(
        self, template: DemoTemplate, alice: Any, manager_client: Client
    ) -> None:
        crm = make_template("crm", charts=1)
        for seconds in (10, 40, 20, 30):
            ready_in(seconds, template, alice)
        ready_in(60, crm, alice)
        ready_in(1000, template, alice, days_ago=40)  # outside the window
        make_demo(template, alice, Status.QUEUED)  # never became ready

        rows = {row.template.slug: row for row in selectors.time_to_ready()}
        assert (rows["webshop"].count, rows["webshop"].median, rows["webshop"].p95) == (
            4,
            timedelta(seconds=25),
            timedelta(seconds=38.5),
        )
        assert (rows["crm"].count, rows["crm"].median, rows["crm"].p95) == (
            1,
            timedelta(seconds=60),
            timedelta(seconds=60),
        )
        page = manager_client.get(FLEET).content.decode()
        assert 'data-seconds="25.0">25 s' in page
        assert 'data-seconds="38.5">38 s' in page

    def test_postgresql_and_python_work_out_the_same_figures(
        self, template: DemoTemplate, alice: Any
    ) -> None:
        """PostgreSQL's percentile_cont and demos.durations.percentile interpolate alike, to the
        microsecond, on odd and even counts and uneven samples."""
        if not selectors._has_percentiles():
            pytest.skip("percentile_cont is PostgreSQL's")
        crm = make_template("crm", charts=1)
        for seconds in (12.5, 40.25, 19.75, 31, 7.125, 300.5, 64):
            ready_in(seconds, template, alice)
        for seconds in (60.000002, 61.5):
            ready_in(seconds, crm, alice)
        rows = Demo.objects.filter(time_to_ready__isnull=False).order_by()
        in_database = selectors._percentiles_in_database(rows)
        assert in_database == selectors._percentiles_here(rows)
        assert in_database[template.pk][0] == 7
        assert in_database[crm.pk][1] == timedelta(seconds=60, microseconds=750001)

    def test_it_interpolates_percentiles_between_ranks(self) -> None:
        values = [timedelta(seconds=s) for s in range(1, 21)]
        assert selectors.percentile(values, 50) == timedelta(seconds=10.5)
        assert selectors.percentile(values, 95) == timedelta(seconds=19.05)
        assert selectors.percentile(values[:1], 95) == timedelta(seconds=1)
        with pytest.raises(ValueError, match="no samples"):
            selectors.percentile([], 50)

    def test_it_lists_active_and_kept_demos_and_counts_them_by_status(
        self, template: DemoTemplate, alice: Any, bob: Any, manager_client: Client
    ) -> None:
        now = timezone.now()
        past_retention = make_demo(template, bob, Status.ARCHIVED, at=now - timedelta(days=15))
        listed = [
            make_demo(template, alice),
            make_demo(template, bob),
            make_demo(template, alice, Status.QUEUED),
            make_demo(template, bob, Status.INSTALLING),
            make_demo(template, alice, Status.PAUSED),
            make_demo(template, bob, Status.ARCHIVED),
            make_demo(template, alice, Status.FAILED, error_message="Chart app0 failed"),
        ]
        hidden = [
            make_demo(template, alice, Status.DELETED),
            lifecycle.discard_kept(past_retention),
            make_demo(template, bob, Status.FAILED, at=now - timedelta(days=8)),
            make_demo(template, None, is_spare=True),
        ]
        assert set(selectors.fleet_demos()) == set(listed)
        assert selectors.status_counts(selectors.fleet_demos()) == [
            (Status.QUEUED, 1),
            (Status.INSTALLING, 1),
            (Status.READY, 2),
            (Status.PAUSED, 1),
            (Status.ARCHIVED, 1),
            (Status.FAILED, 1),
        ]
        page = manager_client.get(FLEET).content.decode()
        for demo in listed:
            assert demo.cluster_name in page
        for demo in hidden:
            assert demo.cluster_name not in page
        assert '<span class="count" data-status="ready">2</span>' in page

        only_ready = manager_client.get(FLEET, {"status": "ready"}).content.decode()
        assert listed[0].cluster_name in only_ready
        assert listed[2].cluster_name not in only_ready

    def test_it_shows_failures_of_the_last_day_with_their_cause(
        self, template: DemoTemplate, alice: Any, manager_client: Client
    ) -> None:
        now, hours = timezone.now(), lambda n: timedelta(hours=n)
        recent, retried, old = (
            make_demo(template, alice, Status.FAILED, at=now - hours_ago, error_message=message)
            for message, hours_ago in (
                ("Chart shop failed: image pull error for ghcr.io/acme/shop:1.2", hours(2)),
                ("Cluster did not start within 15 min", hours(20)),
                ("Something long ago", hours(30)),
            )
        )
        for since_retried in (retried, old):
            lifecycle.retry_demo(demo=since_retried, actor=lifecycle.Actor.of(alice))
        assert [event.demo for event in selectors.recent_failures()] == [recent, retried]
        page = manager_client.get(FLEET).content.decode()
        assert "image pull error for ghcr.io/acme/shop:1.2" in page
        assert "Cluster did not start within 15 min" in page
        assert "Something long ago" not in page

    def test_it_shows_capacity_and_warm_pools(
        self, template: DemoTemplate, alice: Any, manager_client: Client, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_TOTAL = 10
        pooled = make_template("crm", charts=0, warm_pool_size=3, max_concurrent=4)
        make_demo(template, alice)
        make_demo(pooled, alice)
        make_demo(pooled, None, is_spare=True)
        make_demo(pooled, None, is_spare=True)
        make_demo(pooled, None, Status.PROVISIONING, is_spare=True)
        make_demo(template, alice, Status.QUEUED)

        summary = selectors.capacity_summary()
        assert (summary.active, summary.limit, summary.queued) == (5, 10, 1)
        assert [(row.template, row.active, row.limit) for row in summary.templates] == [
            (pooled, 1, 4)
        ]
        [pool] = selectors.warm_pools()
        assert (pool.template, pool.ready, pool.starting, pool.wanted) == (pooled, 2, 1, 3)

        page = manager_client.get(FLEET).content.decode()
        assert "5 of 10" in page
        assert "2 ready of 3" in page
        assert "Crm: 1 of 4" in page

        DemoTemplate.objects.filter(pk=pooled.pk).update(warm_pool_schedule="0 0 31 2 *")
        [pool] = selectors.warm_pools()
        assert (pool.ready, pool.wanted, pool.size) == (2, 0, 3), "outside its schedule"
        # The page's figures are shared for a few seconds (fleet_figures_recent).
        assert "keeps 3 while its schedule is on" not in manager_client.get(FLEET).content.decode()
        selectors.forget_fleet_figures()
        assert "keeps 3 while its schedule is on" in manager_client.get(FLEET).content.decode()

    def test_it_links_the_job_queue_for_superusers_only(
        self, client: Client, manager: Any, template_admin: Any
    ) -> None:
        for user in (manager, template_admin):
            client.force_login(user)
            assert "/admin/rq/" not in client.get(FLEET).content.decode()
        template_admin.is_superuser = True
        template_admin.save()
        client.force_login(template_admin)
        assert 'href="/admin/rq/"' in client.get(FLEET).content.decode()


class TestSharedFigures:
    def test_views_within_seconds_share_the_figures_and_a_bulk_action_drops_them(
        self, template: DemoTemplate, alice: Any, manager_client: Client, rq_redis: Any
    ) -> None:
        running = make_demo(template, alice)
        assert 'data-status="ready">1<' in manager_client.get(FLEET).content.decode()
        make_demo(template, alice)
        # Within FLEET_FIGURES_CACHE_SECONDS another view reads the same figures ...
        assert 'data-status="ready">1<' in manager_client.get(FLEET).content.decode()
        # ... but the manager's own bulk action is seen on the page they come back to.
        response = manager_client.post(
            BULK,
            {"action": "delete", "demos": [str(running.public_id)], "confirmed": "1"},
            follow=True,
        )
        page = response.content.decode()
        assert 'data-status="ready">1<' in page
        assert 'data-status="deleting">1<' in page


class TestBulkActions:
    def test_it_asks_for_confirmation_before_changing_anything(
        self, template: DemoTemplate, alice: Any, bob: Any, manager_client: Client
    ) -> None:
        demos = [make_demo(template, alice), make_demo(template, bob)]
        response = manager_client.post(
            BULK, {"action": "delete", "demos": [str(d.public_id) for d in demos]}
        )
        assert response.status_code == 200
        page = response.content.decode()
        assert "Delete 2 demos?" in page
        assert 'name="confirmed"' in page
        for demo in demos:
            assert demo.cluster_name in page
            demo.refresh_from_db()
            assert demo.status == Status.READY

    def test_it_extends_each_demo_through_the_lifecycle_and_reports_each_outcome(
        self,
        template: DemoTemplate,
        alice: Any,
        bob: Any,
        manager: Any,
        manager_client: Client,
        rq_redis: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        fresh = make_demo(template, alice)
        maxed = make_demo(template, bob, extensions=template.max_extensions)
        stopped = make_demo(template, bob, Status.PAUSED)
        with django_capture_on_commit_callbacks(execute=True):
            response = manager_client.post(
                BULK,
                {
                    "action": "extend",
                    "confirmed": "on",
                    "demos": [str(d.public_id) for d in (fresh, maxed, stopped)],
                },
            )
        assert response.status_code == 302
        assert response["Location"] == FLEET

        fresh.refresh_from_db()
        assert fresh.extension_count == 1
        event = fresh.events.get(kind="extended")
        assert event.actor == manager
        assert Job.fetch(f"expire-{fresh.public_id}", connection=rq_redis)
        maxed.refresh_from_db()
        assert maxed.extension_count == template.max_extensions
        notes = messages_of(response)
        assert "Extended 1 demo." in notes
        assert any(
            note.startswith(f"{maxed.cluster_name} (bob): This demo has been extended 3 times")
            for note in notes
        )
        assert any(
            note.startswith(f"{stopped.cluster_name} (bob): This demo is kept for later")
            for note in notes
        )

    def test_it_deletes_each_demo_through_the_lifecycle(
        self,
        template: DemoTemplate,
        alice: Any,
        manager: Any,
        manager_client: Client,
        rq_redis: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        running = make_demo(template, alice)
        queued = make_demo(template, alice, Status.QUEUED)
        with django_capture_on_commit_callbacks(execute=True):
            response = manager_client.post(
                BULK,
                {
                    "action": "delete",
                    "confirmed": "on",
                    "demos": [str(running.public_id), str(queued.public_id)],
                },
            )
        assert "Deleting 2 demos." in messages_of(response)
        running.refresh_from_db()
        queued.refresh_from_db()
        assert (running.status, queued.status) == (Status.DELETING, Status.DELETED)
        assert running.events.get(kind="deleting").actor == manager
        assert Job.fetch(f"delete-{running.public_id}-{running.steps}", connection=rq_redis)

    def test_it_leaves_demos_alone_that_the_user_may_not_change(
        self, template: DemoTemplate, alice: Any, client: Client, template_admin: Any
    ) -> None:
        # Template admins watch the fleet; changing someone's demo is for its owner or a manager.
        demo = make_demo(template, alice)
        client.force_login(template_admin)
        assert 'name="demos"' not in client.get(FLEET).content.decode()
        response = client.post(
            BULK, {"action": "delete", "confirmed": "on", "demos": [str(demo.public_id)]}
        )
        assert response.status_code == 302
        demo.refresh_from_db()
        assert demo.status == Status.READY
        assert any("Only the demo" in note for note in messages_of(response))

    def test_it_explains_an_empty_or_broken_selection(self, manager_client: Client) -> None:
        response = manager_client.post(BULK, {"action": "extend"})
        assert response.status_code == 302
        assert "Tick at least one demo first." in messages_of(response)
        response = manager_client.post(BULK, {"action": "extend", "demos": ["not-a-uuid"]})
        assert "The selection is not valid; reload the page." in messages_of(response)
        response = manager_client.post(BULK, {"action": "explode", "demos": []})
        assert response.status_code == 302

    def test_it_needs_a_csrf_token(self, template: DemoTemplate, alice: Any, manager: Any) -> None:
        demo = make_demo(template, alice)
        client = Client(enforce_csrf_checks=True)
        client.force_login(manager)
        response = client.post(
            BULK, {"action": "delete", "confirmed": "on", "demos": [str(demo.public_id)]}
        )
        assert response.status_code == 403
        demo.refresh_from_db()
        assert demo.status == Status.READY

    def test_it_refuses_salespeople(self, client: Client, alice: Any, template: Any) -> None:
        demo = make_demo(template, alice)
        client.force_login(alice)
        response = client.post(
            BULK, {"action": "delete", "confirmed": "on", "demos": [str(demo.public_id)]}
        )
        assert response.status_code == 403
        demo.refresh_from_db()
        assert demo.status == Status.READY


def read_csv(response: Any) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


class TestExports:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
            ("+1 555", "'+1 555"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("Acme = best", "Acme = best"),
            ("", ""),
            (-5, -5),
            (None, ""),
            (timedelta(seconds=12.34), 12.3),
        ],
    )
    def test_it_defuses_formulas(self, value: Any, expected: Any) -> None:
        assert safe_cell(value) == expected

    def test_it_exports_every_demo(
        self, template: DemoTemplate, alice: Any, manager_client: Client
    ) -> None:
        formula = "=cmd|' /C calc'!A0"
        demo = make_demo(
            template, alice, prospect_company=formula, ready_after=timedelta(seconds=42)
        )
        ended = make_demo(template, alice, Status.DELETED, prospect_name="Old")
        rows = read_csv(manager_client.get(reverse("demos:fleet_export_demos")))
        header, body = rows[0], rows[1:]
        assert header[:4] == ["demo_id", "cluster_name", "template", "template_version"]
        by_id = {row[0]: dict(zip(header, row, strict=True)) for row in body}
        assert set(by_id) == {str(demo.public_id), str(ended.public_id)}
        row = by_id[str(demo.public_id)]
        assert row["prospect_company"] == "'=cmd|' /C calc'!A0"
        assert (row["owner"], row["status"], row["seconds_to_ready"]) == ("alice", "ready", "42.0")
        assert by_id[str(ended.public_id)]["status"] == "deleted"

    def test_it_exports_prospect_visits(
        self, template: DemoTemplate, alice: Any, manager_client: Client
    ) -> None:
        demo = make_demo(template, alice)
        link = ShareLink.objects.create(
            demo=demo, token_hash="a" * 64, recipient="+Pat <pat@example.com>", created_by=alice
        )
        ShareLinkVisit.objects.create(link=link, user_agent="@evil()", client_address="192.0.2.0")
        ShareLinkVisit.objects.create(link=link, user_agent="Firefox", client_address="192.0.2.0")
        rows = read_csv(manager_client.get(reverse("demos:fleet_export_visits")))
        header, body = rows[0], rows[1:]
        assert len(body) == 2
        first = dict(zip(header, body[0], strict=True))
        assert first["recipient"] == "'+Pat <pat@example.com>"
        assert first["user_agent"] == "'@evil()"
        assert (first["cluster_name"], first["owner"]) == (demo.cluster_name, "alice")
        assert "a" * 64 not in "".join(",".join(row) for row in rows)


class TestActivity:
    def test_it_shows_template_changes_and_demo_actions_with_actor_and_time(
        self,
        template: DemoTemplate,
        alice: Any,
        template_admin: Any,
        manager_client: Client,
        rq_redis: Any,
    ) -> None:
        admin_client = Client()
        admin_client.force_login(template_admin)
        admin_client.post(change_url(template), form_data(template, tagline="Now with payments"))
        demo = make_demo(template, alice)
        manager_client.post(
            BULK, {"action": "extend", "confirmed": "on", "demos": [str(demo.public_id)]}
        )
        DemoEvent.objects.create(demo=demo, kind="progress", message="Installing app0")

        page = manager_client.get(reverse("demos:fleet_activity")).content.decode()
        assert "Changed Tagline. Now version 2." in page
        assert "Tara" in page
        assert "Extended until" in page
        assert "Mia" in page
        assert "Installing app0" not in page, "worker progress notes are not actions"

        only_templates = manager_client.get(reverse("demos:fleet_activity"), {"area": "template"})
        assert "Extended until" not in only_templates.content.decode()

    def test_it_pages_back_in_time(
        self, template: DemoTemplate, alice: Any, manager_client: Client
    ) -> None:
        start = timezone.now() - timedelta(days=1)
        demo = make_demo(template, alice, at=start - timedelta(hours=1))
        DemoEvent.objects.bulk_create(
            DemoEvent(
                demo=demo,
                kind="note",
                message=f"event {n}",
                created_at=start + timedelta(seconds=n),
            )
            for n in range(selectors.ACTIVITY_PAGE + 5)
        )
        first = selectors.activity_feed()
        assert len(first) == selectors.ACTIVITY_PAGE
        assert first[0].message == f"event {selectors.ACTIVITY_PAGE + 4}"
        rest = selectors.activity_feed(before=first[-1].at)
        assert [item.message for item in rest[:5]] == [f"event {n}" for n in range(4, -1, -1)]
        assert all(item.at < start for item in rest[5:])  # the demo's own start, before them
        page = manager_client.get(reverse("demos:fleet_activity")).content.decode()
        assert "Older</a>" in page
        for cursor in ("2026-02-30T10:00:00", "yesterday", "2026-01-01T10:00:00"):
            response = manager_client.get(reverse("demos:fleet_activity"), {"before": cursor})
            assert response.status_code == 200, cursor


class TestAccess:
    @pytest.mark.parametrize(
        "name",
        ["fleet", "fleet_activity", "fleet_export_demos", "fleet_export_visits"],
    )
    def test_it_is_for_managers_and_template_admins_only(
        self, name: str, client: Client, alice: Any, manager: Any, template_admin: Any
    ) -> None:
        url = reverse(f"demos:{name}")
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        client.force_login(alice)
        assert client.get(url).status_code == 403
        for user in (manager, template_admin):
            client.force_login(user)
            assert client.get(url).status_code == 200
