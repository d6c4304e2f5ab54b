"""Sessions and signed-in users from the cache: a status poll in one query, nothing stale after
a sign-out or a change of password, groups or account, and every page with Redis down.

Everything runs on the real database and Redis; "Redis down" is the sessions' cache pointed at
a port where nothing listens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group, User
from django.core.cache import caches
from django.test import Client, override_settings
from django.urls import reverse
from redis.exceptions import ConnectionError as RedisConnectionError

from demos import roles
from demos.models import Demo, DemoTemplate, Status
from demos.sales.poll import panel_state
from portal import tolerant_cache, user_cache
from portal.tolerant_cache import TolerantRedisCache
from tests.conftest import PASSWORD, make_demo

HTMX = {"HTTP_HX_REQUEST": "true"}
NOTHING_LISTENS = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _fresh_cache(settings: Any, rq_redis: Any) -> None:
    """An empty Redis (rq_redis empties the tests' database) and cache objects of the test's
    own (setting CACHES makes Django build them anew, before and after the test): a pause after
    a failure, or a delete left to redo, never reaches another test."""
    settings.CACHES = {**settings.CACHES}


@pytest.fixture
def demo(template: DemoTemplate, alice: User) -> Demo:
    """Alice's demo while its cluster is created: its page polls."""
    return make_demo(template, alice, Status.PROVISIONING)


def poll_url(demo: Demo) -> str:
    """The status poll as the page sends it, with the version of the panel it shows."""
    state = panel_state(demo.public_id)
    assert state is not None
    return f"{reverse('demos:status', args=[demo.public_id])}?v={state.version}"


def signed_in(username: str) -> Client:
    """A client signed in through the login form, as a person does."""
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def same_session(client: Client) -> Client:
    """Another client holding the same session cookie: another tab, or a copied cookie."""
    other = Client()
    name = django_settings.SESSION_COOKIE_NAME
    other.cookies[name] = client.cookies[name].value
    return other


def is_signed_out(response: Any) -> bool:
    """Sent to the login page: by a redirect, or for htmx by the header htmx follows."""
    if response.status_code == 302:
        return response["Location"].startswith(reverse("login"))
    return response.get("HX-Redirect", "").startswith(reverse("login"))


def sessions_cache() -> TolerantRedisCache:
    cache = caches["sessions"]
    assert isinstance(cache, TolerantRedisCache)
    return cache


@pytest.fixture
def redis_down(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sessions' cache on a port where nothing listens, as when Redis is down, and not
    asked again during the test (so query counts do not depend on the test's speed). The
    default cache stays: it has its own story for outages (tests/test_prospect.py)."""
    settings.CACHES = {
        **settings.CACHES,
        "sessions": {**settings.CACHES["sessions"], "LOCATION": NOTHING_LISTENS},
    }
    monkeypatch.setattr(tolerant_cache, "PAUSE_AFTER_FAILURE", 3600.0)


class TestWarmPoll:
    def test_a_poll_without_news_is_one_query(
        self, demo: Demo, alice: User, django_assert_num_queries: Callable[..., Any]
    ) -> None:
        client = signed_in("alice")
        url = poll_url(demo)
        assert client.get(url, **HTMX).status_code == 204  # fills the user's entry
        with django_assert_num_queries(1) as captured:
            assert client.get(url, **HTMX).status_code == 204
        # The panel's state only: the query itself, or on PostgreSQL its prepared statement.
        sql = captured.captured_queries[0]["sql"]
        assert "demos_demo" in sql or sql.startswith("EXECUTE demos_panel_state(")

    def test_a_cold_poll_reads_session_user_and_groups_once(
        self, demo: Demo, alice: User, django_assert_num_queries: Callable[..., Any]
    ) -> None:
        client = signed_in("alice")
        url = poll_url(demo)
        caches["sessions"].delete_many(
            [f"django.contrib.sessions.cached_db{client.session.session_key}"]
        )
        user_cache.forget([alice.pk])
        with django_assert_num_queries(4):  # session, user, groups, the panel
            assert client.get(url, **HTMX).status_code == 204
        with django_assert_num_queries(1):
            assert client.get(url, **HTMX).status_code == 204

    def test_a_manager_watching_someone_elses_demo_needs_no_group_query(
        self,
        demo: Demo,
        manager: User,
        django_assert_num_queries: Callable[..., Any],
    ) -> None:
        client = signed_in("mia")
        url = poll_url(demo)
        assert client.get(url, **HTMX).status_code == 204
        with django_assert_num_queries(1):
            assert client.get(url, **HTMX).status_code == 204

    def test_sessions_signed_in_through_djangos_backend_are_cached_too(
        self, demo: Demo, alice: User, django_assert_num_queries: Callable[..., Any]
    ) -> None:
        # A session from before this backend, stored as `django.contrib.auth.login` stored it.
        session = import_module(django_settings.SESSION_ENGINE).SessionStore()
        session[SESSION_KEY] = str(alice.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = alice.get_session_auth_hash()
        session.create()
        client = Client()
        client.cookies[django_settings.SESSION_COOKIE_NAME] = session.session_key
        url = poll_url(demo)
        assert client.get(url, **HTMX).status_code == 204
        with django_assert_num_queries(1):
            assert client.get(url, **HTMX).status_code == 204
        assert client.get(reverse("demos:my_demos")).status_code == 200


class TestWhatIsCached:
    def test_the_password_hash_stays_in_the_database(self, alice: User, rq_redis: Any) -> None:
        user_cache.store(alice, ["Sales"])
        stored = b"".join(rq_redis.get(key) or b"" for key in rq_redis.keys("portal-sessions*"))
        assert stored
        assert alice.password.encode() not in stored

    def test_a_cached_user_loads_the_password_when_it_is_checked(
        self, alice: User, django_assert_num_queries: Callable[..., Any]
    ) -> None:
        user_cache.store(alice, ["Sales"])
        with django_assert_num_queries(0):
            cached = user_cache.load(alice.pk)
            assert cached is not None
            assert cached.username == "alice"
            assert cached.get_session_auth_hash() == alice.get_session_auth_hash()
        with django_assert_num_queries(1):
            assert cached.check_password(PASSWORD)

    def test_a_password_set_on_a_cached_user_gives_the_new_session_hash(self, alice: User) -> None:
        user_cache.store(alice, ["Sales"])
        cached = user_cache.load(alice.pk)
        assert cached is not None
        before = cached.get_session_auth_hash()
        cached.set_password("another-horse-battery")
        assert cached.get_session_auth_hash() != before

    def test_entries_expire_within_a_minute(self, alice: User, rq_redis: Any) -> None:
        client = signed_in("alice")
        assert client.get(reverse("demos:my_demos")).status_code == 200
        keys = rq_redis.keys("portal-sessions*")
        assert len(keys) == 3  # the session, the user and the person's time zone
        assert all(0 < rq_redis.ttl(key) <= tolerant_cache.LONGEST_ENTRY for key in keys)


class TestSignOut:
    def test_signing_out_ends_the_session_everywhere_at_once(self, demo: Demo, alice: User) -> None:
        client = signed_in("alice")
        other_tab = same_session(client)
        url = poll_url(demo)
        assert other_tab.get(url, **HTMX).status_code == 204
        assert client.post(reverse("logout")).status_code == 302
        assert is_signed_out(other_tab.get(url, **HTMX))

    def test_a_sign_out_while_redis_is_away_is_not_undone_when_it_answers(
        self, demo: Demo, alice: User, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        client = signed_in("alice")
        url = poll_url(demo)
        assert same_session(client).get(url, **HTMX).status_code == 204
        cache = sessions_cache()
        entry = cache.make_key(f"django.contrib.sessions.cached_db{client.session.session_key}")
        assert cache._cache.get(entry, None) is not None

        def unreachable(*args: Any, **kwargs: Any) -> None:
            raise RedisConnectionError("Connection refused")

        with monkeypatch.context() as outage:
            outage.setattr(cache._cache, "delete", unreachable)
            # Another copy of the cookie, kept for later: a browser tab that missed the sign-out.
            later = same_session(client)
            assert client.post(reverse("logout")).status_code == 302
        # Redis missed the delete: the cached session outlived the sign-out...
        assert cache._cache.get(entry, None) is not None
        # ...but while the cache pauses, the database alone refuses the cookie.
        assert is_signed_out(same_session(later).get(url, **HTMX))

        monkeypatch.setattr(cache, "_paused_until", 0.0)  # the pause after the failure is over
        assert is_signed_out(same_session(later).get(url, **HTMX))
        assert cache._cache.get(entry, None) is None


class TestChanges:
    def test_a_password_change_signs_out_the_other_sessions(
        self, demo: Demo, alice: User, django_user_model: type[User]
    ) -> None:
        phone, laptop = signed_in("alice"), signed_in("alice")
        url = poll_url(demo)
        assert phone.get(url, **HTMX).status_code == 204
        assert laptop.get(url, **HTMX).status_code == 204

        admin = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
        admin_client = Client()
        admin_client.force_login(admin)
        response = admin_client.post(
            reverse("admin:auth_user_password_change", args=[alice.pk]),
            {
                "password1": "a-new-horse-battery",
                "password2": "a-new-horse-battery",
                "usable_password": "true",
            },
        )
        assert response.status_code == 302, response.content

        assert is_signed_out(phone.get(url, **HTMX))
        assert is_signed_out(laptop.get(url, **HTMX))

    def test_a_deactivated_user_is_signed_out(self, demo: Demo, alice: User) -> None:
        client = signed_in("alice")
        url = poll_url(demo)
        assert client.get(url, **HTMX).status_code == 204
        alice.is_active = False
        alice.save()
        assert is_signed_out(client.get(url, **HTMX))
        assert is_signed_out(client.get(reverse("demos:my_demos")))

    def test_a_new_superuser_flag_counts_from_the_next_request(self, demo: Demo, bob: User) -> None:
        client = signed_in("bob")
        url = poll_url(demo)
        assert client.get(url, **HTMX).status_code == 404  # Alice's demo
        bob.is_superuser = True
        bob.save()
        assert client.get(url, **HTMX).status_code == 204


def _leave_by_user(user: User, group: Group) -> None:
    user.groups.remove(group)


def _leave_by_group(user: User, group: Group) -> None:
    group.user_set.remove(user)


def _group_cleared(user: User, group: Group) -> None:
    group.user_set.clear()


def _user_cleared(user: User, group: Group) -> None:
    user.groups.clear()


def _group_renamed(user: User, group: Group) -> None:
    group.name = "Former sales managers"
    group.save()


def _group_deleted(user: User, group: Group) -> None:
    group.delete()


class TestGroupChanges:
    @pytest.mark.parametrize(
        "change",
        [
            _leave_by_user,
            _leave_by_group,
            _group_cleared,
            _user_cleared,
            _group_renamed,
            _group_deleted,
        ],
    )
    def test_losing_a_role_counts_from_the_next_request(
        self, change: Callable[[User, Group], None], demo: Demo, manager: User
    ) -> None:
        client = signed_in("mia")
        url = poll_url(demo)
        assert client.get(url, **HTMX).status_code == 204  # a manager sees Alice's demo
        change(manager, Group.objects.get(name=roles.SALES_MANAGERS))
        assert client.get(url, **HTMX).status_code == 404

    @pytest.mark.parametrize("through_group", [False, True])
    def test_gaining_a_role_counts_from_the_next_request(
        self, through_group: bool, demo: Demo, bob: User
    ) -> None:
        client = signed_in("bob")
        url = poll_url(demo)
        assert client.get(url, **HTMX).status_code == 404
        managers = Group.objects.get(name=roles.SALES_MANAGERS)
        if through_group:
            managers.user_set.add(bob)
        else:
            bob.groups.add(managers)
        assert client.get(url, **HTMX).status_code == 204


class TestRedisDown:
    def test_signing_in_polling_and_every_page_work(
        self,
        redis_down: None,
        demo: Demo,
        alice: User,
        django_assert_num_queries: Callable[..., Any],
    ) -> None:
        client = signed_in("alice")
        url = poll_url(demo)
        with django_assert_num_queries(3):  # session and user from the database, the panel
            assert client.get(url, **HTMX).status_code == 204
        for page in (
            reverse("demos:catalog"),
            reverse("demos:my_demos"),
            reverse("demos:detail", args=[demo.public_id]),
        ):
            assert client.get(page).status_code == 200, page
        assert client.post(reverse("logout")).status_code == 302
        assert is_signed_out(client.get(url, **HTMX))

    def test_changes_still_count_at_once(self, redis_down: None, demo: Demo, manager: User) -> None:
        client = signed_in("mia")
        url = poll_url(demo)
        assert client.get(url, **HTMX).status_code == 204
        manager.groups.remove(Group.objects.get(name=roles.SALES_MANAGERS))
        assert client.get(url, **HTMX).status_code == 404
        manager.is_active = False
        manager.save()
        assert is_signed_out(client.get(url, **HTMX))


class TestTolerantCache:
    @pytest.fixture
    def dead(self) -> Iterator[TolerantRedisCache]:
        with override_settings(
            CACHES={
                "sessions": {
                    "BACKEND": "portal.tolerant_cache.TolerantRedisCache",
                    "LOCATION": NOTHING_LISTENS,
                    "KEY_PREFIX": "tolerant-test",
                }
            }
        ):
            yield sessions_cache()

    def test_a_dead_redis_reads_as_empty_and_writes_nowhere(self, dead: TolerantRedisCache) -> None:
        assert dead.get("key", "default") == "default"
        assert dead.get_many(["a", "b"]) == {}
        assert not dead.has_key("key")
        dead.set("key", "value")
        assert dead.add("key", "value") is False
        assert dead.set_many({"a": 1}) == ["a"]
        assert dead.delete("key") is False

    def test_after_a_failure_it_stops_asking_and_warns_once(
        self, dead: TolerantRedisCache, caplog: pytest.LogCaptureFixture, monkeypatch: Any
    ) -> None:
        connections = 0
        get_client = dead._cache.get_client

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal connections
            connections += 1
            return get_client(*args, **kwargs)

        monkeypatch.setattr(dead._cache, "get_client", counting)
        with caplog.at_level(logging.WARNING, logger="portal.tolerant_cache"):
            for _ in range(50):
                dead.get("session")
                dead.set("session", {"a": 1})
        assert connections == 1
        assert len(caplog.records) == 1
        assert "Redis does not answer" in caplog.records[0].getMessage()
        assert not dead.answering

    def test_deletes_it_missed_are_done_when_redis_answers_again(
        self, rq_redis: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        cache = sessions_cache()
        cache.set("signed-in", "yes")

        def unreachable(*args: Any, **kwargs: Any) -> None:
            raise RedisConnectionError("Connection refused")

        with monkeypatch.context() as outage:
            outage.setattr(cache._cache, "delete", unreachable)
            assert cache.delete("signed-in") is False
        assert cache.get("signed-in") is None  # paused: nothing is read meanwhile
        assert rq_redis.exists(cache.make_key("signed-in"))

        monkeypatch.setattr(cache, "_paused_until", 0.0)
        with caplog.at_level(logging.WARNING, logger="portal.tolerant_cache"):
            assert cache.get("anything-else") is None
        assert not rq_redis.exists(cache.make_key("signed-in"))
        assert "answers again" in caplog.text

    def test_no_entry_outlives_the_longest_entry_time(self, rq_redis: Any) -> None:
        cache = sessions_cache()
        cache.set("forever", 1, timeout=None)
        cache.add("a-day", 1, timeout=86_400)
        cache.set_many({"a-week": 1}, timeout=604_800)
        for key in ("forever", "a-day", "a-week"):
            assert 0 < rq_redis.ttl(cache.make_key(key)) <= tolerant_cache.LONGEST_ENTRY
