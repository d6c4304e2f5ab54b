"""Local time: the settings page, the zone handed to the browser, and share links set in local time.

The browser's part (rewriting times, reading the picker) is in tests/browser/test_local_time.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from demos.models import Demo, DemoTemplate, Profile, ShareLink
from demos.sales import account
from demos.templatetags.demo_ui import local_time
from tests.conftest import make_demo

pytestmark = pytest.mark.django_db

ACCOUNT = "/account/"


@pytest.fixture
def demo(template: DemoTemplate, alice: User) -> Demo:
    return make_demo(template, alice)


@pytest.fixture
def signed_in(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def body_zone(client: Client, url: str = "/") -> str:
    html = client.get(url).content.decode()
    found = re.search(r'<body[^>]* data-time-zone="([^"]*)"', html)
    assert found, "the page's body names no zone"
    return found.group(1)


def create_link(client: Client, demo: Demo, **fields: str) -> Any:
    data = {"recipient": "Pat", "ends": "fixed", **fields}
    url = reverse("demos:create_link", args=[demo.public_id])
    return client.post(url, data, HTTP_HX_REQUEST="true")


class TestAccountPage:
    def test_it_is_for_people_who_are_signed_in(self, client: Client) -> None:
        response = client.get(ACCOUNT)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")

    def test_it_offers_every_zone_and_the_browsers_own(self, signed_in: Client) -> None:
        html = signed_in.get(ACCOUNT).content.decode()
        assert '<option value="" selected>Use my browser&#x27;s zone</option>' in html
        assert '<option value="Europe/Berlin">Berlin</option>' in html
        assert '<option value="America/New_York">New York</option>' in html
        assert 'label for="id_time_zone"' in html

    def test_it_sets_the_zone(self, signed_in: Client, alice: User) -> None:
        response = signed_in.post(ACCOUNT, {"time_zone": "Europe/Berlin"}, follow=True)
        assert Profile.objects.get(user=alice).time_zone == "Europe/Berlin"
        assert "Times now show in Europe/Berlin time." in response.content.decode()
        assert '<option value="Europe/Berlin" selected>' in response.content.decode()
        assert body_zone(signed_in) == "Europe/Berlin"

    def test_it_clears_the_zone_back_to_the_browsers(self, signed_in: Client, alice: User) -> None:
        signed_in.post(ACCOUNT, {"time_zone": "Asia/Tokyo"})
        assert body_zone(signed_in) == "Asia/Tokyo"
        response = signed_in.post(ACCOUNT, {"time_zone": ""}, follow=True)
        assert Profile.objects.get(user=alice).time_zone == ""
        assert "your browser&#x27;s time zone" in response.content.decode()
        assert body_zone(signed_in) == ""

    @pytest.mark.parametrize("bad", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe/Berlin "])
    def test_it_refuses_a_zone_that_does_not_exist(
        self, signed_in: Client, alice: User, bad: str
    ) -> None:
        response = signed_in.post(ACCOUNT, {"time_zone": bad})
        assert response.status_code == 200
        assert "Choose a zone from the list" in response.content.decode()
        assert not Profile.objects.filter(user=alice).exists()

    def test_the_user_menu_links_to_it(self, signed_in: Client) -> None:
        assert f'href="{ACCOUNT}">Your settings</a>' in signed_in.get("/").content.decode()


class TestZoneOnPages:
    def test_a_person_without_a_choice_gets_an_empty_zone(self, signed_in: Client) -> None:
        assert body_zone(signed_in) == ""

    def test_the_zone_is_read_once_and_then_from_the_cache(
        self, signed_in: Client, alice: User, django_assert_num_queries: Any
    ) -> None:
        Profile.objects.create(user=alice, time_zone="Europe/Paris")
        account.set_time_zone(user=alice, time_zone="Europe/Paris")  # drops any cached entry
        with django_assert_num_queries(1):
            assert account.time_zone_of(alice) == "Europe/Paris"
        with django_assert_num_queries(0):
            assert account.time_zone_of(alice) == "Europe/Paris"

    def test_a_zone_gone_from_the_zone_database_counts_as_none(self, alice: User) -> None:
        Profile.objects.create(user=alice, time_zone="Atlantis/Capital")
        assert account.time_zone_of(alice) == ""

    def test_a_moment_is_written_in_utc_for_the_browser_to_rewrite(self) -> None:
        moment = datetime(2026, 12, 3, 17, 44, 5, tzinfo=ZoneInfo("Europe/Berlin"))
        assert local_time(moment) == (
            '<time datetime="2026-12-03T16:44:05+00:00" data-local="datetime">'
            "3 Dec, 16:44 UTC</time>"
        )
        assert local_time(moment, "time").endswith(">16:44 UTC</time>")
        assert local_time(None) == ""

    def test_the_demo_page_marks_its_times_for_the_browser(
        self, signed_in: Client, demo: Demo
    ) -> None:
        html = signed_in.get(reverse("demos:detail", args=[demo.public_id])).content.decode()
        ends = timezone.localtime(demo.expires_at, UTC)
        assert f'<time datetime="{ends.isoformat()}" data-local="time">' in html
        assert re.search(r'data-local="datetime">\d+ \w{3}, \d\d:\d\d UTC</time>', html)


class TestShareLinkInLocalTime:
    def test_the_browsers_utc_reading_is_stored(self, signed_in: Client, demo: Demo) -> None:
        # The browser in New York read "in 30 minutes" on its wall clock and sent it in UTC.
        moment = (timezone.now() + timedelta(minutes=30)).replace(second=0, microsecond=0)
        wall = moment.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%dT%H:%M")
        utc = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        response = create_link(
            signed_in, demo, expires_at=wall, expires_at_utc=utc, time_zone="America/New_York"
        )
        assert response.status_code == 200
        assert ShareLink.objects.get().expires_at == moment

    def test_without_script_the_time_is_read_in_the_persons_zone(
        self, signed_in: Client, demo: Demo, alice: User
    ) -> None:
        account.set_time_zone(user=alice, time_zone="Asia/Kolkata")
        moment = (timezone.now() + timedelta(minutes=30)).replace(second=0, microsecond=0)
        wall = moment.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%dT%H:%M")
        create_link(signed_in, demo, expires_at=wall)
        assert ShareLink.objects.get().expires_at == moment

    def test_without_script_or_a_zone_the_time_is_utc_and_the_label_says_so(
        self, signed_in: Client, demo: Demo
    ) -> None:
        html = signed_in.get(reverse("demos:share_panel", args=[demo.public_id])).content.decode()
        assert re.search(r'<label for="id_expires_at">Time \(UTC\)', html)
        assert 'type="hidden" name="expires_at_utc"' in html
        moment = (timezone.now() + timedelta(minutes=30)).replace(second=0, microsecond=0)
        create_link(signed_in, demo, expires_at=moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
        assert ShareLink.objects.get().expires_at == moment

    def test_the_label_names_the_persons_zone_and_not_utc(
        self, signed_in: Client, demo: Demo, alice: User
    ) -> None:
        account.set_time_zone(user=alice, time_zone="America/New_York")
        html = signed_in.get(reverse("demos:share_panel", args=[demo.public_id])).content.decode()
        assert re.search(r'<label for="id_expires_at">Time \(America/New York\)', html)
        assert "Time (UTC)" not in html

    def test_too_late_says_when_the_demo_ends_in_the_persons_zone(
        self, signed_in: Client, demo: Demo, alice: User
    ) -> None:
        account.set_time_zone(user=alice, time_zone="Europe/Berlin")
        late = demo.expires_at + timedelta(hours=1)
        wall = late.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%dT%H:%M")
        response = create_link(signed_in, demo, expires_at=wall)
        ends = demo.expires_at.astimezone(ZoneInfo("Europe/Berlin"))
        expected = f"the demo ends at {ends.day} {ends:%b, %H:%M} {ends.tzname()}"
        assert ends.tzname() in ("CET", "CEST")
        assert expected in response.content.decode()
        assert not ShareLink.objects.exists()

    def test_too_late_uses_the_browsers_zone_when_the_person_chose_none(
        self, signed_in: Client, demo: Demo
    ) -> None:
        late = (demo.expires_at + timedelta(hours=1)).astimezone(UTC)
        response = create_link(
            signed_in,
            demo,
            expires_at="2099-01-01T00:00",
            expires_at_utc=late.isoformat(),
            time_zone="America/New_York",
        )
        ends = demo.expires_at.astimezone(ZoneInfo("America/New_York"))
        assert (
            f"the demo ends at {ends.day} {ends:%b, %H:%M} {ends.tzname()}"
            in response.content.decode()
        )

    @pytest.mark.parametrize("bad", ["tomorrow", "2026-12-03T18:00"])  # no zone: not a moment
    def test_a_utc_value_that_is_not_a_moment_is_refused(
        self, signed_in: Client, demo: Demo, bad: str
    ) -> None:
        response = create_link(signed_in, demo, expires_at="2026-12-03T18:00", expires_at_utc=bad)
        assert "Choose when the link stops working" in response.content.decode()
        assert not ShareLink.objects.exists()
