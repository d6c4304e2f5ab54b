"""Admitting queued demos: one count for the whole batch, and the same decisions as counting
for each demo (the total counts every active demo, a template's limit people's demos only, an
owner's limit their own), with limits reached in the middle of a batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from demos.engine import capacity, lifecycle
from demos.engine.lifecycle.requests import _admit
from demos.models import ACTIVE, Demo, DemoTemplate, Status
from tests.conftest import _user, make_demo, make_template


def queued(template: DemoTemplate, owner: User | None) -> Demo:
    return make_demo(template, owner, Status.QUEUED)


def running(template: DemoTemplate, owner: User | None, *, spare: bool = False) -> Demo:
    return make_demo(template, owner, Status.READY, is_spare=spare)


def still_queued(*demos: Demo) -> bool:
    return all(Demo.objects.get(pk=demo.pk).status == Status.QUEUED for demo in demos)


def room_by_counting(demo: Demo) -> bool:
    """The rules as they were written before admission counted once: up to three COUNTs per
    demo. The reference the batch's decisions are held to."""
    active = Demo.objects.filter(status__in=ACTIVE).exclude(pk=demo.pk)
    if active.count() >= settings.DEMO_MAX_ACTIVE_TOTAL:
        return False
    limit = demo.template.max_concurrent
    if limit and active.filter(template=demo.template, is_spare=False).count() >= limit:
        return False
    owner = demo.owner_id
    return owner is None or active.filter(owner=owner).count() < settings.DEMO_MAX_ACTIVE_PER_USER


def admitted_by_counting() -> list[int]:
    """Whom the per-demo rules admit, oldest first, without keeping any of it."""
    admitted: list[int] = []
    with transaction.atomic():
        for demo in Demo.objects.filter(status=Status.QUEUED).order_by("requested_at"):
            if room_by_counting(demo):
                admitted.append(_admit(demo).pk)
        transaction.set_rollback(True)
    return admitted


@pytest.fixture
def sellers(db: None) -> list[User]:
    return [_user(f"seller{number}") for number in range(6)]


class TestOneCount:
    @pytest.mark.parametrize("waiting", [1, 30])
    def test_refusing_any_number_of_demos_costs_the_same_queries(
        self,
        waiting: int,
        template: DemoTemplate,
        alice: User,
        settings: Any,
        django_assert_max_num_queries: Callable[..., Any],
    ) -> None:
        # Alice is at her limit and everything waiting is hers: each is looked at, none admitted.
        settings.DEMO_MAX_ACTIVE_PER_USER = 1
        running(template, alice)
        for _ in range(waiting):
            queued(template, alice)
        # The lock, the queued demos with their templates, the one count; and the savepoint
        # around them, released (the test runs in a transaction).
        with django_assert_max_num_queries(5):
            assert lifecycle.admit_queued() == []
        assert Demo.objects.filter(status=Status.QUEUED).count() == waiting

    @pytest.mark.parametrize("waiting", [1, 12])
    def test_admitting_any_number_of_demos_counts_once(
        self, waiting: int, template: DemoTemplate, sellers: list[User]
    ) -> None:
        for number in range(waiting):
            queued(template, sellers[number % len(sellers)])
        with CaptureQueriesContext(connection) as captured:
            admitted = lifecycle.admit_queued()
        assert len(admitted) == waiting
        counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
        assert len(counts) == 1, counts


class TestLimitsInTheMiddleOfABatch:
    def test_the_total_limit(
        self, template: DemoTemplate, sellers: list[User], settings: Any
    ) -> None:
        running(template, sellers[0])
        waiting = [queued(template, seller) for seller in sellers[1:]]
        # After the queued demos, which would claim it: spares count towards the total.
        running(template, None, spare=True)
        settings.DEMO_MAX_ACTIVE_TOTAL = 4
        admitted = lifecycle.admit_queued()
        assert [demo.pk for demo in admitted] == [demo.pk for demo in waiting[:2]]
        assert still_queued(*waiting[2:])

    def test_a_templates_limit_counts_peoples_demos_only(
        self, sellers: list[User], settings: Any
    ) -> None:
        limited = make_template("limited", max_concurrent=2)
        other = make_template("other")
        running(limited, sellers[0])
        first, second = queued(limited, sellers[1]), queued(limited, sellers[2])
        elsewhere, third = queued(other, sellers[3]), queued(limited, sellers[4])
        running(limited, None, spare=True)  # not one of the template's two
        admitted = lifecycle.admit_queued()
        assert [demo.pk for demo in admitted] == [first.pk, elsewhere.pk]
        assert still_queued(second, third)

    def test_an_owners_limit(
        self, template: DemoTemplate, alice: User, bob: User, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 2
        running(template, alice)
        alices = [queued(template, alice) for _ in range(2)]
        bobs = queued(template, bob)
        alices.append(queued(template, alice))
        admitted = lifecycle.admit_queued()
        assert [demo.pk for demo in admitted] == [alices[0].pk, bobs.pk]
        assert still_queued(alices[1], alices[2])

    def test_the_same_decisions_as_counting_for_each_demo(
        self, sellers: list[User], settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 2
        settings.DEMO_MAX_ACTIVE_TOTAL = 9
        templates = [make_template("small", max_concurrent=2), make_template("open")]
        running(templates[0], sellers[0])
        running(templates[1], sellers[1])
        for number in range(14):
            queued(templates[number % 3 % 2], sellers[(number * 5) % len(sellers)])
        running(templates[0], None, spare=True)  # after the queued demos, which would claim it
        expected = admitted_by_counting()
        assert 0 < len(expected) < 14  # some limits were reached on the way
        assert [demo.pk for demo in lifecycle.admit_queued()] == expected


class TestStartTimeAdmission:
    def test_has_room_for_keeps_its_rules(
        self, template: DemoTemplate, alice: User, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 1
        running(template, alice)
        waiting = queued(template, alice)
        assert not capacity.has_room_for(waiting)
        settings.DEMO_MAX_ACTIVE_PER_USER = 2
        assert capacity.has_room_for(waiting)

    def test_a_demo_is_not_counted_against_itself(
        self, template: DemoTemplate, alice: User, settings: Any
    ) -> None:
        demo = running(template, alice)
        settings.DEMO_MAX_ACTIVE_TOTAL = 1
        settings.DEMO_MAX_ACTIVE_PER_USER = 1
        assert capacity.has_room_for(demo)

    def test_it_counts_once(
        self,
        template: DemoTemplate,
        alice: User,
        django_assert_num_queries: Callable[..., Any],
    ) -> None:
        waiting = queued(template, alice)
        waiting = Demo.objects.select_related("template").get(pk=waiting.pk)
        with django_assert_num_queries(1):
            assert capacity.has_room_for(waiting)
