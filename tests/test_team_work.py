"""Team work on a demo: colleagues, handing it over, starting again like it, and a prospect's
request for more time as a badge with one-click Extend."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from demos import roles
from demos.engine import lifecycle
from demos.engine.capacity import slots_for
from demos.engine.lifecycle import Actor
from demos.gate import entry, passes, state
from demos.gate.passes import MEMBER, Pass
from demos.gate.state import Decision
from demos.models import Demo, DemoEvent, DemoTemplate, Status
from demos.sales import team
from demos.sharing import links
from portal.redis_connection import shared
from tests.conftest import PASSWORD, make_demo
from tests.test_sales_views import HTMX, logged_in, page


@pytest.fixture
def demo(template: DemoTemplate, alice: User) -> Demo:
    return make_demo(template, alice, prospect_company="Acme", prospect_name="Pat Lee")


@pytest.fixture
def carol(db: None) -> User:
    user = User.objects.create_user(
        "carol", "carol@example.com", PASSWORD, first_name="Carol", last_name="Cole"
    )
    user.groups.add(Group.objects.get(name=roles.SALES))
    return user


def team_url(demo: Demo, name: str = "team", *args: Any) -> str:
    return reverse(f"demos:{name}", args=[demo.public_id, *args])


def add(client: Client, demo: Demo, who: str) -> Any:
    return client.post(team_url(demo, "add_colleague"), {"person": who})


def events(demo: Demo, kind: str) -> list[DemoEvent]:
    return list(demo.events.filter(kind=kind))


class TestColleagues:
    def test_it_adds_a_colleague_picked_from_the_list(
        self, alice: User, bob: User, demo: Demo, django_capture_on_commit_callbacks: Any
    ) -> None:
        client = logged_in(alice)
        html = page(client, team_url(demo))
        assert '<option value="Bob &lt;bob@example.com&gt;">' in html  # offered in the picker
        assert "Alice &lt;" not in html  # not the owner herself
        with django_capture_on_commit_callbacks(execute=True):
            response = add(client, demo, "Bob <bob@example.com>")
        assert response.status_code == 302
        assert list(demo.colleagues.all()) == [bob]
        assert "Added Bob as a colleague." in events(demo, "colleague-added")[0].message
        assert [m.to for m in mail.outbox] == [["bob@example.com"]]
        assert "Alice added you" in mail.outbox[0].subject
        assert team_url(demo, "detail")[: -len("/")] in mail.outbox[0].body
        html = page(client, team_url(demo))
        assert "Bob" in html
        assert "No colleagues yet" not in html

    def test_a_typed_email_or_user_name_finds_the_person(
        self, alice: User, bob: User, carol: User, demo: Demo
    ) -> None:
        assert add(logged_in(alice), demo, "CAROL@example.com").status_code == 302
        assert team.find_person("bob") == bob
        assert team.find_person("Carol Cole") == carol
        assert set(demo.colleagues.all()) == {carol}

    def test_a_name_that_fits_nobody_is_refused_with_words(self, alice: User, demo: Demo) -> None:
        response = add(logged_in(alice), demo, "Nobody Known")
        assert response.status_code == 400
        assert "Nobody in the portal goes by “Nobody Known”" in unescape(response.content.decode())
        assert not demo.colleagues.exists()

    def test_people_who_cannot_use_the_portal_are_not_offered(
        self, alice: User, bob: User, demo: Demo
    ) -> None:
        outsider = User.objects.create_user("olga", "olga@example.com", "x")  # in no group
        bob.is_active = False
        bob.save()
        assert team.find_person("olga@example.com") is None
        assert team.find_person("bob") is None
        html = page(logged_in(alice), team_url(demo))
        assert outsider.email not in html
        assert "bob@example.com" not in html

    def test_the_colleague_sees_the_demo_marked_as_shared(
        self, alice: User, bob: User, demo: Demo
    ) -> None:
        team.add_colleague(demo=demo, person=bob, actor=Actor.of(alice))
        client = logged_in(bob)
        mine = page(client, reverse("demos:my_demos"))
        assert str(demo.public_id) in mine
        assert "Shared with you by Alice" in mine
        detail = page(client, team_url(demo, "detail"))
        assert "Shared with you by Alice" in detail
        assert "1 colleague" in detail

    def test_the_colleague_acts_as_the_owner_does(self, alice: User, bob: User, demo: Demo) -> None:
        team.add_colleague(demo=demo, person=bob, actor=Actor.of(alice))
        client = logged_in(bob)
        response = client.post(team_url(demo, "action", "extend"), **HTMX)
        assert response.status_code == 200
        demo.refresh_from_db()
        assert demo.extension_count == 1
        assert demo.events.filter(kind="extended", actor=bob).exists()
        made = client.post(team_url(demo, "create_link"), {"recipient": "Pat", "ends": "follow"})
        assert made.status_code == 302
        assert demo.share_links.count() == 1
        assert client.get(team_url(demo, "open")).status_code == 302

    def test_the_colleague_cannot_change_the_team_or_hand_it_over(
        self, alice: User, bob: User, carol: User, demo: Demo
    ) -> None:
        team.add_colleague(demo=demo, person=bob, actor=Actor.of(alice))
        client = logged_in(bob)
        assert add(client, demo, "carol").status_code == 403
        assert client.post(team_url(demo, "hand_over"), {"person": "bob"}).status_code == 403
        remove = team_url(demo, "remove_colleague", bob.pk)
        assert client.post(remove).status_code == 403
        html = page(client, team_url(demo))
        assert "Add a colleague" not in html
        assert "Hand the demo over" not in html

    def test_a_manager_manages_anyones_team(self, manager: User, bob: User, demo: Demo) -> None:
        assert add(logged_in(manager), demo, "bob").status_code == 302
        assert events(demo, "colleague-added")[0].actor == manager

    def test_removing_a_colleague_takes_the_demo_away_from_them(
        self, alice: User, bob: User, demo: Demo
    ) -> None:
        team.add_colleague(demo=demo, person=bob, actor=Actor.of(alice))
        response = logged_in(alice).post(team_url(demo, "remove_colleague", bob.pk))
        assert response.status_code == 302
        assert not demo.colleagues.exists()
        assert "Removed Bob" in events(demo, "colleague-removed")[0].message
        client = logged_in(bob)
        assert str(demo.public_id) not in page(client, reverse("demos:my_demos"))
        assert client.get(team_url(demo, "detail")).status_code == 404
        assert client.post(team_url(demo, "action", "extend")).status_code == 404

    def test_slots_stay_counted_against_the_owner(self, alice: User, bob: User, demo: Demo) -> None:
        team.add_colleague(demo=demo, person=bob, actor=Actor.of(alice))
        assert slots_for(alice).used == 1
        assert slots_for(bob).used == 0

    def test_my_demos_costs_the_same_however_many_demos_are_shared(
        self, template: DemoTemplate, alice: User, bob: User, carol: User, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 100
        client = logged_in(bob)
        own = make_demo(template, bob)
        first = make_demo(template, alice)
        team.add_colleague(demo=first, person=bob, actor=Actor.of(alice))

        def queries() -> int:
            client.get(reverse("demos:my_demos"))
            with CaptureQueriesContext(connection) as captured:
                assert client.get(reverse("demos:my_demos")).status_code == 200
            return len(captured)

        with_one = queries()
        for status in (Status.READY, Status.PAUSED, Status.FAILED, Status.READY):
            shared_demo = make_demo(template, alice, status)
            for person in (bob, carol):
                team.add_colleague(demo=shared_demo, person=person, actor=Actor.of(alice))
        assert queries() == with_one
        listed = page(client, reverse("demos:my_demos"))
        assert str(own.public_id) in listed
        assert listed.count("Shared with you by Alice") == 5

    def test_the_fleet_asks_who_may_act_once_whatever_the_number_of_demos(
        self, template: DemoTemplate, alice: User, template_admin: User
    ) -> None:
        client = logged_in(template_admin)
        make_demo(template, alice)

        def queries() -> int:
            client.get(reverse("demos:fleet"))
            with CaptureQueriesContext(connection) as captured:
                assert client.get(reverse("demos:fleet")).status_code == 200
            return len(captured)

        with_one = queries()
        for _ in range(4):
            make_demo(template, alice)
        assert queries() == with_one

    def test_a_colleagues_status_poll_is_answered_from_one_query(
        self, template: DemoTemplate, alice: User, bob: User
    ) -> None:
        starting = make_demo(template, alice, Status.PROVISIONING)
        team.add_colleague(demo=starting, person=bob, actor=Actor.of(alice))
        client = logged_in(bob)
        body = client.get(team_url(starting, "status")).content.decode()
        version = re.search(r"[?&](?:amp;)?v=([0-9a-f]+)", body).group(1)
        url = team_url(starting, "status") + f"?v={version}"
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 204
        assert len(captured) == 1


class TestTheGate:
    """A removed colleague loses the live app within seconds, like a revoked link."""

    def ask(self, demo: Demo, grant: Pass) -> int:
        client = Client()
        client.cookies[passes.cookie_name()] = passes.seal_cookie(grant)
        host = f"{demo.cluster_name}.demos.localhost"
        response = client.get(reverse("gate:check"), HTTP_X_ORIGINAL_URL=f"https://{host}/shop")
        return response.status_code

    def test_a_closed_member_entry_is_refused(self) -> None:
        grant = Pass("c-one", 41, MEMBER, 5, 2000)
        redis = shared()
        redis.set(state.demo_key("c-one"), "open:0")
        redis.set(state.member_key("c-one", 5), "closed")
        assert state.check(grant, counts=False, now=1000.0) is Decision.DENY
        assert state.decide(grant, "open:0", "open", 1000.0) is Decision.ALLOW
        assert state.decide(grant, "open:0", None, 1000.0) is Decision.DENY

    def test_a_colleague_is_let_in_without_a_query_and_shut_out_once_removed(
        self,
        alice: User,
        bob: User,
        demo: Demo,
        django_assert_num_queries: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        grant = entry.member_pass(demo, bob.pk)
        state.publish_demo(demo)
        with django_capture_on_commit_callbacks(execute=True):
            team.add_colleague(demo=demo, person=bob, actor=Actor.of(alice))
        with django_assert_num_queries(0):
            assert self.ask(demo, grant) == 200
        with django_capture_on_commit_callbacks(execute=True):
            team.remove_colleague(demo=demo, person=bob, actor=Actor.of(alice))
        with django_assert_num_queries(0):  # the removal was published: no database needed
            assert self.ask(demo, grant) == 401

    def test_a_pass_of_someone_who_may_not_see_the_demo_is_refused(
        self, bob: User, manager: User, demo: Demo
    ) -> None:
        state.publish_demo(demo)
        assert self.ask(demo, entry.member_pass(demo, bob.pk)) == 401
        assert shared().get(state.member_key(demo.cluster_name, bob.pk)) == b"closed"
        assert self.ask(demo, entry.member_pass(demo, manager.pk)) == 200

    def test_an_owner_who_hands_over_without_staying_on_is_shut_out(
        self, alice: User, bob: User, demo: Demo, django_capture_on_commit_callbacks: Any
    ) -> None:
        state.publish_demo(demo)
        alice_pass = entry.member_pass(demo, alice.pk)
        assert self.ask(demo, alice_pass) == 200
        with django_capture_on_commit_callbacks(execute=True):
            team.hand_over_demo(
                demo=demo, new_owner=bob, actor=Actor.of(alice), keep_old_owner=False
            )
        assert self.ask(demo, alice_pass) == 401
        assert self.ask(demo, entry.member_pass(demo, bob.pk)) == 200


class TestHandOver:
    def test_it_hands_the_demo_over_and_the_old_owner_stays_on(
        self, alice: User, bob: User, demo: Demo, django_capture_on_commit_callbacks: Any
    ) -> None:
        link = links.create_share_link(demo=demo, actor=Actor.of(alice), recipient="Pat")
        with django_capture_on_commit_callbacks(execute=True):
            response = logged_in(alice).post(
                team_url(demo, "hand_over"), {"person": "bob@example.com", "stay_on": "on"}
            )
        assert response.status_code == 302
        assert response["Location"] == team_url(demo)
        demo.refresh_from_db()
        assert demo.owner == bob
        assert list(demo.colleagues.all()) == [alice]
        assert links.resolve(link.token) is not None  # the prospect's link keeps working
        assert "Handed over from Alice to Bob" in events(demo, "handed-over")[0].message
        assert [m.to for m in mail.outbox] == [["bob@example.com"]]
        assert "handed a Webshop demo over to you" in mail.outbox[0].subject
        assert slots_for(bob).used == 1
        assert slots_for(alice).used == 0
        assert "Shared with you by Bob" in page(logged_in(alice), reverse("demos:my_demos"))

    def test_without_staying_on_the_old_owner_no_longer_sees_it(
        self, alice: User, bob: User, demo: Demo
    ) -> None:
        client = logged_in(alice)
        response = client.post(team_url(demo, "hand_over"), {"person": "bob"})
        assert response["Location"] == reverse("demos:my_demos")
        assert client.get(team_url(demo, "detail")).status_code == 404

    def test_it_is_refused_when_the_new_owner_has_no_free_slot(
        self, template: DemoTemplate, alice: User, bob: User, demo: Demo, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 1
        make_demo(template, bob)
        response = logged_in(alice).post(team_url(demo, "hand_over"), {"person": "bob"})
        assert response.status_code == 400
        text = unescape(response.content.decode())
        assert "Bob already uses all 1 of their demo slots" in text
        demo.refresh_from_db()
        assert demo.owner == alice
        assert not events(demo, "handed-over")

    def test_a_demo_kept_for_later_needs_no_slot(
        self, template: DemoTemplate, alice: User, bob: User, settings: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 1
        make_demo(template, bob)
        paused = make_demo(template, alice, Status.PAUSED)
        team.hand_over_demo(demo=paused, new_owner=bob, actor=Actor.of(alice), keep_old_owner=True)
        paused.refresh_from_db()
        assert paused.owner == bob


class TestStartAgain:
    def test_an_ended_demo_offers_the_start_form_filled_in_as_it_was(
        self, template: DemoTemplate, alice: User
    ) -> None:
        ended = make_demo(
            template, alice, Status.DELETED, prospect_company="Acme", prospect_name="Pat Lee"
        )
        client = logged_in(alice)
        detail = unescape(page(client, team_url(ended, "detail")))
        found = re.search(r'href="(/templates/webshop/start/\?[^"]+)"[^>]*>.*?Start again', detail)
        assert found, "no 'Start again like this' link"
        url = found.group(1)
        assert "prospect_company=Acme" in url
        assert "prospect_name=Pat+Lee" in url
        assert "lifetime=7200" in url
        assert url in unescape(page(client, reverse("demos:my_demos")))  # the ended row too
        form = page(client, url)
        assert 'value="Acme"' in form
        assert 'value="Pat Lee"' in form
        assert re.search(r'<option value="7200"[^>]*selected', form)

    def test_a_running_demo_does_not_offer_it(self, alice: User, demo: Demo) -> None:
        assert "Start again like this" not in page(logged_in(alice), team_url(demo, "detail"))

    def test_a_template_taken_out_of_the_catalog_is_not_offered(
        self, template: DemoTemplate, alice: User
    ) -> None:
        ended = make_demo(template, alice, Status.DELETED)
        client = logged_in(alice)
        template.flagged_at = timezone.now()
        template.save()
        html = unescape(page(client, team_url(ended, "detail")))
        assert "Start again like this" not in html
        assert "“Webshop” is not available right now" in html
        template.flagged_at = None
        template.enabled = False
        template.save()
        html = unescape(page(client, reverse("demos:my_demos")))
        assert "“Webshop” is no longer offered in the catalog" in html


class TestMoreTime:
    def ask_for_more_time(self, demo: Demo) -> None:
        link = links.create_share_link(
            demo=demo, actor=Actor.of(demo.owner), recipient="Pat <pat@acme.example>"
        ).link
        assert links.request_more_time(link)

    def test_the_request_shows_as_a_badge_with_one_click_extend(
        self, alice: User, demo: Demo
    ) -> None:
        self.ask_for_more_time(demo)
        demo.refresh_from_db()
        assert demo.more_time_requested_at is not None
        client = logged_in(alice)
        for url in (team_url(demo, "detail"), reverse("demos:my_demos")):
            html = page(client, url)
            assert "Pat Lee asked for more time" in html
            assert re.search(r'class="more-time".*?/actions/extend/', html, re.S)
        response = client.post(team_url(demo, "action", "extend"), **HTMX)
        assert response.status_code == 200
        assert 'class="more-time"' not in response.content.decode()
        demo.refresh_from_db()
        assert demo.more_time_requested_at is None
        assert demo.extension_count == 1

    def test_a_second_request_keeps_the_first_ones_time(self, demo: Demo) -> None:
        self.ask_for_more_time(demo)
        first = Demo.objects.get(pk=demo.pk).more_time_requested_at
        shared().flushdb()  # the cooldown has passed
        self.ask_for_more_time(demo)
        assert Demo.objects.get(pk=demo.pk).more_time_requested_at == first

    def test_dismiss_puts_it_away_without_extending(self, alice: User, demo: Demo) -> None:
        self.ask_for_more_time(demo)
        client = logged_in(alice, csrf=True)
        assert client.post(team_url(demo, "dismiss_more_time"), **HTMX).status_code == 403
        client = logged_in(alice)
        response = client.post(team_url(demo, "dismiss_more_time"), **HTMX)
        assert response.status_code == 200
        assert "Dismissed the request for more time." in response.content.decode()
        demo.refresh_from_db()
        assert demo.more_time_requested_at is None
        assert demo.extension_count == 0
        assert events(demo, "more-time-dismissed")

    def test_when_extend_is_no_longer_possible_it_says_why_and_offers_email(
        self, template: DemoTemplate, alice: User
    ) -> None:
        demo = make_demo(template, alice, prospect_name="Pat Lee", extensions=3)
        self.ask_for_more_time(demo)
        html = unescape(page(logged_in(alice), team_url(demo, "detail")))
        badge = re.search(r'<div class="more-time".*?</div>\s*</div>', html, re.S).group(0)
        assert "extended 3 times, the most" in badge
        assert "/actions/extend/" not in badge
        assert 'href="mailto:pat@acme.example?subject=' in badge

    def test_an_open_demo_page_hears_of_the_request_through_its_presence_poll(
        self, alice: User, demo: Demo
    ) -> None:
        client = logged_in(alice)
        url = team_url(demo, "status") + "?fragment=presence&present=0&asked=0"
        assert client.get(url, **HTMX).status_code == 204
        self.ask_for_more_time(demo)
        response = client.get(url, **HTMX)
        assert response.status_code in (200, 286)
        assert response["HX-Retarget"] == "#status-panel"
        assert "Pat Lee asked for more time" in response.content.decode()

    def test_template_admins_watching_see_no_badge(self, template_admin: User, demo: Demo) -> None:
        self.ask_for_more_time(demo)
        assert 'class="more-time"' not in page(logged_in(template_admin), team_url(demo, "detail"))

    def test_the_lifecycles_extend_clears_it_on_every_path(self, alice: User, demo: Demo) -> None:
        self.ask_for_more_time(demo)
        demo.refresh_from_db()
        lifecycle.extend_demo(demo=demo, actor=Actor.of(alice))
        assert Demo.objects.get(pk=demo.pk).more_time_requested_at is None
