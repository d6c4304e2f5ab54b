"""Prospect access: share links, the landing page, the visit log, and what must not leak."""

from __future__ import annotations

import inspect
import ipaddress
import logging
import secrets
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from demos.engine import lifecycle
from demos.engine.lifecycle import Actor
from demos.errors import LifecycleError
from demos.models import Demo, ShareLink, Status
from demos.sharing import links, prospect
from portal.clients import client_address
from portal.sealing import seal
from tests.conftest import finish_delete, make_demo


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def demo(template: Any, alice: Any) -> Demo:
    return make_demo(template, alice, prospect_company="Acme", prospect_name="Pat")


def share(demo: Demo, **kwargs: Any) -> links.NewLink:
    kwargs.setdefault("recipient", "pat@acme.example")
    return links.create_share_link(demo=demo, actor=Actor.of(demo.owner), **kwargs)


def end(demo: Demo) -> None:
    """Delete the demo as its owner would, and let the worker finish the job."""
    finish_delete(lifecycle.delete_demo(demo=demo, actor=Actor.of(demo.owner)))


def landing(client: Client, token: str, **headers: str) -> Any:
    return client.get(reverse("prospect:landing", args=[token]), **headers)


def assert_neutral(response: Any) -> None:
    assert response.status_code == 404
    assert response.templates[0].name == "prospect/not_available.html"
    assert "This link is not available" in response.text


def assert_ended(response: Any, heading: str = "This demo has ended") -> None:
    """The friendly page for a link that existed: what happened, and whom to contact."""
    assert response.status_code == 200
    assert response.templates[0].name == "prospect/ended.html"
    assert heading in response.text
    assert "alice@example.com" in response.text


class TestTokens:
    def test_only_a_hash_of_the_256_bit_token_is_stored(self, demo: Demo) -> None:
        new = share(demo)
        assert len(new.token) >= 43  # 32 random bytes, URL-safe base64
        stored = ShareLink.objects.get()
        assert stored.token_hash == links.hash_token(new.token)
        assert new.token not in str(ShareLink.objects.values().get())

    def test_thousands_of_random_guesses_find_nothing(self, demo: Demo) -> None:
        share(demo)
        hits = [t for t in (secrets.token_urlsafe(32) for _ in range(3000)) if links.resolve(t)]
        assert hits == []

    @pytest.mark.parametrize("spoil", ["tampered", "truncated", "random", "empty-ish"])
    def test_broken_links_get_the_neutral_page(
        self, client: Client, demo: Demo, spoil: str
    ) -> None:
        token = share(demo).token
        broken = {
            "tampered": token[:-1] + ("A" if token[-1] != "A" else "B"),
            "truncated": token[:20],
            "random": secrets.token_urlsafe(32),
            "empty-ish": "x",
        }[spoil]
        assert_neutral(landing(client, broken))

    def test_revocation_takes_effect_at_once(self, client: Client, demo: Demo) -> None:
        new = share(demo)
        assert landing(client, new.token).status_code == 200
        links.revoke_share_link(link=new.link, actor=Actor.of(demo.owner))
        # Revoking means "no": any browser is told so, with whom to ask for a new link.
        assert_ended(landing(client, new.token), "This demo was turned off")
        assert_ended(landing(Client(), new.token), "This demo was turned off")
        assert demo.events.filter(kind="share-link-revoked").exists()

    def test_a_fixed_expiry_ends_the_link_on_time(self, client: Client, demo: Demo) -> None:
        end = timezone.now() + timedelta(minutes=30)
        token = share(demo, expires_at=end).token
        with time_machine.travel(end - timedelta(seconds=5)):
            assert landing(client, token).status_code == 200
        with time_machine.travel(end + timedelta(seconds=5)):
            assert_ended(landing(Client(), token), "This link has expired")

    def test_a_link_cannot_outlive_its_demo(self, demo: Demo) -> None:
        with pytest.raises(LifecycleError, match="cannot outlive"):
            share(demo, expires_at=demo.expires_at + timedelta(minutes=1))

    def test_a_following_link_is_extended_with_the_demo(
        self, client: Client, demo: Demo, rq_redis: Any
    ) -> None:
        token = share(demo).token
        old_end = demo.expires_at
        lifecycle.extend_demo(demo=demo, actor=Actor.of(demo.owner))
        with time_machine.travel(old_end + timedelta(minutes=5)):
            assert landing(client, token).status_code == 200
        with time_machine.travel(demo.expires_at + timedelta(seconds=1)):
            assert_ended(landing(Client(), token))

    def test_links_of_ended_demos_say_so_on_any_device(self, client: Client, demo: Demo) -> None:
        token = share(demo).token
        end(demo)
        assert_ended(landing(client, token))

    def test_the_prospect_who_used_it_is_told_the_demo_ended_and_whom_to_ask(
        self, client: Client, demo: Demo
    ) -> None:
        token = share(demo).token
        landing(client, token)
        end(demo)
        response = landing(client, token)
        assert response.status_code == 200
        assert "This demo has ended" in response.text
        assert "alice@example.com" in response.text
        poll = client.get(reverse("prospect:status", args=[token]))
        assert poll.status_code == 286
        assert "This demo has ended" in poll.text


class TestRateLimit:
    """Against the tests' real Redis (the shared cache), as in production."""

    def test_repeated_failures_are_refused_then_allowed_again(
        self, client: Client, demo: Demo, settings: Any
    ) -> None:
        settings.PROSPECT_FAILURE_LIMIT = 5
        settings.PROSPECT_FAILURE_WINDOW_SECONDS = 60
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            for _ in range(5):
                assert_neutral(landing(client, secrets.token_urlsafe(32)))
            refused = landing(client, secrets.token_urlsafe(32))
            assert refused.status_code == 429
            assert "Too many attempts" in refused.text
            other_network = landing(client, secrets.token_urlsafe(32), REMOTE_ADDR="198.51.100.7")
            assert other_network.status_code == 404
        with time_machine.travel(start + timedelta(minutes=3), tick=False):
            assert_neutral(landing(client, secrets.token_urlsafe(32)))

    def test_a_working_link_is_never_refused(
        self, client: Client, demo: Demo, settings: Any
    ) -> None:
        # A prospect behind the same office NAT as someone guessing still gets in.
        settings.PROSPECT_FAILURE_LIMIT = 5
        token = share(demo).token
        for _ in range(25):
            landing(client, secrets.token_urlsafe(32))
        assert landing(client, secrets.token_urlsafe(32)).status_code == 429
        assert landing(client, token).status_code == 200
        poll = client.get(reverse("prospect:status", args=[token]), HTTP_HX_REQUEST="true")
        assert poll.status_code == 200

    def test_only_failed_lookups_count(self, client: Client, demo: Demo, settings: Any) -> None:
        settings.PROSPECT_FAILURE_LIMIT = 3
        token = share(demo).token
        for _ in range(20):
            assert landing(client, token).status_code == 200
        for _ in range(3):
            assert_neutral(landing(client, secrets.token_urlsafe(32)))
        assert landing(client, secrets.token_urlsafe(32)).status_code == 429

    def test_a_rotating_forwarded_header_from_an_unknown_peer_does_not_help(
        self, client: Client, demo: Demo, settings: Any
    ) -> None:
        settings.PROSPECT_FAILURE_LIMIT = 5
        settings.TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
        for number in range(6):
            response = landing(
                client,
                secrets.token_urlsafe(32),
                REMOTE_ADDR="203.0.113.9",
                HTTP_X_FORWARDED_FOR=f"198.51.{number}.{number + 1}",
            )
        assert response.status_code == 429

    def test_behind_a_trusted_proxy_the_client_it_saw_is_counted(
        self, client: Client, demo: Demo, settings: Any
    ) -> None:
        settings.PROSPECT_FAILURE_LIMIT = 5
        settings.TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]

        def guess(spoofed: str, client_address: str) -> int:
            # The client writes the left entry; the ingress appends the address it saw.
            forwarded = f"{spoofed}, {client_address}"
            return landing(
                client,
                secrets.token_urlsafe(32),
                REMOTE_ADDR="10.1.2.3",
                HTTP_X_FORWARDED_FOR=forwarded,
            ).status_code

        assert [guess(f"192.0.2.{n}", "198.51.100.7") for n in range(6)][-1] == 429
        assert guess("192.0.2.99", "203.0.113.50") == 404, "another client behind the same proxy"


class TestClientAddress:
    @pytest.fixture(autouse=True)
    def _proxies(self, settings: Any) -> None:
        settings.TRUSTED_PROXY_NETWORKS = [
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("fd00::/8"),
        ]

    @pytest.mark.parametrize(
        ("peer", "forwarded", "expected"),
        [
            ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a proxy: header ignored
            ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
            ("10.0.0.5", "192.0.2.1, 198.51.100.1", "198.51.100.1"),  # left entry: client's own
            ("10.0.0.5", "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # two proxies in a row
            ("fd00::5", "2001:db8::7", "2001:db8::7"),
            ("10.0.0.5", "", "10.0.0.5"),
            ("10.0.0.5", "not-an-address", "10.0.0.5"),
            ("10.0.0.5", "198.51.100.1, junk, 10.2.2.2", "10.2.2.2"),
        ],
    )
    def test_it_believes_forwarded_headers_only_from_proxies(
        self, rf: Any, peer: str, forwarded: str, expected: str
    ) -> None:
        request = rf.get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
        assert client_address(request) == expected


class TestLandingPage:
    def test_it_shows_the_demo_and_nothing_else(
        self, client: Client, demo: Demo, alice: Any, template: Any
    ) -> None:
        other = make_demo(template, alice, prospect_company="Globex Secret Deal")
        token = share(demo, note="See you Tuesday!").token
        response = landing(client, token)
        assert response.status_code == 200
        page = response.text
        # "Open demo" goes through the gate (a ticket for the demo's host), never to the app.
        opens = reverse("prospect:open", args=[token])
        for expected in (demo.template.name, opens, "Open demo", "See you Tuesday!"):
            assert expected in page
        assert "Username" in page  # the template's credentials
        for leak in ("Globex", "/admin", "/demos/", "/fleet", other.cluster_name, "token_hash"):
            assert leak not in page
        assert response["Referrer-Policy"] == "no-referrer"
        assert {"no-store", "private"} <= set(response["Cache-Control"].replace(" ", "").split(","))
        assert "noindex" in response["X-Robots-Tag"]
        assert '<meta name="robots" content="noindex' in page
        assert "Content-Security-Policy" in response

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (Status.PROVISIONING, "being prepared"),
            (Status.PAUSED, "kept for later"),
            (Status.RESUMING, "coming back"),
        ],
    )
    def test_it_says_kindly_when_the_demo_is_not_running(
        self, client: Client, template: Any, alice: Any, status: Status, expected: str
    ) -> None:
        token = share(make_demo(template, alice, status, prospect_company="Acme")).token
        response = landing(client, token)
        assert expected in response.text
        assert "Open demo" not in response.text

    def test_visits_are_logged_and_the_owner_told_once(self, client: Client, demo: Demo) -> None:
        new = share(demo)
        landing(client, new.token, HTTP_USER_AGENT="Firefox/140", REMOTE_ADDR="203.0.113.77")
        landing(Client(), new.token)
        new.link.refresh_from_db()
        assert new.link.open_count == 2
        assert new.link.first_opened_at <= new.link.last_opened_at
        visit = new.link.visits.order_by("visited_at").first()
        assert (visit.user_agent, visit.client_address) == ("Firefox/140", "203.0.113.0/24")
        assert len(mail.outbox) == 1
        assert "opened your" in mail.outbox[0].subject
        assert demo.events.filter(kind="share-link-opened").count() == 1

    def test_request_more_time_notifies_without_extending(self, client: Client, demo: Demo) -> None:
        token = share(demo).token
        url = reverse("prospect:more_time", args=[token])
        assert client.post(url).status_code == 302
        assert client.post(url, HTTP_HX_REQUEST="true").status_code == 200
        demo.refresh_from_db()
        assert demo.extension_count == 0
        assert demo.events.filter(kind="more-time-requested").count() == 1
        assert [m.subject for m in mail.outbox if "more time" in m.subject]


KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters:\n- name: from-the-database\n"


def store_kubeconfig(demo: Demo, text: str = KUBECONFIG) -> None:
    Demo.objects.filter(pk=demo.pk).update(kubeconfig_sealed=seal(text))


def forbid_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, any cluster backend call fails the test: downloads come from the database."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the web tier called the cluster backend")

    monkeypatch.setattr("demos.backends.get_backend", refuse)


class TestKubeconfigDownload:
    @pytest.fixture
    def allowed(self, template: Any, alice: Any) -> Demo:
        template.allow_kubeconfig_download = True
        template.save()
        return make_demo(template, alice)

    def test_it_serves_the_sealed_kubeconfig_from_the_database(
        self, client: Client, allowed: Demo, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store_kubeconfig(allowed)
        token = share(allowed).token
        forbid_backend(monkeypatch)
        response = client.get(reverse("prospect:kubeconfig", args=[token]))
        assert response.status_code == 200
        assert response.content.decode() == KUBECONFIG
        assert response["Content-Type"] == "application/yaml"
        assert response["Content-Disposition"] == (
            f'attachment; filename="{allowed.cluster_name}-kubeconfig.yaml"'
        )
        cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
        assert {"no-store", "no-cache", "private", "max-age=0"} <= cache_control
        assert response["Referrer-Policy"] == "no-referrer"
        assert "Download kubeconfig" in landing(client, token).text

    def test_the_web_tier_holds_no_cluster_backend(self) -> None:
        assert "demos.backends" not in inspect.getsource(links)
        assert "demos.backends" not in inspect.getsource(prospect)

    def test_what_the_worker_captured_at_ready_is_what_the_prospect_gets(
        self, client: Client, allowed: Demo, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert allowed.kubeconfig_sealed
        assert "SIMULATED" not in allowed.kubeconfig_sealed  # sealed, not plain text
        token = share(allowed).token
        forbid_backend(monkeypatch)
        response = client.get(reverse("prospect:kubeconfig", args=[token]))
        assert response.status_code == 200
        assert b"SIMULATED" in response.content

    def test_not_when_the_template_does_not_allow_it(
        self, client: Client, demo: Demo, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store_kubeconfig(demo)
        token = share(demo).token
        forbid_backend(monkeypatch)
        assert_neutral(client.get(reverse("prospect:kubeconfig", args=[token])))
        assert "kubeconfig" not in landing(client, token).text.lower()

    @pytest.mark.parametrize("status", [Status.INSTALLING, Status.PAUSED])
    def test_not_while_the_demo_is_not_ready(
        self,
        client: Client,
        template: Any,
        alice: Any,
        status: Status,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        template.allow_kubeconfig_download = True
        template.save()
        demo = make_demo(template, alice, status)
        store_kubeconfig(demo)
        token = share(demo).token
        forbid_backend(monkeypatch)
        assert_neutral(client.get(reverse("prospect:kubeconfig", args=[token])))
        assert "Download kubeconfig" not in landing(client, token).text

    def test_not_when_none_was_stored(
        self, client: Client, allowed: Demo, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        Demo.objects.filter(pk=allowed.pk).update(kubeconfig_sealed="")
        token = share(allowed).token
        forbid_backend(monkeypatch)
        assert_neutral(client.get(reverse("prospect:kubeconfig", args=[token])))
        assert "Download kubeconfig" not in landing(client, token).text

    @pytest.mark.parametrize("spoil", ["other-key", "tampered"])
    def test_an_unreadable_one_is_not_available_and_logged(
        self,
        client: Client,
        allowed: Demo,
        spoil: str,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        sealed = seal(KUBECONFIG)
        unreadable = {
            "other-key": Fernet(Fernet.generate_key()).encrypt(KUBECONFIG.encode()).decode(),
            "tampered": sealed[:40] + ("A" if sealed[40] != "A" else "B") + sealed[41:],
        }[spoil]
        Demo.objects.filter(pk=allowed.pk).update(kubeconfig_sealed=unreadable)
        token = share(allowed).token
        forbid_backend(monkeypatch)
        with caplog.at_level(logging.WARNING, logger="demos.sharing.links"):
            assert_neutral(client.get(reverse("prospect:kubeconfig", args=[token])))
        (record,) = [r for r in caplog.records if r.name == "demos.sharing.links"]
        assert record.levelno == logging.WARNING
        assert allowed.cluster_name in record.getMessage()
        assert "SEALING_KEYS" in record.getMessage()
        assert unreadable not in caplog.text


class TestSalespersonSide:
    def test_the_owner_creates_and_revokes_links(self, client: Client, demo: Demo) -> None:
        client.force_login(demo.owner)
        response = client.post(
            reverse("demos:create_link", args=[demo.public_id]),
            {"recipient": "Pat", "ends": "follow"},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 200
        link = ShareLink.objects.get()
        assert "/p/" in response.text
        assert "copy it again later" in response.text
        response = client.post(
            reverse("demos:revoke_link", args=[demo.public_id, link.pk]), HTTP_HX_REQUEST="true"
        )
        link.refresh_from_db()
        assert link.revoked_at is not None
        assert "no longer works" in response.text

    def test_another_salesperson_can_neither_see_nor_make_links(
        self, client: Client, demo: Demo, bob: Any
    ) -> None:
        link = share(demo).link
        client.force_login(bob)
        assert client.get(reverse("demos:share_panel", args=[demo.public_id])).status_code == 404
        assert (
            client.post(
                reverse("demos:create_link", args=[demo.public_id]), {"recipient": "x"}
            ).status_code
            == 404
        )
        revoke = reverse("demos:revoke_link", args=[demo.public_id, link.pk])
        assert client.post(revoke).status_code == 404
        link.refresh_from_db()
        assert link.revoked_at is None

    def test_a_fixed_time_after_the_demo_ends_is_refused_with_a_reason(
        self, client: Client, demo: Demo
    ) -> None:
        client.force_login(demo.owner)
        late = (demo.expires_at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        response = client.post(
            reverse("demos:create_link", args=[demo.public_id]),
            {"recipient": "Pat", "ends": "fixed", "expires_at": late},
            HTTP_HX_REQUEST="true",
        )
        assert "cannot outlive" in response.text
        assert not ShareLink.objects.exists()


class TestWithoutRedis:
    def test_prospects_still_reach_their_demo_while_redis_is_down(
        self, client: Client, demo: Demo, settings: Any
    ) -> None:
        token = share(demo).token
        settings.CACHES = {
            alias: {**config, "LOCATION": "redis://127.0.0.1:1/0"}
            for alias, config in settings.CACHES.items()
        }
        from redis.exceptions import ConnectionError as RedisConnectionError

        with pytest.raises(RedisConnectionError):
            cache.get("anything")  # the settings fixture reset the cache: Redis is unreachable
        assert landing(client, token).status_code == 200
        assert_neutral(landing(client, secrets.token_urlsafe(32)))
        more_time = reverse("prospect:more_time", args=[token])
        assert client.post(more_time, HTTP_HX_REQUEST="true").status_code == 200
