"""Warm pools: filling, claiming exactly once, schedules and recycling."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from demos.engine import lifecycle, pools
from demos.models import Demo, DemoTemplate, Status
from tests.conftest import make_template, run_jobs

pytestmark = pytest.mark.django_db(transaction=True)

# A Wednesday at 10:00 and 22:00 UTC, for the business-hours schedule.
WEDNESDAY_MORNING = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.UTC)
WEDNESDAY_NIGHT = datetime(2026, 11, 25, 22, 0, tzinfo=timezone.UTC)


def pooled_template(size: int = 2, **fields: Any) -> DemoTemplate:
    template = make_template("pooled", warm_pool_size=size, **fields)
    # Pool-able: no prospect-specific variables in any value.
    template.charts.update(values="host: ${DEMO_HOST}\n")
    return template


def fill(template: DemoTemplate, now: datetime | None = None) -> pools.PoolReport:
    report = pools.keep_pools_full(now)
    run_jobs()
    return report


def spares(template: DemoTemplate) -> Any:
    return Demo.objects.filter(template=template, is_spare=True)


class TestFilling:
    def test_it_fills_the_pool_with_ownerless_spares_that_never_expire(self, rq_redis: Any) -> None:
        template = pooled_template(size=2)
        assert fill(template).started == 2
        assert fill(template).started == 0  # already full
        ready = spares(template).filter(status=Status.READY)
        assert ready.count() == 2
        assert all(d.owner is None and d.expires_at is None for d in ready)
        assert pools.pool_levels()[template.pk] == {"ready": 2, "starting": 0}

    def test_spares_count_against_global_capacity(self, rq_redis: Any, settings: Any) -> None:
        settings.DEMO_MAX_ACTIVE_TOTAL = 1
        template = pooled_template(size=3)
        assert fill(template).started == 1

    def test_templates_with_personal_variables_are_not_pooled(self, rq_redis: Any) -> None:
        make_template("personal", warm_pool_size=2)  # its values use ${PROSPECT_COMPANY}
        report = pools.keep_pools_full()
        assert report.started == 0
        assert "PROSPECT_COMPANY" in report.skipped[0]

    def test_the_schedule_empties_the_pool_at_night_and_refills_it_by_day(
        self, rq_redis: Any
    ) -> None:
        template = pooled_template(size=2, warm_pool_schedule="* 8-18 * * 1-5")
        assert fill(template, WEDNESDAY_NIGHT).started == 0
        assert fill(template, WEDNESDAY_MORNING).started == 2
        report = fill(template, WEDNESDAY_NIGHT)
        assert report.trimmed == 2
        assert not spares(template).filter(status=Status.READY).exists()
        assert set(spares(template).values_list("status", flat=True)) == {Status.DELETED}

    def test_stale_spares_are_recycled(self, rq_redis: Any) -> None:
        template = pooled_template(size=1, warm_pool_max_age=timedelta(hours=1))
        fill(template)
        first = spares(template).get(status=Status.READY)
        with time_machine.travel(timezone.now() + timedelta(hours=2)):
            report = fill(template)
        assert report.recycled == 1
        first.refresh_from_db()
        assert first.status == Status.DELETED
        assert spares(template).filter(status=Status.READY).exclude(pk=first.pk).count() == 1


class TestClaim:
    def test_starting_takes_a_ready_spare_at_once(self, rq_redis: Any, alice: User) -> None:
        template = pooled_template(size=1)
        fill(template)
        demo = lifecycle.start_demo(template=template, owner=alice, prospect_company="Acme")
        assert demo.status == Status.READY
        assert (demo.owner, demo.is_spare, demo.prospect_company) == (alice, False, "Acme")
        assert demo.expires_at == demo.claimed_at + template.default_lifetime
        assert demo.events.filter(kind="claimed").exists()
        run_jobs()  # the refill job the claim enqueued
        assert spares(template).filter(status=Status.READY).count() == 1

    def test_without_a_ready_spare_it_starts_cold(self, rq_redis: Any, alice: User) -> None:
        template = pooled_template(size=1)
        pools.keep_pools_full()  # the spare is still starting
        demo = lifecycle.start_demo(template=template, owner=alice)
        assert demo.status == Status.REQUESTED
        assert not demo.is_spare

    def test_many_simultaneous_starts_claim_each_spare_exactly_once(
        self, rq_redis: Any, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 50
        template = pooled_template(size=3)
        fill(template)
        pool = set(spares(template).values_list("pk", flat=True))
        users = [User.objects.create_user(f"seller{i}") for i in range(12)]
        barrier = threading.Barrier(len(users))
        results: dict[str, int] = {}
        errors: list[BaseException] = []

        def start(user: User) -> None:
            try:
                barrier.wait()
                demo = lifecycle.start_demo(
                    template=template, owner=user, start_token=user.username
                )
                results[user.username] = demo.pk
            except BaseException as exc:  # reported below, with the others
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=start, args=(user,)) for user in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(results) == len(users)  # none lost
        demo_ids = list(results.values())
        assert len(set(demo_ids)) == len(users)  # no demo handed out twice
        claimed = [pk for pk in demo_ids if pk in pool]
        assert sorted(claimed) == sorted(pool)  # every spare claimed, exactly once
        cold = Demo.objects.filter(pk__in=demo_ids).exclude(pk__in=pool)
        assert cold.count() == len(users) - len(pool)
        assert set(cold.values_list("status", flat=True)) <= {Status.REQUESTED, Status.QUEUED}


class TestCatalog:
    def test_the_catalog_marks_templates_with_a_ready_spare_as_instant(
        self, rq_redis: Any, alice: User
    ) -> None:
        from django.test import Client

        pooled = pooled_template(size=1)
        make_template("cold")
        client = Client()
        client.force_login(alice)
        assert "Instant" not in client.get("/").text
        fill(pooled)
        cards = client.get("/").text.split('class="template-card')[1:]
        marked = [card for card in cards if "Instant</span>" in card]
        assert len(marked) == 1
        assert "Pooled" in marked[0]
