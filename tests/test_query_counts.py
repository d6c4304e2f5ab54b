"""Every page costs the same number of queries whether its reader has 1 demo or 50.

A page whose query count grows with the data is an N+1 waiting for a large sales team: at a year
of history it is the one that times out. Each test reads its page once with one demo behind it and
once with fifty (a mix of every state a list shows, with events and prospect visits), and expects
exactly the page's fixed count both times: `PAGE_QUERIES` is the budget each page is held to, the
figure `make bench` reports as "queries per request" at 100,000 demos.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from demos.engine.lifecycle import Actor, record_event
from demos.fleet import selectors
from demos.models import Demo, DemoTemplate, Status
from demos.sharing import links
from tests.conftest import forget_fragments, make_demo

# The states a salesperson's history is made of, in the proportions of a real one: most demos
# ended, a few running, kept or failed.
MIX = [
    Status.DELETED,
    Status.DELETED,
    Status.READY,
    Status.DELETED,
    Status.PAUSED,
    Status.ARCHIVED,
    Status.FAILED,
    Status.DELETED,
    Status.PROVISIONING,
]

# The queries each page makes once the person's session and user are cached (portal/sessions.py,
# portal/auth_backend.py): the page's own reads only.
FIGURES_AFRESH = "fleet overview (figures read afresh)"
ROWS_AFRESH = "my demos (rows rendered afresh)"
PAGE_QUERIES = {
    # Both pages also read capacity: the person's slots and whether the portal is full, or why
    # queued demos wait (one query, however many demos).
    # Templates, kept speeds, warm-pool levels, the person's running demos; and the templates'
    # charts when a card is rendered afresh, once, not per card (tests/test_fragments.py).
    "catalog": 5,
    # The demos shared with them (ids), the prints of one page of each section (their rows
    # kept from the view before, demos.sales.row_cache).
    "my demos (salesperson)": 5,
    # The prints and the slots: the people to filter by are kept for a minute, and a manager's
    # shared demos are asked in the prints' query.
    "my demos (manager)": 4,
    # Rows not kept (a first view, a change): loaded in one query, however many.
    ROWS_AFRESH: 6,
    "demo page": 5,  # panel version, demo, timeline, share links, visits
    "status poll (204)": 1,  # the panel version alone
    "status poll (full)": 3,  # version, demo, new events
    "row poll (204)": 1,
    "row poll (full)": 2,  # version, demo
    # A page, failures and their count; the figures below are shared for a few seconds.
    "fleet overview": 3,
    # Counts by status, capacity (2), warm pools (2), hours saved by sleep: the view that reads
    # them for everyone.
    FIGURES_AFRESH: 9,
    "fleet csv": 1,  # one streamed query
    "prospect page": 4,  # the link with its demo, the visit, its counters, the first opening
}


class World:
    """Alice's demos, and the one each page is read for."""

    def __init__(self, template: DemoTemplate, owner: User) -> None:
        self.template = template
        self.owner = owner
        self.states = itertools.cycle(MIX)
        self.focus = make_demo(template, owner, Status.READY)
        self.starting = make_demo(template, owner, Status.PROVISIONING)
        self.link = links.create_share_link(demo=self.focus, actor=Actor.of(owner), recipient="P")
        self.count = 2

    def grow_to(self, count: int) -> None:
        """Add demos (with events and visits on the focus) until alice has `count`."""
        while self.count < count:
            make_demo(self.template, self.owner, next(self.states))
            record_event(self.focus, "note", f"Event {self.count}.", Actor.of(self.owner))
            links.record_visit(self.link.link, user_agent="Browser/1", address="192.0.2.1")
            self.count += 1


@pytest.fixture
def world(template: DemoTemplate, alice: User, settings: Any) -> World:
    settings.DEMO_MAX_ACTIVE_PER_USER = 1000
    settings.DEMO_MAX_ACTIVE_TOTAL = 1000
    return World(template, alice)


def _version(client: Client, demo: Demo, fragment: str = "") -> str:
    """The panel version a page shows, as the browser would send it back."""
    url = reverse("demos:status", args=[demo.public_id]) + fragment
    body = client.get(url).content.decode()
    found = re.search(r"[?&](?:amp;)?v=([0-9a-f]+)", body)
    assert found, f"no version in {url}"
    return found.group(1)


def _pages(world: World) -> dict[str, Callable[[Client], str]]:
    """For each page: how to get its URL, as the browser would ask for it."""
    focus, starting = world.focus, world.starting

    def status_204(client: Client) -> str:
        version = _version(client, starting)
        return reverse("demos:status", args=[starting.public_id]) + f"?v={version}"

    def row_204(client: Client) -> str:
        version = _version(client, starting, "?fragment=row")
        return reverse("demos:status", args=[starting.public_id]) + f"?fragment=row&v={version}"

    return {
        "catalog": lambda client: reverse("demos:catalog"),
        "my demos (salesperson)": lambda client: reverse("demos:my_demos"),
        "my demos (manager)": lambda client: reverse("demos:my_demos"),
        ROWS_AFRESH: lambda client: reverse("demos:my_demos"),
        "demo page": lambda client: reverse("demos:detail", args=[focus.public_id]),
        "status poll (204)": status_204,
        "status poll (full)": lambda client: reverse("demos:status", args=[starting.public_id]),
        "row poll (204)": row_204,
        "row poll (full)": lambda client: (
            reverse("demos:status", args=[starting.public_id]) + "?fragment=row"
        ),
        "fleet overview": lambda client: reverse("demos:fleet"),
        FIGURES_AFRESH: lambda client: reverse("demos:fleet"),
        "fleet csv": lambda client: reverse("demos:fleet_export_demos"),
        "prospect page": lambda client: reverse("prospect:landing", args=[world.link.token]),
    }


def _reader(page: str, world: World, manager: User) -> User | None:
    if page == "prospect page":
        return None
    managers = ("my demos (manager)", "fleet overview", FIGURES_AFRESH, "fleet csv")
    return manager if page in managers else world.owner


FORGETS = {FIGURES_AFRESH: selectors.forget_fleet_figures, ROWS_AFRESH: forget_fragments}


def _queries(
    client: Client, url_of: Callable[[Client], str], *, forget: Callable[[], None] | None = None
) -> tuple[int, int]:
    url = url_of(client)
    client.get(url)  # warm: the first request of a session fills caches a real one has filled
    if forget:
        forget()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    assert response.status_code in (200, 204, 286), (url, response.status_code)
    return len(queries), response.status_code


@pytest.mark.parametrize("page", list(PAGE_QUERIES))
def test_queries_do_not_grow_with_demos(
    page: str, world: World, manager: User, client: Client
) -> None:
    reader = _reader(page, world, manager)
    if reader is not None:
        client.force_login(reader)
    url_of = _pages(world)[page]

    forget = FORGETS.get(page)
    with_one, status = _queries(client, url_of, forget=forget)
    world.grow_to(50)
    with_fifty, status_at_fifty = _queries(client, url_of, forget=forget)

    assert status == status_at_fifty
    assert (with_one, with_fifty) == (PAGE_QUERIES[page], PAGE_QUERIES[page]), page
    if page.endswith("(204)"):
        assert status == 204
