"""The status poll's version: what the panel is rendered from changes it, in one query.

The version (`demos.sales.poll`) fingerprints the demo's whole row and its template's
`updated_at`, so these tests go over every column the model has, not a list kept by hand: a
column added to the model is covered the day it is added.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection, models
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from demos.catalog.services import bump_template_version, set_template_enabled
from demos.engine import lifecycle
from demos.models import Demo, DemoTemplate, SnapshotKind, Status, TemplateVersion
from demos.sales.poll import panel_state
from tests.conftest import _database_url, make_demo, make_template

HTMX = {"HTTP_HX_REQUEST": "true"}
# What the poll looks the row up by: changing it is another demo, not another version.
IDENTITY = {"id", "public_id"}
COLUMNS = [f.name for f in Demo._meta.concrete_fields if f.name not in IDENTITY]


def _version(demo: Demo) -> str:
    state = panel_state(demo.public_id)
    assert state is not None
    return state.version


def _another_value(demo: Demo, field: models.Field[Any, Any], bob: User) -> object:
    """A value of `field` other than `demo`'s, whatever the column's type."""
    current = getattr(demo, field.name)
    if isinstance(field, models.ForeignKey):
        if field.related_model is DemoTemplate:
            return make_template("another")
        if field.name == "owner":
            return bob
        if field.related_model is TemplateVersion:
            return make_template("another").published_version
        archived = make_demo(demo.template, bob, Status.ARCHIVED)
        return archived.snapshots.get(kind=SnapshotKind.ARCHIVED)
    if isinstance(field, models.BooleanField):
        return not current
    if isinstance(field, models.DateTimeField):
        return (current or timezone.now()) + timedelta(seconds=1)
    if isinstance(field, models.DurationField):
        return (current or timedelta(0)) + timedelta(seconds=1)
    if isinstance(field, models.IntegerField):
        return current + 1
    if isinstance(field, models.JSONField):
        return {"changed": current}
    if isinstance(field, models.CharField | models.TextField):
        return "changed" if current != "changed" else "changed again"
    pytest.fail(f"Demo.{field.name} ({type(field).__name__}): say how to change this column.")


def _save_with_fewer_extensions(template: DemoTemplate) -> None:
    template.max_extensions -= 1
    template.save()


@pytest.fixture
def demo(template: DemoTemplate, alice: User) -> Demo:
    """A demo whose cluster is being created: its page polls."""
    return make_demo(template, alice, Status.PROVISIONING, prospect_company="Acme")


class TestVersion:
    def test_it_stays_the_same_while_nothing_changes(self, demo: Demo) -> None:
        assert _version(demo) == _version(demo)

    @pytest.mark.parametrize("column", COLUMNS)
    def test_every_column_of_the_demo_changes_it(self, demo: Demo, bob: User, column: str) -> None:
        """Written straight to the row: the point is that every column counts, whatever the
        lifecycle would put there."""
        before = _version(demo)
        value = _another_value(demo, Demo._meta.get_field(column), bob)
        Demo.objects.filter(pk=demo.pk).update(**{column: value})
        assert _version(demo) != before

    @pytest.mark.parametrize(
        "edit",
        [
            pytest.param(_save_with_fewer_extensions, id="admin save"),
            pytest.param(lambda t: bump_template_version(template=t), id="new version"),
            pytest.param(
                lambda t: set_template_enabled(template=t, enabled=False), id="availability"
            ),
        ],
    )
    def test_a_template_edit_changes_it(
        self, demo: Demo, template: DemoTemplate, edit: Callable[[DemoTemplate], object]
    ) -> None:
        before = _version(demo)
        edit(template)
        assert _version(demo) != before

    def test_a_new_event_changes_it(self, demo: Demo) -> None:
        before = _version(demo)
        lifecycle.record_event(demo, "progress", "Something happened.")
        assert _version(demo) != before

    def test_it_is_read_with_one_query(
        self, demo: Demo, django_assert_num_queries: Callable[..., Any]
    ) -> None:
        with django_assert_num_queries(1):
            panel_state(demo.public_id)


class TestPollAfterATemplateEdit:
    def test_an_open_page_gets_the_edited_panel(
        self, demo: Demo, template: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        client = Client()
        client.force_login(alice)
        url = reverse("demos:status", args=[demo.public_id])
        first = client.get(url, **HTMX).content.decode()
        match = re.search(r'hx-get="([^"]+)"', first)
        assert match, "the panel does not poll"
        poll = unescape(match.group(1))
        assert client.get(poll, **HTMX).status_code == 204

        template.name = "Renamed shop"
        template.save()

        assert client.get(poll, **HTMX).status_code == 200


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared on PostgreSQL only")
@pytest.mark.django_db(transaction=True)  # it closes the connection
def test_the_query_is_prepared_once_per_connection_and_again_after_a_reconnection(
    demo: Demo,
) -> None:
    """Planning the poll's query cost more than running it, so PostgreSQL keeps it prepared per
    connection; a new connection (the old one closed) must prepare it again, not fail."""

    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE name = %s",
                ["demos_panel_state"],
            )
            return cursor.fetchone()[0]

    first = panel_state(demo.public_id)
    assert prepared() == 1
    assert panel_state(demo.public_id) == first
    assert prepared() == 1
    connection.close()
    assert prepared() == 0  # a new session has none
    assert panel_state(demo.public_id) == first
    assert prepared() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared on PostgreSQL only")
@pytest.mark.django_db(transaction=True)  # it closes the connection
def test_connections_opened_per_request_run_the_query_unprepared(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a pooler (`DATABASE_CONN_MAX_AGE=0`) the next query may reach another server
    connection, so nothing is prepared there, and the answer is the same."""
    expected = panel_state(demo.public_id)
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    assert panel_state(demo.public_id) == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a server-side disconnection")
@pytest.mark.django_db(transaction=True)  # it ends the connection's server session
def test_a_poll_after_the_server_dropped_its_connection_is_answered(
    demo: Demo, alice: User, client: Client
) -> None:
    """The server may drop a kept connection (a restart, an idle timeout). The poll's own query
    stands in for Django's health check, so it must notice and answer on a new connection,
    with the statement prepared there again."""
    client.force_login(alice)
    url = reverse("demos:status", args=[demo.public_id])
    version = _version(demo)  # prepared on this connection
    # A poll first, so the session and the user are cached: the next one's query is its first.
    assert client.get(url, {"v": version}, **HTMX).status_code == 204
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with psycopg.connect(_database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    connection.close_if_unusable_or_obsolete()  # what Django does as each request starts

    response = client.get(url, {"v": version}, **HTMX)

    assert response.status_code == 204
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


@pytest.mark.skipif(connection.vendor != "postgresql", reason="kept connections are checked")
@pytest.mark.django_db(transaction=True)  # outside a transaction, as a request runs
def test_a_poll_makes_no_separate_health_check(
    demo: Demo, alice: User, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its query is the check (above), so the round trip Django's check makes is saved."""
    client.force_login(alice)
    url = reverse("demos:status", args=[demo.public_id])
    version = _version(demo)
    assert client.get(url, {"v": version}, **HTMX).status_code == 204  # session and user cached
    checks: list[bool] = []
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(True) or True)
    connection.close_if_unusable_or_obsolete()  # what Django does as each request starts

    assert client.get(url, {"v": version}, **HTMX).status_code == 204
    assert checks == []
