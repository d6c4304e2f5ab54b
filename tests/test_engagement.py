"""Engagement: the gate's per-minute counts flushed into rows, presence, and what owners see.

Everything runs on the real Redis and PostgreSQL: the counts are written the way the gate's
script writes them (and once through the gate's own check), then flushed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from redis import Redis

from demos.engine.lifecycle import Actor
from demos.gate import activity, engagement, entry, state
from demos.gate.engagement import LINK, MEMBER, minute_start
from demos.gate.passes import Pass
from demos.models import Demo, DemoTemplate, Engagement, ShareLink, Status
from demos.sharing import links
from portal.redis_connection import shared
from tests.conftest import make_demo

# A minute well in the past (a day ago would let the gate's own keys expire): "now" is after it.
START = int(time.time() // 60) - 600
GAP = 30  # DEMO_GATE_SESSION_GAP_MINUTES, set by the fixture below


@pytest.fixture(autouse=True)
def _clean_gate_keys(settings: Any) -> None:
    settings.DEMO_GATE_SESSION_GAP_MINUTES = GAP
    redis = shared()
    for key in redis.scan_iter("gate:*"):
        redis.delete(key)


@pytest.fixture
def demo(template: DemoTemplate, alice: User) -> Demo:
    return make_demo(template, alice, prospect_company="Acme")


def share(demo: Demo, recipient: str = "pat@acme.example") -> ShareLink:
    return links.create_share_link(demo=demo, actor=Actor.of(demo.owner), recipient=recipient).link


def count(demo_pk: int, kind: str, subject: int, minute: int, requests: int = 1) -> None:
    """What the gate's script does for `requests` allowed requests in `minute`."""
    redis = shared()
    redis.hincrby(activity.minute_key(minute), activity.field(demo_pk, kind, subject), requests)
    redis.sadd(activity.MINUTES_KEY, minute)


def flush_at(minute: int) -> int:
    """A flush run five seconds into `minute`: every earlier minute is finished."""
    return engagement.flush(now=minute * 60 + 5)


def row_of(link: ShareLink) -> Engagement:
    return Engagement.objects.get(link=link)


def gate_keys() -> set[str]:
    return {key.decode() for key in shared().scan_iter("gate:activity*")}


@pytest.mark.django_db
class TestFlush:
    def test_it_moves_finished_minutes_into_one_row_per_link(self, demo: Demo) -> None:
        link = share(demo)
        for offset, requests in enumerate((3, 2, 5)):
            count(demo.pk, LINK, link.pk, START + offset, requests)
        count(demo.pk, LINK, link.pk, START + 3, 7)  # the current minute: still being counted

        assert flush_at(START + 3) == 3

        row = row_of(link)
        assert (row.requests, row.active_minutes, row.sessions) == (10, 3, 1)
        assert row.first_seen == minute_start(START)
        assert row.last_seen == minute_start(START + 2)
        assert row.return_visits == 0
        # The current minute stays where the gate keeps counting it.
        assert gate_keys() == {activity.MINUTES_KEY, activity.minute_key(START + 3)}

    def test_a_gap_longer_than_the_setting_starts_a_return_visit(self, demo: Demo) -> None:
        link = share(demo)
        count(demo.pk, LINK, link.pk, START)
        count(demo.pk, LINK, link.pk, START + GAP)  # exactly the gap: the same session
        flush_at(START + GAP + 1)
        assert row_of(link).sessions == 1

        # Later flushes continue the same row, measuring the gap from its last_seen.
        count(demo.pk, LINK, link.pk, START + 2 * GAP + 1)
        count(demo.pk, LINK, link.pk, START + 2 * GAP + 2)
        flush_at(START + 2 * GAP + 3)

        row = row_of(link)
        assert (row.sessions, row.return_visits, row.active_minutes) == (2, 1, 4)
        assert row.first_seen == minute_start(START)
        assert row.last_seen == minute_start(START + 2 * GAP + 2)

    def test_links_and_team_members_get_rows_of_their_own(self, demo: Demo, bob: User) -> None:
        link = share(demo)
        count(demo.pk, LINK, link.pk, START, 2)
        count(demo.pk, MEMBER, demo.owner_id, START, 4)
        count(demo.pk, MEMBER, bob.pk, START + 1, 1)
        flush_at(START + 2)

        assert row_of(link).requests == 2
        members = dict(
            Engagement.objects.filter(member__isnull=False).values_list("member_id", "requests")
        )
        assert members == {demo.owner_id: 4, bob.pk: 1}

    def test_counts_written_by_the_gates_own_check_are_flushed(self, demo: Demo) -> None:
        link = share(demo)
        grant = Pass(demo.cluster_name, demo.pk, LINK, link.pk, int(time.time()) + 600)
        moment = START * 60 + 10
        for _ in range(3):
            assert state.check(grant, counts=True, now=moment) == state.Decision.ALLOW

        assert flush_at(START + 1) == 1
        assert (row_of(link).requests, row_of(link).active_minutes) == (3, 1)

    def test_entries_of_demos_links_and_people_that_are_gone_are_dropped(
        self, demo: Demo, template: DemoTemplate, bob: User
    ) -> None:
        link = share(demo)
        other = share(make_demo(template, bob))
        count(demo.pk, LINK, link.pk, START)
        count(999_999, LINK, link.pk, START)  # a demo that does not exist
        count(demo.pk, LINK, other.pk, START)  # a link of another demo
        count(demo.pk, LINK, 999_999, START)  # a link deleted since
        count(demo.pk, MEMBER, 999_999, START)  # a person deleted since
        count(999_999, MEMBER, bob.pk, START)
        shared().hset(activity.minute_key(START), "nonsense", 3)

        assert flush_at(START + 1) == 1
        assert list(Engagement.objects.values_list("link_id", flat=True)) == [link.pk]
        assert gate_keys() == set()  # nothing is left to be counted again

    def test_a_flush_that_died_after_claiming_loses_nothing(self, demo: Demo) -> None:
        link = share(demo)
        count(demo.pk, LINK, link.pk, START, 2)
        count(demo.pk, LINK, link.pk, START + 1, 3)
        # The first half of a flush: the minutes are renamed to processing keys and taken out of
        # the gate's set. Then it dies, before writing anything (and its lock expires).
        claimed = engagement._claim(shared(), START + 2)
        assert claimed == [START, START + 1]
        assert activity.minute_key(START) not in gate_keys()
        # Meanwhile the gate counts a late request into one of those minutes, and a new one.
        count(demo.pk, LINK, link.pk, START + 1, 1)
        count(demo.pk, LINK, link.pk, START + 2, 1)

        assert flush_at(START + 3) == 4

        row = row_of(link)
        assert (row.requests, row.active_minutes) == (7, 4)
        assert gate_keys() == set()
        assert flush_at(START + 4) == 0
        assert row_of(link).requests == 7

    def test_a_flush_leaves_the_minutes_to_one_already_running(self, demo: Demo) -> None:
        link = share(demo)
        count(demo.pk, LINK, link.pk, START)
        holder = shared().lock(engagement.FLUSH_LOCK_KEY, timeout=60)
        assert holder.acquire(blocking=False)

        assert flush_at(START + 1) == 0
        assert not Engagement.objects.exists()

        holder.release()
        assert flush_at(START + 1) == 1

    def test_with_redis_away_it_logs_and_returns_nothing(
        self, demo: Demo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A real client of a port nothing listens on.
        monkeypatch.setattr(engagement, "shared", lambda: Redis(port=1, socket_timeout=0.2))
        with caplog.at_level(logging.ERROR, logger="demos.gate.engagement"):
            assert engagement.flush() == 0
        assert "Redis is unavailable" in caplog.text

    def test_a_thousand_entries_cost_a_few_queries(
        self, demo: Demo, django_assert_max_num_queries: Callable[..., Any]
    ) -> None:
        made = ShareLink.objects.bulk_create(
            ShareLink(demo=demo, token_hash=f"{i:064x}", recipient=f"p{i}@example.com")
            for i in range(250)
        )
        # Half of them have a row already: the flush both creates and updates.
        Engagement.objects.bulk_create(
            Engagement(
                demo=demo,
                link=link,
                first_seen=minute_start(START - 60),
                last_seen=minute_start(START - 60),
                requests=1,
                active_minutes=1,
                sessions=1,
            )
            for link in made[::2]
        )
        for minute in range(START, START + 4):
            pipe = shared().pipeline()
            for link in made:
                pipe.hincrby(activity.minute_key(minute), activity.field(demo.pk, LINK, link.pk))
            pipe.sadd(activity.MINUTES_KEY, minute)
            pipe.execute()

        with django_assert_max_num_queries(8):
            assert flush_at(START + 4) == 1000

        rows = Engagement.objects.filter(demo=demo)
        assert rows.count() == 250
        assert set(rows.values_list("sessions", flat=True)) == {1, 2}  # the old ones: a return
        assert sum(rows.values_list("requests", flat=True)) == 1000 + 125


@pytest.mark.django_db(transaction=True)
def test_two_flushes_at_once_count_every_minute_once(template: DemoTemplate, alice: User) -> None:
    demo = make_demo(template, alice)
    shared_links = [share(demo, f"p{i}@example.com") for i in range(20)]
    for minute in range(START, START + 30):
        for link in shared_links:
            count(demo.pk, LINK, link.pk, minute, 2)
    barrier = threading.Barrier(2)
    results: list[int] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(flush_at(START + 30))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(results) == 20 * 30
    requests = Engagement.objects.filter(demo=demo).values_list("requests", flat=True)
    assert list(requests) == [60] * 20
    assert flush_at(START + 31) == 0


@pytest.mark.django_db
class TestPresence:
    def present_for(self, demo: Demo, milliseconds: int) -> None:
        """What the gate writes on a prospect's request: present for a short while."""
        shared().set(activity.present_key(demo.pk), time.time(), px=milliseconds)

    def poll(self, client: Client, demo: Demo, shown: str = "") -> Any:
        url = reverse("demos:status", args=[demo.public_id]) + "?fragment=presence"
        return client.get(url + (f"&present={shown}" if shown else ""))

    def test_the_demo_page_says_a_prospect_is_in_it_until_they_leave(
        self, client: Client, demo: Demo
    ) -> None:
        client.force_login(demo.owner)
        page = client.get(reverse("demos:detail", args=[demo.public_id]))
        assert "Your prospect is in the demo now" not in page.text
        assert 'id="prospect-presence"' in page.text  # polled, to notice them arrive

        self.present_for(demo, 400)
        page = client.get(reverse("demos:detail", args=[demo.public_id]))
        assert "Your prospect is in the demo now" in page.text
        arrived = self.poll(client, demo, shown="0")
        assert arrived.status_code == 200
        assert "Your prospect is in the demo now" in arrived.text
        # Announced politely through the page's announcer when it changes.
        assert 'data-announce="Your prospect is in the demo now"' in arrived.text
        assert self.poll(client, demo, shown="1").status_code == 204

        time.sleep(0.5)  # the key's time is up: they left
        left = self.poll(client, demo, shown="1")
        assert left.status_code == 200
        assert "Your prospect is in the demo now" not in left.text
        assert 'data-announce="Your prospect has left the demo"' in left.text

    def test_the_presence_poll_costs_one_query(
        self, client: Client, demo: Demo, django_assert_num_queries: Callable[..., Any]
    ) -> None:
        client.force_login(demo.owner)
        self.poll(client, demo, shown="0")  # the session and user are cached after this
        with django_assert_num_queries(1):
            assert self.poll(client, demo, shown="0").status_code == 204

    def test_the_poll_hands_over_to_the_status_panel_when_the_demo_stops_running(
        self, client: Client, demo: Demo
    ) -> None:
        client.force_login(demo.owner)
        Demo.objects.filter(pk=demo.pk).update(status=Status.ASLEEP)
        response = self.poll(client, demo, shown="0")
        assert response["HX-Retarget"] == "#status-panel"
        assert 'id="status-panel"' in response.text

    def test_an_asleep_demo_can_be_opened_from_its_page(self, client: Client, demo: Demo) -> None:
        client.force_login(demo.owner)
        Demo.objects.filter(pk=demo.pk).update(status=Status.ASLEEP)
        page = client.get(reverse("demos:detail", args=[demo.public_id])).text
        assert f'href="{reverse("demos:open", args=[demo.public_id])}"' in page
        assert 'class="sleep-note"' in page
        assert 'id="prospect-presence"' not in page  # nobody is in an asleep demo

    def test_others_cannot_ask_about_a_demo(self, client: Client, demo: Demo, bob: User) -> None:
        client.force_login(bob)
        assert self.poll(client, demo).status_code == 404

    def test_my_demos_marks_the_demos_with_a_prospect_in_them(
        self, client: Client, demo: Demo, template: DemoTemplate
    ) -> None:
        quiet = make_demo(template, demo.owner, prospect_company="Quiet")
        self.present_for(demo, 60_000)
        client.force_login(demo.owner)
        page = client.get(reverse("demos:my_demos")).text
        assert page.count("Prospect in the demo now") == 1
        row = page.split(f'id="demo-row-{demo.public_id}"')[1].split("</li>")[0]
        assert "Prospect in the demo now" in row
        assert f'id="demo-row-{quiet.public_id}"' in page


@pytest.mark.django_db
def test_the_owner_is_told_once_when_a_prospect_first_uses_the_demo(demo: Demo) -> None:
    link = share(demo)
    grant = Pass(demo.cluster_name, demo.pk, LINK, link.pk, int(time.time()) + 600)
    entry.record_entry(grant)
    entry.record_entry(grant)

    sent = [m for m in mail.outbox if "using" in m.subject]
    assert len(sent) == 1
    assert sent[0].subject == "pat@acme.example is using your Webshop demo now"
    assert sent[0].to == [demo.owner.email]
    assert "Acme" in sent[0].body
    assert reverse("demos:detail", args=[demo.public_id]) in sent[0].body


@pytest.mark.django_db
class TestSharePanel:
    def panel(self, client: Client, demo: Demo) -> str:
        client.force_login(demo.owner)
        return client.get(reverse("demos:share_panel", args=[demo.public_id])).text

    def test_it_sums_up_how_each_link_was_used(self, client: Client, demo: Demo) -> None:
        link = share(demo)
        share(demo, "nobody@acme.example")
        # Three sessions of 10, 10 and 5 minutes, an hour apart.
        minutes = [*range(10), *range(60, 70), *range(120, 125)]
        for offset in minutes:
            count(demo.pk, LINK, link.pk, START + offset)
        flush_at(START + 125)

        last = minute_start(START + 124)
        with time_machine.travel(last + timedelta(hours=2, seconds=10), tick=False):
            text = " ".join(self.panel(client, demo).split())
        assert "Last in the demo <time" in text
        assert "2 h ago</time> · 3 sessions · 25 active minutes · 2 return visits" in text
        assert text.count("Last in the demo") == 1  # the other link was never used

    def test_a_prospect_in_the_demo_now_is_shown_on_their_link(
        self, client: Client, demo: Demo
    ) -> None:
        link = share(demo)
        share(demo, "nobody@acme.example")
        now = int(time.time() // 60)
        count(demo.pk, LINK, link.pk, now - 1)
        flush_at(now)  # its earlier minute is in the row now
        count(demo.pk, LINK, link.pk, now)
        shared().set(activity.present_key(demo.pk), time.time(), ex=60)

        text = " ".join(self.panel(client, demo).split())
        assert text.count("In the demo now") == 1
        assert "In the demo now</span> · 1 session · 1 active minute</p>" in text

    def test_nobody_is_in_a_demo_whose_gate_says_no_prospect_is_there(
        self, client: Client, demo: Demo
    ) -> None:
        link = share(demo)
        now = int(time.time() // 60)
        count(demo.pk, LINK, link.pk, now)  # counted a moment ago, but the presence key expired
        assert "In the demo now" not in self.panel(client, demo)
