"""Words and rules made visible: what salespeople read on their pages, and the rules behind it."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from demos.engine import lifecycle, operations, reconcile
from demos.engine.lifecycle import MIN_LIFETIME, Actor
from demos.models import Demo, DemoTemplate, Status, TemplateSpeed
from demos.rendering import markdown_to_html
from demos.sales.buttons import available_actions
from demos.sharing import links
from demos.sharing.agents import describe, group_visits
from demos.templatetags.demo_ui import ago, chart_names
from tests.conftest import make_demo, work_until_it_moves

HTMX = {"HTTP_HX_REQUEST": "true"}

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(html: str) -> str:
    """What a reader sees: tags dropped, whitespace folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def detail(client: Client, demo: Demo) -> str:
    response = client.get(reverse("demos:detail", args=[demo.public_id]))
    assert response.status_code == 200
    return response.content.decode()


def act(client: Client, demo: Demo, action: str) -> str:
    response = client.post(reverse("demos:action", args=[demo.public_id, action]), **HTMX)
    assert response.status_code == 200, response.content
    return response.content.decode()


@pytest.fixture
def simulated_now(settings: Any) -> None:
    settings.DEMO_SIM_STEP_SECONDS = 0
    settings.DEMO_SIM_FAIL_STEP = ""
    settings.DEMO_SIM_FAIL_RATE = 0
    settings.DEMO_SIM_ERROR_RATE = 0


class TestTechnicalDetails:
    def test_it_shows_salespeople_chart_names_only(
        self, template: DemoTemplate, alice: User
    ) -> None:
        demo = make_demo(template, alice)
        html = detail(logged_in(alice), demo)
        assert "Inside Chart0, Chart1" in text_of(html)
        assert "Installing Chart0" in text_of(html)
        # The live link holds the cluster's name as its host name, and so may the instructions.
        html = html.replace(demo.live_url, "").replace(demo.spec["host"], "")
        # The timeline's events were written by the worker in its words (left as they are).
        html = re.sub(r'<section id="timeline".*?</section>', "", html, flags=re.S)
        for technical in (demo.cluster_name, "1.0.0", "app0", "Technical details"):
            assert technical not in html, technical

    def test_it_keeps_versions_and_names_for_managers_and_template_admins(
        self, template: DemoTemplate, alice: User, manager: User, template_admin: User
    ) -> None:
        demo = make_demo(template, alice)
        for person in (manager, template_admin):
            text = text_of(detail(logged_in(person), demo))
            assert "Technical details" in text
            assert f"Cluster {demo.cluster_name}" in text
            assert re.search(r"app0 ?: chart0 1\.0\.0", text)

    def test_the_catalogs_charts_read_the_same(self, template: DemoTemplate) -> None:
        template.charts.filter(position=1).update(chart="payments-api")
        assert chart_names(template.charts.order_by("position")) == "Chart0, Payments api"


class TestButtonNotes:
    def test_keep_for_later_and_archive_say_what_they_do(
        self, template: DemoTemplate, alice: User
    ) -> None:
        template.retention = timedelta(days=14)
        template.save()
        demo = make_demo(template, alice)
        hints = {action.name: action.hint for action in available_actions(alice, demo)}
        assert hints["pause"] == "Pauses it with everything kept, for 14 days; resume it any time."
        assert hints["archive"] == (
            "Saves a snapshot and frees the cluster; restoring starts a new demo from it."
        )
        text = text_of(detail(logged_in(alice), demo))
        assert "Keep for later Pauses it with everything kept, for 14 days" in text

    def test_the_reason_shows_when_extend_is_no_longer_offered(
        self, template: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        template.max_extensions = 1
        template.save()
        demo = make_demo(template, alice)
        client = logged_in(alice)
        assert "the most" not in text_of(detail(client, demo))
        answer = text_of(act(client, demo, "extend"))
        assert "Extend by" not in answer
        assert "This demo has been extended 1 times, the most “Webshop” allows." in answer

    def test_the_lifetime_shown_follows_an_extend(
        self, template: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice)
        answer = act(logged_in(alice), demo, "extend")
        demo.refresh_from_db()
        lifetime = re.search(r'<div id="demo-lifetime" hx-swap-oob="true">.*?</div>', answer, re.S)
        assert lifetime, "the answer does not bring the lifetime along"
        ends = timezone.localtime(demo.expires_at)
        assert text_of(lifetime[0]) == (
            f"Lifetime 2 h, extended 1 time · ends at {ends:%H:%M} {ends.tzname()}"
        )


class TestStarting:
    def _starting(self, template: DemoTemplate, owner: User, seconds_ago: float) -> Demo:
        at = timezone.now() - timedelta(seconds=seconds_ago)
        return make_demo(template, owner, Status.PROVISIONING, at=at)

    def test_it_counts_down_from_the_templates_typical_time(
        self, template: DemoTemplate, alice: User
    ) -> None:
        TemplateSpeed.objects.create(
            template=template, typical_time_to_ready=timedelta(seconds=40), samples=5
        )
        demo = self._starting(template, alice, 30)
        text = text_of(detail(logged_in(alice), demo))
        assert re.search(r"Starting, about (10|9) s left", text), text
        assert "Running for" not in text

    def test_it_says_when_it_takes_longer_than_usual(
        self, template: DemoTemplate, alice: User
    ) -> None:
        TemplateSpeed.objects.create(
            template=template, typical_time_to_ready=timedelta(seconds=40), samples=5
        )
        demo = self._starting(template, alice, 90)
        text = text_of(detail(logged_in(alice), demo))
        assert "Starting, taking a little longer than the usual 40 s." in text

    def test_a_templates_first_start_says_so(self, template: DemoTemplate, alice: User) -> None:
        demo = self._starting(template, alice, 5)
        text = text_of(detail(logged_in(alice), demo))
        assert "this is the first start of this template" in text
        assert "Running for" not in text


class TestResumeKeepsTheTimeLeft:
    def _paused_with(self, template: DemoTemplate, owner: User, left: timedelta) -> Demo:
        demo = make_demo(template, owner)
        Demo.objects.filter(pk=demo.pk).update(expires_at=timezone.now() + left)
        demo.refresh_from_db()
        demo = lifecycle.pause_demo(demo=demo, actor=Actor.of(owner))
        return work_until_it_moves(demo, operations.pause)

    def _resumed(self, demo: Demo, owner: User) -> Demo:
        demo = lifecycle.resume_demo(demo=demo, actor=Actor.of(owner))
        return work_until_it_moves(demo, operations.resume)

    def test_it_runs_for_the_time_it_had_left(
        self, template: DemoTemplate, alice: User, rq_redis: Any, simulated_now: None
    ) -> None:
        demo = self._paused_with(template, alice, timedelta(hours=1, minutes=20, seconds=30))
        assert demo.status == Status.PAUSED
        assert (
            timedelta(hours=1, minutes=20)
            < demo.paused_remaining
            <= timedelta(hours=1, minutes=20, seconds=30)
        )
        (resume,) = [a for a in available_actions(alice, demo) if a.name == "resume"]
        assert resume.label == "Resume (1 h 20 min left)"
        assert "runs for 1 h 20 min, the time it had left" in text_of(
            detail(logged_in(alice), demo)
        )
        with time_machine.travel(timezone.now() + timedelta(days=2)):
            demo = self._resumed(demo, alice)
            left = demo.expires_at - timezone.now()
        assert demo.status == Status.READY
        assert timedelta(hours=1, minutes=19) < left <= timedelta(hours=1, minutes=20, seconds=30)
        assert demo.paused_remaining is None

    def test_it_runs_at_least_the_shortest_lifetime(
        self, template: DemoTemplate, alice: User, rq_redis: Any, simulated_now: None
    ) -> None:
        demo = self._resumed(self._paused_with(template, alice, timedelta(seconds=30)), alice)
        assert demo.expires_at - demo.ready_at == MIN_LIFETIME

    def test_a_demo_paused_before_gets_its_whole_lifetime(
        self, template: DemoTemplate, alice: User, rq_redis: Any, simulated_now: None
    ) -> None:
        demo = self._paused_with(template, alice, timedelta(minutes=20))
        Demo.objects.filter(pk=demo.pk).update(paused_remaining=None)
        demo.refresh_from_db()
        (resume,) = [a for a in available_actions(alice, demo) if a.name == "resume"]
        assert (resume.label, resume.hint) == ("Resume", "Runs for 2 h again")
        demo = self._resumed(demo, alice)
        assert demo.expires_at - demo.ready_at == demo.lifetime


class TestExpiryWarnings:
    def test_a_demo_shorter_than_the_lead_gets_only_the_shorter_warning(
        self, template: DemoTemplate, alice: User, rq_redis: Any, mailoutbox: list[Any]
    ) -> None:
        demo = make_demo(template, alice, lifetime=timedelta(hours=1))
        with time_machine.travel(timezone.now() + timedelta(minutes=1)):
            assert reconcile.warn_before_expiry(timezone.now()) == 0
        with time_machine.travel(timezone.now() + timedelta(minutes=51)):
            assert reconcile.warn_before_expiry(timezone.now()) == 1
        assert [m.subject for m in mailoutbox] == ["Your Webshop demo ends in 8 min"]
        assert demo.events.filter(kind="warned").count() == 1

    def test_an_extended_demo_gets_the_longer_warning_again(
        self, template: DemoTemplate, alice: User, rq_redis: Any, mailoutbox: list[Any]
    ) -> None:
        demo = make_demo(template, alice, lifetime=timedelta(hours=1), extensions=1)
        with time_machine.travel(timezone.now() + timedelta(minutes=61)):
            assert reconcile.warn_before_expiry(timezone.now()) == 1
        assert mailoutbox[0].subject == "Your Webshop demo ends in 58 min"
        assert demo.pk


class TestJustNow:
    def test_it_says_just_now_under_a_minute(self) -> None:
        now = timezone.now()
        assert ago(now) == "just now"
        assert ago(now - timedelta(seconds=59)) == "just now"
        assert ago(now - timedelta(minutes=5, seconds=2)) == "5 min 2 s ago"

    def test_my_demos_say_requested_just_now(self, template: DemoTemplate, alice: User) -> None:
        make_demo(template, alice, Status.PROVISIONING)
        response = logged_in(alice).get(reverse("demos:my_demos"))
        text = text_of(response.content.decode())
        assert "Requested just now" in text
        assert " 0 s ago" not in text


class TestInstructionLinks:
    def test_bare_addresses_become_links_that_open_in_a_new_tab(self) -> None:
        html = markdown_to_html("Log in at https://shop.example.com/admin?x=1&y=2, then look.")
        assert html == (
            '<p>Log in at <a href="https://shop.example.com/admin?x=1&amp;y=2" target="_blank" '
            'rel="noopener noreferrer">https://shop.example.com/admin?x=1&amp;y=2</a>, then '
            "look.</p>"
        )

    def test_links_and_code_stay_as_they_are(self) -> None:
        html = markdown_to_html("[the shop](https://a.example) and `curl https://b.example`")
        assert html == (
            '<p><a href="https://a.example" target="_blank" rel="noopener noreferrer">the shop'
            "</a> and <code>curl https://b.example</code></p>"
        )

    def test_a_script_address_is_never_a_link(self) -> None:
        assert "<a" not in markdown_to_html("javascript://alert(1) and data://x")

    def test_the_demo_page_links_the_instructions(
        self, template: DemoTemplate, alice: User
    ) -> None:
        template.instructions = "Open https://${DEMO_HOST}/admin to start."
        template.save()
        demo = make_demo(template, alice)
        html = detail(logged_in(alice), demo)
        url = f"https://{demo.spec['host']}/admin"
        assert f'<a href="{url}" target="_blank" rel="noopener noreferrer">{url}</a>' in html


class TestVisits:
    @pytest.mark.parametrize(
        ("agent", "words"),
        [
            (CHROME_MAC, "Chrome on macOS"),
            (SAFARI_IPHONE, "Safari on iOS"),
            (EDGE_WINDOWS, "Edge on Windows"),
            (FIREFOX_LINUX, "Firefox on Linux"),
            (CHROME_ANDROID, "Chrome on Android"),
            ("curl/8.5.0", "Unknown browser"),
            ("", "Unknown browser"),
        ],
    )
    def test_it_names_common_browsers_and_systems(self, agent: str, words: str) -> None:
        assert describe(agent) == words

    def test_the_share_panel_groups_visits_per_browser(
        self, template: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice)
        made = links.create_share_link(demo=demo, actor=Actor.of(alice), recipient="Pat")
        for agent in (CHROME_MAC, SAFARI_IPHONE, CHROME_MAC):
            links.record_visit(made.link, user_agent=agent, address="192.0.2.0/24")
        groups = group_visits(links.visits_for(demo))
        assert [g.summary for g in groups] == [
            "Chrome on macOS · 2 visits",
            "Safari on iOS · 1 visit",
        ]
        html = detail(logged_in(alice), demo)
        assert "Chrome on macOS · 2 visits" in text_of(html)
        assert "Mozilla" not in html
