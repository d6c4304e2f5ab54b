"""Queries written once per process (demos.written_once) read what the ORM's would, for everyone.

My demos' sections are read, on PostgreSQL, with a query written once per shape of reader and
section; the ORM's query for the request is the reference. Every role, with and without demos
shared with them, a manager's owner filter, and pages past the first, must give the same prints.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.http import QueryDict
from django.utils import timezone

from demos import access, roles
from demos.models import Demo, DemoTemplate, Status
from demos.sales import sections
from demos.written_once import STAND_IN_ID, Written, id_list, pk_in
from tests.conftest import _user, make_demo

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="written once on PostgreSQL only"
)

STATES = (Status.READY, Status.QUEUED, Status.PAUSED, Status.ARCHIVED, Status.DELETED)


def _orm_pages(user: User, params: QueryDict, owner: str) -> Any:
    """The pages as the ORM writes each query for the request (what runs elsewhere)."""
    with mock.patch.object(sections, "connection", mock.Mock(vendor="the ORM's")):
        return sections.section_pages(user, params, owner=owner)


@pytest.fixture
def history(template: DemoTemplate, alice: User, bob: User, manager: User) -> dict[str, User]:
    """Demos in every section for three salespeople, more than a page of ended ones, some of
    alice's shared with bob and some of carol's with the manager."""
    carol = _user("carol", roles.SALES)
    start = timezone.now() - timedelta(days=3)
    for index in range(36):
        owner = (alice, bob, carol)[index % 3]
        at = start + timedelta(minutes=7 * index)
        demo = make_demo(template, owner, STATES[index % len(STATES)], at=at)
        if owner == alice and index % 2:
            demo.colleagues.add(bob)
        if owner == carol and index % 2:
            demo.colleagues.add(manager)  # marked as shared in the list of everyone's
    return {"alice": alice, "bob": bob, "carol": carol, "manager": manager}


@pytest.mark.parametrize("reader", ["alice", "bob", "carol", "manager", "template admin"])
@pytest.mark.parametrize("query", ["", "ended_page=2&active_page=2", "kept_page=9"])
def test_every_reader_gets_the_orms_pages(
    history: dict[str, User], template_admin: User, reader: str, query: str
) -> None:
    user = template_admin if reader == "template admin" else history[reader]
    params = QueryDict(query)
    written = sections.section_pages(user, params)
    assert written == _orm_pages(user, params, "")
    assert sum(len(page) for page in written.values()), "a reader with no demo proves nothing"


@pytest.mark.parametrize("owner", ["alice", "carol", "nobody", "al%"])
def test_a_managers_owner_filter_gives_the_orms_pages(history: dict[str, User], owner: str) -> None:
    manager = history["manager"]
    params = QueryDict("ended_page=2")
    written = sections.section_pages(manager, params, owner=owner)
    assert written == _orm_pages(manager, params, owner)
    owners = {p.owner_id for page in written.values() for p in page}
    assert owners == ({history[owner].pk} if owner in history else set())


def test_shared_demos_are_marked_for_their_colleague_alone(history: dict[str, User]) -> None:
    for name in ("bob", "manager"):
        user = history[name]
        prints = [p for page in sections.section_pages(user, QueryDict()).values() for p in page]
        shared = {p.pk for p in prints if p.colleague_viewer_id == user.pk}
        assert shared, "nothing shared to mark"
        assert shared == access.shared_demo_ids(user) & {p.pk for p in prints}
        assert all(p.colleague_viewer_id in (None, user.pk) for p in prints)
        if name == "bob":  # his own and those alice shared with him, nobody else's
            assert {p.owner_id for p in prints} == {history["alice"].pk, user.pk}


def test_each_shape_is_written_once_and_run_with_each_readers_values(
    history: dict[str, User], django_assert_num_queries: Any
) -> None:
    sections._written.cache_clear()
    sections.section_pages(history["alice"], QueryDict())  # no demo shared with her
    sections.section_pages(history["carol"], QueryDict())  # the same shape
    assert sections._written.cache_info().misses == len(sections.SECTIONS)
    assert sections._written.cache_info().hits == len(sections.SECTIONS)
    # Bob's sections are a shape of their own: his groups and the demos shared with him are read
    # (a query each), then one query for each section.
    with django_assert_num_queries(2 + len(sections.SECTIONS)) as queries:
        sections.section_pages(history["bob"], QueryDict())
    assert "auth_group" in queries.captured_queries[0]["sql"]
    assert sections._written.cache_info().misses == 2 * len(sections.SECTIONS)


class TestWritten:
    def test_stand_ins_are_filled_and_other_parameters_kept(self) -> None:
        marker = object()
        written = Written("SELECT %s, %s, %s, %s", (STAND_IN_ID, "ready", marker, [1, 2]))
        filled = written.filled({STAND_IN_ID: 7, marker: [3]}, 10, 20)
        assert filled == [7, "ready", [3], [1, 2], 10, 20]

    def test_a_list_of_ids_is_one_parameter_whatever_its_length(
        self, template: DemoTemplate, alice: User
    ) -> None:
        demos = [make_demo(template, alice) for _ in range(3)]
        queryset = Demo.objects.filter(pk_in(Demo, id_list([])))
        assert not queryset.exists()
        for ids in ([demos[0].pk], [d.pk for d in demos]):
            chosen = Demo.objects.filter(pk_in(Demo, id_list(ids)))
            assert sorted(chosen.values_list("pk", flat=True)) == sorted(ids)
            assert str(chosen.query).count("ANY") == 1


def test_someone_not_signed_in_sees_no_demo_not_even_one_without_an_owner(
    history: dict[str, User],
) -> None:
    ownerless = Demo.objects.filter(owner=history["carol"]).first()
    assert ownerless is not None
    Demo.objects.filter(pk=ownerless.pk).update(owner=None)
    nobody = AnonymousUser()
    assert not access.demos_visible_to(nobody).exists()
    for pages in (sections.section_pages(nobody, QueryDict()), _orm_pages(nobody, QueryDict(), "")):
        assert not any(page.items for page in pages.values())
