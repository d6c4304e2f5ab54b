"""Self-service passwords: reset by email (no account enumeration, rate limited, lifts a login
lockout) and changed while signed in."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from unittest import mock

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse
from redis.exceptions import RedisError

from demos.sales import password
from portal import counters
from portal.redis_connection import shared
from tests.conftest import PASSWORD

NEW_PASSWORD = "a-new-and-long-passphrase-42"


@pytest.fixture(autouse=True)
def _no_earlier_counts() -> None:
    shared().flushdb()


def ask_for_reset(client: Client, email: str, **headers: Any) -> Any:
    return client.post(reverse("password_reset"), {"email": email}, **headers)


def link_in(message: Any) -> str:
    found = re.search(r"https?://\S+/password/reset/\S+/", message.body)
    assert found, message.body
    return found.group(0)


def log_in(client: Client, username: str, secret: str) -> Any:
    return client.post(reverse("login"), {"username": username, "password": secret})


class TestPasswordReset:
    def test_it_resets_by_email_from_request_to_logging_in(
        self, alice: User, client: Client, settings: Any
    ) -> None:
        assert "Forgot your password?" in client.get(reverse("login")).content.decode()
        response = ask_for_reset(client, "alice@example.com", HTTP_USER_AGENT="Firefox/130.0")
        assert response.status_code == 302
        assert response["Location"] == reverse("password_reset_done")
        assert "works for 1 hour" in client.get(response["Location"]).content.decode()

        [message] = mail.outbox
        assert message.to == ["alice@example.com"]
        assert message.subject == "Reset your demo portal password"
        assert "from Firefox (network 127.0.0.0/24)" in message.body
        assert "If it was not you, ignore this email" in message.body
        url = link_in(message)
        assert url.startswith(settings.SITE_URL)

        form_page = client.get(url, follow=True)
        assert "Choose a new password" in form_page.content.decode()
        set_url = form_page.redirect_chain[-1][0]
        done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
        assert done["Location"] == reverse("password_reset_complete")

        fresh = Client()
        assert log_in(fresh, "alice", PASSWORD).status_code == 200  # the old one: refused
        assert log_in(fresh, "alice", NEW_PASSWORD).status_code == 302
        # The link worked once.
        again = client.get(url, follow=True).content.decode()
        assert "This reset link does not work" in again

    def test_unknown_addresses_get_the_same_answer(self, alice: User, client: Client) -> None:
        known = ask_for_reset(client, "alice@example.com")
        unknown = ask_for_reset(client, "nobody@example.com")
        assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
        assert len(mail.outbox) == 1

    def test_a_reset_lifts_a_login_lockout(
        self, alice: User, client: Client, settings: Any
    ) -> None:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            log_in(client, "alice", "wrong")
        assert log_in(client, "alice", PASSWORD).status_code == 429
        ask_for_reset(client, "alice@example.com")
        form_page = client.get(link_in(mail.outbox[0]), follow=True)
        set_url = form_page.redirect_chain[-1][0]
        client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
        assert not AccessAttempt.objects.filter(username="alice").exists()
        assert log_in(Client(), "alice", NEW_PASSWORD).status_code == 302

    def test_the_lockout_page_offers_a_reset(
        self, alice: User, client: Client, settings: Any
    ) -> None:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            response = log_in(client, "alice", "wrong")
        assert reverse("password_reset") in response.content.decode()

    def test_an_address_gets_a_few_emails_an_hour_and_the_answer_stays_the_same(
        self, alice: User, client: Client
    ) -> None:
        answers = {ask_for_reset(Client(), "Alice@Example.com")["Location"] for _ in range(5)}
        assert answers == {reverse("password_reset_done")}
        assert len(mail.outbox) == password.RESETS_PER_ADDRESS

    def test_one_client_asking_for_many_addresses_is_slowed_down(
        self, alice: User, client: Client
    ) -> None:
        for number in range(password.RESETS_PER_CLIENT):
            assert ask_for_reset(client, f"someone{number}@example.com").status_code == 302
        refused = ask_for_reset(client, "alice@example.com")
        assert refused.status_code == 429
        assert "Too many password reset requests" in unescape(refused.content.decode())
        assert mail.outbox == []

    def test_without_redis_requests_go_through_with_a_log_line(
        self, alice: User, client: Client, caplog: Any
    ) -> None:
        with mock.patch.object(counters.cache, "add", side_effect=RedisError("down")):
            response = ask_for_reset(client, "alice@example.com")
        assert response.status_code == 302
        assert len(mail.outbox) == 1
        assert "Redis is unavailable" in caplog.text

    def test_the_reset_link_lasts_an_hour(self, settings: Any) -> None:
        assert settings.PASSWORD_RESET_TIMEOUT == 3600


class TestPasswordChange:
    def test_a_signed_in_person_changes_their_password(self, alice: User) -> None:
        client = Client()
        client.force_login(alice)
        html = client.get(reverse("demos:account")).content.decode()
        assert reverse("password_change") in html
        response = client.post(
            reverse("password_change"),
            {
                "old_password": PASSWORD,
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
            },
        )
        assert response["Location"] == reverse("password_change_done")
        assert client.get(reverse("demos:catalog")).status_code == 200  # still signed in
        alice.refresh_from_db()
        assert alice.check_password(NEW_PASSWORD)

    def test_a_wrong_current_password_is_refused(self, alice: User) -> None:
        client = Client()
        client.force_login(alice)
        response = client.post(
            reverse("password_change"),
            {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
        assert response.status_code == 200
        assert "Your old password was entered incorrectly" in unescape(response.content.decode())
