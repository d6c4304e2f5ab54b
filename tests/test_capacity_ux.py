"""Capacity without surprises: a person's demo slots, the choice at the limit, and why a queued
demo waits and about how long."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from demos.engine import lifecycle
from demos.engine.capacity import CapacityPicture, Occupancy, QueueCause
from demos.fleet.selectors import capacity_summary
from demos.models import Demo, DemoTemplate, SnapshotKind, Status
from demos.sales.panel import queue_reason
from tests.conftest import _user, make_demo, make_template

BUSY = "The demo portal is busy: new demos wait for a free place, usually a few minutes."


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(html: str) -> str:
    """What a reader sees: the page's text without tags, its spaces collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def page_text(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return text_of(response.content.decode())


def running(template: DemoTemplate, owner: User, count: int, **start: Any) -> list[Demo]:
    return [make_demo(template, owner, Status.READY, **start) for _ in range(count)]


def ends_in(demo: Demo, minutes: int) -> None:
    Demo.objects.filter(pk=demo.pk).update(expires_at=timezone.now() + timedelta(minutes=minutes))


def start_url(template: DemoTemplate) -> str:
    return reverse("demos:start", args=[template.slug])


def start_form(template: DemoTemplate, **changes: str) -> dict[str, str]:
    data = {
        "start_token": "s" * 22,
        "prospect_company": "Acme",
        "prospect_name": "",
        "lifetime": str(int(template.default_lifetime.total_seconds())),
    }
    return {**data, **changes}


def action_url(demo: Demo, action: str) -> str:
    return reverse("demos:action", args=[demo.public_id, action])


class TestSlots:
    @pytest.mark.parametrize("used", [0, 2, 3])
    def test_it_shows_the_persons_slots_in_the_catalog(
        self, used: int, alice: User, template: DemoTemplate
    ) -> None:
        running(template, alice, used)
        text = page_text(logged_in(alice), reverse("demos:catalog"))
        assert f"{used} of 3 demo slots in use" in text
        full_hint = "All your slots are in use. When you start another, you can keep one for later"
        assert (full_hint in text) == (used == 3)
        assert BUSY not in text

    @pytest.mark.parametrize("used", [0, 2, 3])
    def test_it_shows_the_persons_slots_in_my_demos(
        self, used: int, alice: User, template: DemoTemplate
    ) -> None:
        running(template, alice, used)
        make_demo(template, alice, Status.DELETED)  # so the sections show at 0 too
        text = page_text(logged_in(alice), reverse("demos:my_demos"))
        assert f"Active {used} {used} of 3 demo slots in use" in text

    def test_it_counts_what_holds_a_slot_and_nothing_else(
        self, alice: User, template: DemoTemplate
    ) -> None:
        make_demo(template, alice, Status.ASLEEP)  # asleep keeps its slot
        make_demo(template, alice, Status.PROVISIONING)
        for status in (Status.PAUSED, Status.FAILED, Status.DELETED, Status.QUEUED):
            make_demo(template, alice, status)
        text = page_text(logged_in(alice), reverse("demos:catalog"))
        assert "2 of 3 demo slots in use" in text

    def test_a_manager_sees_their_own_slots_among_everyones_demos(
        self, alice: User, manager: User, template: DemoTemplate
    ) -> None:
        running(template, alice, 3)
        running(template, manager, 1)
        text = page_text(logged_in(manager), reverse("demos:my_demos"))
        assert "Yours: 1 of 3 demo slots in use" in text
        assert "3 of 3" not in text

    def test_a_full_portal_is_said_apart_from_the_persons_slots(
        self, alice: User, bob: User, template: DemoTemplate, settings: Any
    ) -> None:
        running(template, bob, 2)
        settings.DEMO_MAX_ACTIVE_TOTAL = 2
        client = logged_in(alice)
        catalog = page_text(client, reverse("demos:catalog"))
        assert "0 of 3 demo slots in use" in catalog
        assert BUSY in catalog
        make_demo(template, alice, Status.DELETED)
        assert BUSY in page_text(client, reverse("demos:my_demos"))

    def test_the_fleet_counts_what_the_slots_count(
        self, alice: User, bob: User, template: DemoTemplate
    ) -> None:
        running(template, alice, 1)
        make_demo(template, alice, Status.ASLEEP)
        make_demo(template, bob, Status.INSTALLING)
        for status in (Status.PAUSED, Status.FAILED, Status.QUEUED, Status.ARCHIVED):
            make_demo(template, bob, status)
        make_demo(template, None, Status.READY, is_spare=True)  # last: starts would take it
        picture = CapacityPicture.read()
        fleet = capacity_summary()
        assert fleet.active == len(picture.held) == Occupancy.counted().total == 4
        assert fleet.queued == len(picture.waiting) == 1
        assert picture.slots_of(alice).used == Occupancy.counted().per_owner[alice.pk] == 2


class TestChoiceAtLimit:
    def test_below_the_limit_start_demo_starts_at_once(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        running(template, alice, 2)
        response = logged_in(alice).post(start_url(template), start_form(template))
        started = Demo.objects.get(prospect_company="Acme")
        assert response.status_code == 302
        assert started.status == Status.REQUESTED

    def test_at_the_limit_it_asks_before_anything_starts(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        demos = running(template, alice, 3, prospect_company="Globex")
        response = logged_in(alice).post(start_url(template), start_form(template))
        html = response.content.decode()
        text = text_of(html)
        assert response.status_code == 200
        assert not Demo.objects.filter(prospect_company="Acme").exists()
        assert "All your demo slots are in use" in text
        assert "To start Webshop for Acme, give a slot back, or queue it." in text
        assert "3 of 3 demo slots in use" in text
        assert "All demo slots are taken" not in text
        back_here = start_url(template) + "?" + urlencode({"prospect_company": "Acme"})
        for demo in demos:
            assert f'action="{action_url(demo, "pause")}"' in html
            assert f'action="{action_url(demo, "delete")}"' in html
            assert f'hx-post="{action_url(demo, "extend")}"' not in html
        assert html.count(f'name="next" value="{back_here}&amp;lifetime=') == 6
        for label in ("Keep for later", "Delete"):
            named = f'{label}<span class="visually-hidden">: Webshop for Globex</span>'
            assert html.count(named) == 3
        queue = re.search(r'class="queue-it" data-submit-once>(.*?)</form>', html, re.S)
        assert queue
        assert 'name="when_full" value="queue"' in queue.group(1)
        assert f'name="start_token" value="{"s" * 22}"' in queue.group(1)
        assert 'name="prospect_company" value="Acme"' in queue.group(1)
        assert "Queue this one" in queue.group(1)

    def test_queue_this_one_queues_it_without_asking_again(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        running(template, alice, 3)
        client = logged_in(alice)
        response = client.post(start_url(template), start_form(template, when_full="queue"))
        queued = Demo.objects.get(prospect_company="Acme")
        assert queued.status == Status.QUEUED
        assert response["Location"] == reverse("demos:detail", args=[queued.public_id])
        text = page_text(client, response["Location"])
        assert "Waiting because your 3 demo slots are in use." in text

    def test_keep_for_later_and_delete_work_without_javascript_and_come_back(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        first, second, _third = running(template, alice, 3)
        client = logged_in(alice)
        back_here = start_url(template) + "?" + urlencode({"prospect_company": "Acme"})

        response = client.post(action_url(first, "pause"), {"next": back_here})
        assert response["Location"] == back_here
        # Pausing still holds the slot for a few seconds: the choice again, the demo pausing.
        text = page_text(client, back_here)
        assert "3 of 3 demo slots in use" in text
        assert "Pausing" in text

        # Delete asks first; without JavaScript the button is a link to the question.
        question = client.get(action_url(second, "delete"), {"next": back_here})
        assert question.status_code == 200
        assert back_here in unescape(question.content.decode())
        response = client.post(action_url(second, "delete"), {"next": back_here})
        assert response["Location"] == back_here
        form = client.get(back_here).content.decode()
        assert "2 of 3 demo slots in use" in text_of(form)
        assert 'value="Acme"' in form  # what was typed before is still there
        assert "Start demo" in form

    def test_start_it_now_starts_once_a_slot_is_given_back(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        first, *_others = running(template, alice, 3)
        client = logged_in(alice)
        html = client.post(start_url(template), start_form(template)).content.decode()
        start_now = re.search(r'class="start-now" data-submit-once>(.*?)</form>', html, re.S)
        assert start_now
        assert 'name="when_full"' not in start_now.group(1)
        assert f'name="start_token" value="{"s" * 22}"' in start_now.group(1)
        assert "Start it now" in start_now.group(1)
        client.post(action_url(first, "delete"))
        response = client.post(start_url(template), start_form(template))
        started = Demo.objects.get(prospect_company="Acme")
        assert response["Location"] == reverse("demos:detail", args=[started.public_id])
        assert started.status == Status.REQUESTED

    def test_opening_start_at_the_limit_shows_the_choice(
        self, alice: User, template: DemoTemplate
    ) -> None:
        running(template, alice, 3)
        text = page_text(logged_in(alice), start_url(template))
        assert "All your demo slots are in use" in text
        assert "Queue this one" in text

    def test_a_double_click_of_a_start_that_went_through_finds_its_demo(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        running(template, alice, 2)
        client = logged_in(alice)
        first = client.post(start_url(template), start_form(template))
        again = client.post(start_url(template), start_form(template))  # now at the limit
        assert first["Location"] == again["Location"]
        assert Demo.objects.filter(prospect_company="Acme").count() == 1

    def test_when_the_queue_is_full_too_it_says_so_instead_of_queueing(
        self, alice: User, template: DemoTemplate, rq_redis: Any, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 1
        running(template, alice, 1)
        lifecycle.start_demo(template=template, owner=alice)  # queued: the queue is full too
        response = logged_in(alice).post(start_url(template), start_form(template))
        text = text_of(response.content.decode())
        assert response.status_code == 409
        assert "You already have 1 demos waiting for capacity" in text
        assert "Keep for later" in text
        assert "Queue this one" not in text


class TestWhyQueued:
    def test_the_persons_own_limit_with_the_soonest_end(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        for demo, minutes in zip(running(template, alice, 3), (50, 20, 90), strict=True):
            ends_in(demo, minutes)
        queued = lifecycle.start_demo(template=template, owner=alice, prospect_company="Acme")
        text = page_text(logged_in(alice), reverse("demos:detail", args=[queued.public_id]))
        assert (
            "Waiting because your 3 demo slots are in use. One of them ends in about 20 "
            "minutes, and this one starts then, or as soon as you end one (Keep for later or "
            "Delete)."
        ) in text
        assert "All demo slots are taken" not in text

    def test_the_persons_own_limit_without_an_end_in_sight(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        for _ in range(3):
            make_demo(template, alice, Status.PROVISIONING)
        queued = lifecycle.start_demo(template=template, owner=alice)
        text = page_text(logged_in(alice), reverse("demos:detail", args=[queued.public_id]))
        assert (
            "Waiting because your 3 demo slots are in use. It starts when you end one of your "
            "demos (Keep for later or Delete)."
        ) in text

    def test_the_portal_limit_with_the_place_and_the_ends_ahead(
        self,
        alice: User,
        bob: User,
        manager: User,
        template: DemoTemplate,
        rq_redis: Any,
        settings: Any,
    ) -> None:
        for demo, minutes in zip(running(template, bob, 2), (45, 20), strict=True):
            ends_in(demo, minutes)
        settings.DEMO_MAX_ACTIVE_TOTAL = 2
        first = lifecycle.start_demo(template=template, owner=alice)
        second = lifecycle.start_demo(template=template, owner=manager)
        assert (first.status, second.status) == (Status.QUEUED, Status.QUEUED)
        why = "Waiting because the portal is at its limit of 2 running demos."
        text = page_text(logged_in(alice), reverse("demos:detail", args=[first.public_id]))
        assert f"{why} Number 1 in the queue: it starts in about 20 minutes" in text
        text = page_text(logged_in(manager), reverse("demos:detail", args=[second.public_id]))
        assert f"{why} Number 2 in the queue: it starts in about 45 minutes" in text
        # My demos reads only the demos in their way, and the running demos' ends apart.
        text = page_text(logged_in(manager), reverse("demos:my_demos"))
        assert f"{why} Number 1 in the queue: it starts in about 20 minutes" in text
        assert f"{why} Number 2 in the queue: it starts in about 45 minutes" in text

    def test_the_templates_limit(self, alice: User, bob: User, rq_redis: Any) -> None:
        limited = make_template("limited", max_concurrent=2)
        running(limited, bob, 2)
        queued = lifecycle.start_demo(template=limited, owner=alice)
        text = page_text(logged_in(alice), reverse("demos:detail", args=[queued.public_id]))
        assert "Waiting because Limited allows 2 demos at once. Number 1 in the queue" in text

    def test_the_estimate_counts_the_persons_demos_waiting_ahead(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        for demo, minutes in zip(running(template, alice, 3), (10, 30, 70), strict=True):
            ends_in(demo, minutes)
        lifecycle.start_demo(template=template, owner=alice)
        second = lifecycle.start_demo(template=template, owner=alice)
        reason = CapacityPicture.read().why_queued(Demo.objects.get(pk=second.pk))
        assert reason is not None
        assert (reason.cause, reason.limit, reason.position) == (QueueCause.OWNER, 3, 2)
        assert reason.wait is not None
        assert timedelta(minutes=29) < reason.wait <= timedelta(minutes=30)

    @pytest.mark.parametrize("portal_limit", [3, 50])
    def test_a_page_explaining_some_demos_says_what_the_whole_queue_says(
        self, alice: User, bob: User, template: DemoTemplate, settings: Any, portal_limit: int
    ) -> None:
        """A page reads only what stands in the way of the demos it shows, with their places
        counted by the database; every reason must be the one the whole picture gives. The
        queue mixes owners and templates, one at its limit, and two requests at one moment."""
        settings.DEMO_MAX_ACTIVE_PER_USER = 2
        settings.DEMO_MAX_ACTIVE_TOTAL = portal_limit
        limited = make_template("limited", max_concurrent=1)
        for demo, minutes in zip(running(template, alice, 2), (40, 15), strict=True):
            ends_in(demo, minutes)
        ends_in(running(limited, bob, 1)[0], 25)
        queue = [
            make_demo(chosen, owner, Status.QUEUED)
            for chosen, owner in (
                (template, alice), (limited, bob), (template, bob), (limited, alice),
                (template, alice), (limited, bob),
            )
        ]  # fmt: skip
        at_once = Demo.objects.get(pk=queue[1].pk).requested_at
        Demo.objects.filter(pk=queue[2].pk).update(requested_at=at_once)
        with time_machine.travel(timezone.now(), tick=False):  # the same waits, to the µs
            whole = CapacityPicture.read()
            for shown in ([queue[4]], queue[3:], queue):
                loaded = list(Demo.objects.filter(pk__in=[d.pk for d in shown]))
                some = CapacityPicture.read(for_queued=loaded, reader=alice)
                for demo in loaded:
                    assert some.why_queued(demo) == whole.why_queued(demo), demo
                    # A queued demo's own page reads the picture for it alone.
                    assert queue_reason(demo) == whole.why_queued(demo), demo
        assert whole.why_queued(queue[4]).position == 5
        started = Demo.objects.get(pk=queue[0].pk)
        Demo.objects.filter(pk=started.pk).update(status=Status.PROVISIONING)
        assert CapacityPicture.read(for_queued=[started], reader=alice).why_queued(started) is None

    def test_room_just_freed_says_it_starts_in_a_moment(
        self, alice: User, template: DemoTemplate, rq_redis: Any, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_TOTAL = 0
        queued = lifecycle.start_demo(template=template, owner=alice)
        settings.DEMO_MAX_ACTIVE_TOTAL = 50
        text = page_text(logged_in(alice), reverse("demos:detail", args=[queued.public_id]))
        assert "Number 1 in the queue: room has just freed up, so it starts in a moment." in text

    def test_my_demos_rows_and_their_poll_say_why(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        ends_in(running(template, alice, 3)[0], 20)
        queued = lifecycle.start_demo(template=template, owner=alice)
        client = logged_in(alice)
        note = "Waiting because your 3 demo slots are in use. One of them ends in about 20 minutes"
        assert note in page_text(client, reverse("demos:my_demos"))
        poll = reverse("demos:status", args=[queued.public_id]) + "?fragment=row"
        assert note in page_text(client, poll)

    def test_my_demos_reads_every_reason_with_one_query(
        self,
        alice: User,
        bob: User,
        manager: User,
        template: DemoTemplate,
        rq_redis: Any,
        settings: Any,
    ) -> None:
        settings.DEMO_MAX_ACTIVE_TOTAL = 0
        lifecycle.start_demo(template=template, owner=alice)
        client = logged_in(manager)
        url = reverse("demos:my_demos")

        def queries() -> int:
            client.get(url)  # warm the session's caches
            with CaptureQueriesContext(connection) as captured:
                assert client.get(url).status_code == 200
            return len(captured)

        with_one = queries()
        carol = _user("carol")
        for person in (bob, carol, manager, alice):
            lifecycle.start_demo(template=template, owner=person)
        assert queries() == with_one


class TestRestoreQueued:
    def test_a_queued_restore_says_it_waits_and_why(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        archived = make_demo(template, alice, Status.ARCHIVED)
        snapshot = archived.snapshots.get(kind=SnapshotKind.ARCHIVED)
        running(template, alice, 3)
        url = reverse("demos:restore", args=[archived.public_id, snapshot.pk])
        response = logged_in(alice).post(url, {"start_token": "r" * 22}, follow=True)
        text = text_of(response.content.decode())
        restored = Demo.objects.get(restored_from=snapshot)
        assert restored.status == Status.QUEUED
        assert (
            "Restoring from the snapshot: the new demo is queued. Waiting because your 3 demo "
            "slots are in use."
        ) in text
        assert "a new demo is starting" not in text

    def test_a_restore_with_room_still_says_it_is_starting(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        archived = make_demo(template, alice, Status.ARCHIVED)
        snapshot = archived.snapshots.get(kind=SnapshotKind.ARCHIVED)
        url = reverse("demos:restore", args=[archived.public_id, snapshot.pk])
        response = logged_in(alice).post(url, {"start_token": "r" * 22}, follow=True)
        assert "Restoring from the snapshot: a new demo is starting." in text_of(
            response.content.decode()
        )
