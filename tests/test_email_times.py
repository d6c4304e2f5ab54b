"""Times in emails: in the reader's chosen zone with its abbreviation, UTC when they chose none;
and the demo's timeline names charts as salespeople know them, not their Helm releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from demos.engine import notifications, progress, reconcile
from demos.models import Demo, DemoTemplate, Status
from demos.sales import account
from tests.conftest import make_demo

WINTER = datetime(2026, 12, 3, 14, 30, tzinfo=UTC)
SUMMER = datetime(2026, 7, 3, 14, 30, tzinfo=UTC)


class TestTimeFor:
    def test_it_writes_the_readers_zone_and_its_abbreviation(self, alice: User) -> None:
        account.set_time_zone(user=alice, time_zone="Europe/Berlin")
        assert notifications.time_for(alice, WINTER) == "3 Dec, 15:30 CET"
        assert notifications.time_for(alice, SUMMER) == "3 Jul, 16:30 CEST"

    def test_it_says_utc_for_someone_with_no_zone_and_for_prospects(self, bob: User) -> None:
        assert notifications.time_for(bob, WINTER) == "3 Dec, 14:30 UTC"
        assert notifications.time_for(None, WINTER) == "3 Dec, 14:30 UTC"


class TestExpiryWarning:
    def test_it_says_when_the_demo_ends_in_the_owners_zone(
        self, template: DemoTemplate, alice: User, rq_redis: Any, mailoutbox: list[Any]
    ) -> None:
        account.set_time_zone(user=alice, time_zone="America/New_York")
        demo = make_demo(template, alice, prospect_company="Acme")
        ends = timezone.now() + timedelta(minutes=50)
        Demo.objects.filter(pk=demo.pk).update(expires_at=ends)
        assert reconcile.warn_before_expiry(timezone.now()) == 1
        body = mailoutbox[0].body
        assert f"at {notifications.time_for(alice, ends)}." in body
        assert " ES" in body or " ED" in body  # EST or EDT, whichever the day has
        assert "UTC" not in body


class TestChartSteps:
    def test_steps_and_their_sentences_name_the_chart_not_the_release(
        self, template: DemoTemplate, alice: User
    ) -> None:
        demo = make_demo(template, alice, Status.READY)
        labels = [step["label"] for step in demo.progress["steps"]]
        assert "Installing Chart0" in labels
        assert not any("app0" in label for label in labels)
        sentences = " ".join(demo.events.values_list("message", flat=True))
        assert "Installing Chart0: done" in sentences
        assert "app0" not in sentences

    def test_a_chart_from_a_url_reads_as_its_last_part(self) -> None:
        chart = {"name": "payments", "chart": "oci://registry.example.com/charts/payments-api"}
        assert progress.chart_title(chart) == "Payments api"
