"""Every page of the portal, once: a name, who looks at it, and how to get there.

The accessibility check (`test_accessibility.py`) and `make screenshots` (`test_screenshots.py`)
both walk `PAGES`, so a page added here is checked and photographed from then on. Each page is
one line: its name (also the screenshot's file name), the path to it from the `Showcase` (the
data set below), who is signed in (None: nobody), and optionally what to do on the page before
looking at it (open a dialog) and the answer code it gives.

The data set is built directly with the lifecycle's own functions (`make_demo`), so no worker is
needed: a salesperson at their slot limit with demos in every state, a second salesperson, a
sales manager, an admin, two templates with charts, share links with visits and engagement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import import_module
from typing import Any

import time_machine
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext
from playwright.sync_api import Page as BrowserPage

from demos import roles
from demos.engine.lifecycle import Actor
from demos.gate.entry import PROSPECT_LINKS_SESSION_KEY
from demos.models import Branding, Demo, DemoTemplate, Engagement, Profile, ShareLink, Status
from demos.sharing import links
from demos.studio.versions import Actor as StudioActor
from demos.studio.versions import record_row_as_version
from tests.conftest import PASSWORD, make_demo, make_template

# Who signs in: one of each kind of person.
SALES = "sam"  # a salesperson at their slot limit, with demos in every state
OTHER_SALES = "riley"  # a second salesperson, with room for one more demo
MANAGER = "mia"
ADMIN = "ada"
# The template with two published versions.
STUDIO_TEMPLATE = "/studio/templates/analytics/"

# What prospects' browsers send, as the "Recent visits" list shows them.
USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
)


@dataclass
class Showcase:
    """The data set the pages are shown with."""

    users: dict[str, User]
    templates: dict[str, DemoTemplate]
    demos: dict[str, Demo]  # by state label: "running", "starting", "asleep"...
    link: ShareLink  # an active link of the running demo, opened twice
    link_url: str
    ended_link_url: str  # a link whose time ran out, opened before in the prospect's browser
    ended_link: ShareLink
    test_launch: Demo

    def detail(self, label: str) -> str:
        return f"/demos/{self.demos[label].public_id}/"


def _person(username: str, first: str, last: str, *groups: str, **extra: Any) -> User:
    user = User.objects.create_user(
        username,
        f"{username}@example.com",
        PASSWORD,
        first_name=first,
        last_name=last,
        **extra,
    )
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


def build_showcase() -> Showcase:
    """A realistic data set: every state a salesperson's demo can be in, links, visits, people."""
    users = {
        SALES: _person(SALES, "Sam", "Seller", roles.SALES),
        OTHER_SALES: _person(OTHER_SALES, "Riley", "Rep", roles.SALES),
        MANAGER: _person(MANAGER, "Mia", "Manager", roles.SALES, roles.SALES_MANAGERS),
        ADMIN: _person(
            ADMIN, "Ada", "Admin", roles.TEMPLATE_ADMINS, is_staff=True, is_superuser=True
        ),
    }
    shop = make_template("webshop", name="Web shop")
    analytics = make_template(
        "analytics",
        charts=3,
        name="Analytics suite",
        description="Good for showing dashboards to retail prospects.",
    )
    # A second published version, so the studio has a history to compare.
    analytics.tagline = "Dashboards over live sales data"
    analytics.version += 1
    analytics.save(update_fields=["tagline", "version"])
    record_row_as_version(
        template=analytics, actor=StudioActor(label="tests"), note="A clearer tagline."
    )
    sam = users[SALES]
    # What prospects see of the company and of their salesperson.
    Branding.objects.create(name="Northwind Cloud", accent_colour="#0e7490")
    Profile.objects.update_or_create(
        user=sam,
        defaults={
            "job_title": "Account executive",
            "phone": "+44 20 7946 0000",
            "booking_url": "https://calendar.example.com/sam",
        },
    )
    shop.prospect_description = "Your own copy of our shop: place an order, then follow it."
    shop.save(update_fields=["prospect_description"])
    hour_ago = timezone.now() - timedelta(hours=1)
    demos = {
        "running": make_demo(
            shop, sam, prospect_name="Pat Prospect", prospect_company="Acme", at=hour_ago
        ),
        "starting": make_demo(analytics, sam, Status.INSTALLING, prospect_company="Globex"),
        "asleep": make_demo(shop, sam, Status.ASLEEP, prospect_company="Initech"),
        "kept": make_demo(analytics, sam, Status.PAUSED, prospect_company="Umbrella"),
        "failed": make_demo(analytics, sam, Status.FAILED, prospect_company="Hooli"),
        "ended": make_demo(shop, sam, Status.DELETED, prospect_company="Soylent"),
        "queued": make_demo(shop, sam, Status.QUEUED, prospect_company="Stark"),
        "other": make_demo(analytics, users[OTHER_SALES], prospect_company="Wayne"),
    }
    running = demos["running"]
    actor = Actor.of(sam)
    # A colleague on the running demo, and a prospect's request for more time waiting.
    running.colleagues.add(users[OTHER_SALES])
    Demo.objects.filter(pk=running.pk).update(more_time_requested_at=timezone.now())
    # A link that is still good, opened twice from two devices, with time in the live app.
    with time_machine.travel(hour_ago + timedelta(minutes=5)):
        new = links.create_share_link(
            demo=running,
            actor=actor,
            recipient="Pat Prospect <pat@acme.example>",
            note="Here is the shop we talked about. The admin login is on the page.",
        )
        # A link whose time ran out: the prospect opened it before, in their own browser.
        ended = links.create_share_link(
            demo=running,
            actor=actor,
            recipient="Quinn Quick",
            expires_at=hour_ago + timedelta(minutes=20),
        )
    link = ShareLink.objects.get(pk=new.link.pk)
    for agent in USER_AGENTS:
        links.record_visit(link, user_agent=agent, address="203.0.113.7")
    Engagement.objects.create(
        demo=running,
        link=link,
        first_seen=hour_ago + timedelta(minutes=10),
        last_seen=hour_ago + timedelta(minutes=40),
        requests=312,
        active_minutes=24,
        sessions=2,
    )
    revoked = links.create_share_link(demo=running, actor=actor, recipient="Old contact")
    links.revoke_share_link(link=revoked.link, actor=actor)
    test_launch = make_demo(
        analytics, users[ADMIN], prospect_company="Test launch", test_launch=True
    )
    return Showcase(
        users=users,
        templates={"webshop": shop, "analytics": analytics},
        demos={label: Demo.objects.get(pk=demo.pk) for label, demo in demos.items()},
        link=link,
        link_url=new.url,
        ended_link_url=ended.url,
        ended_link=ended.link,
        test_launch=test_launch,
    )


# --- How a page is reached -----------------------------------------------------------------------


def open_dialog(button: str) -> Callable[[BrowserPage], None]:
    """Click a button or summary by its name, to look at what it opens."""

    def click(page: BrowserPage) -> None:
        page.get_by_text(button, exact=True).first.click()

    return click


def _link_path(showcase: Showcase) -> str:
    """The page that shows a link again in full, to copy it."""
    return f"{showcase.detail('running')}share/{showcase.link.pk}/"


def _launch_path(showcase: Showcase) -> str:
    launch = showcase.test_launch
    return f"/studio/templates/{launch.template.slug}/test-launches/{launch.public_id}/"


@dataclass(frozen=True)
class PortalPage:
    name: str
    path: Callable[[Showcase], str]
    visitor: str | None = None
    then: Callable[[BrowserPage], None] | None = None
    status: int = 200
    # A prospect who opened this link before: their browser remembers it (a session).
    remembers: Callable[[Showcase], ShareLink] | None = field(default=None)


PAGES: tuple[PortalPage, ...] = (
    PortalPage("login", lambda s: "/login/"),
    PortalPage("catalog", lambda s: "/", SALES),
    PortalPage("start", lambda s: "/templates/webshop/start/", OTHER_SALES),
    PortalPage("start-at-limit", lambda s: "/templates/analytics/start/", SALES),
    PortalPage("my-demos", lambda s: "/demos/", SALES),
    PortalPage("my-demos-manager", lambda s: "/demos/", MANAGER),
    PortalPage("demo-running", lambda s: s.detail("running"), SALES),
    PortalPage("demo-running-manager", lambda s: s.detail("running"), MANAGER),
    PortalPage("demo-starting", lambda s: s.detail("starting"), SALES),
    PortalPage("demo-queued", lambda s: s.detail("queued"), SALES),
    PortalPage("demo-asleep", lambda s: s.detail("asleep"), SALES),
    PortalPage("demo-kept", lambda s: s.detail("kept"), SALES),
    PortalPage("demo-failed", lambda s: s.detail("failed"), SALES),
    PortalPage("demo-ended", lambda s: s.detail("ended"), SALES),
    PortalPage("share-form", lambda s: s.detail("running"), SALES, open_dialog("New link")),
    PortalPage("share-dialog", lambda s: _link_path(s) + "?new=1", SALES),
    PortalPage("share-copy-again", lambda s: _link_path(s), SALES),
    PortalPage("account", lambda s: "/account/", SALES),
    PortalPage("team", lambda s: f"/demos/{s.demos['running'].public_id}/team/", SALES),
    PortalPage("password-reset", lambda s: "/password/reset/"),
    PortalPage("password-reset-sent", lambda s: "/password/reset/sent/"),
    PortalPage("password-change", lambda s: "/password/change/", SALES),
    PortalPage("fleet", lambda s: "/fleet/", MANAGER),
    PortalPage("fleet-activity", lambda s: "/fleet/activity/", MANAGER),
    PortalPage("studio", lambda s: "/studio/", ADMIN),
    PortalPage("studio-template", lambda s: STUDIO_TEMPLATE, ADMIN),
    PortalPage("studio-editor", lambda s: f"{STUDIO_TEMPLATE}edit/", ADMIN),
    PortalPage("studio-launch", lambda s: _launch_path(s), ADMIN),
    PortalPage("studio-compare", lambda s: f"{STUDIO_TEMPLATE}compare/?old=1&new=2", ADMIN),
    PortalPage("studio-import", lambda s: "/studio/import/", ADMIN),
    PortalPage("admin", lambda s: "/admin/", ADMIN),
    PortalPage("admin-branding", lambda s: "/admin/demos/branding/", ADMIN),
    PortalPage("prospect-landing", lambda s: s.link_url),
    PortalPage("prospect-ended", lambda s: s.ended_link_url, remembers=lambda s: s.ended_link),
    PortalPage("prospect-not-available", lambda s: "/p/no-such-link/", status=404),
    PortalPage("gate-private", lambda s: s.demos["running"].live_url, status=403),
    PortalPage("gate-waking", lambda s: f"/gate/waking/{s.demos['asleep'].public_id}/", SALES),
    PortalPage("forbidden", lambda s: "/fleet/", SALES, status=403),
    PortalPage("not-found", lambda s: f"/demos/{uuid.uuid4()}/", SALES, status=404),
)


# --- Looking at a page ---------------------------------------------------------------------------


def _session_cookie(site_url: str, key: str) -> dict[str, Any]:
    return {"name": settings.SESSION_COOKIE_NAME, "value": key, "url": site_url}


def _signed_in(user: User) -> str:
    """A session for `user`, as logging in makes one (the login page has its own entry)."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _remembering(link: ShareLink) -> str:
    """A session of a prospect's browser that opened `link` before."""
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[PROSPECT_LINKS_SESSION_KEY] = [link.pk]
    session.save()
    assert session.session_key is not None
    return session.session_key


def open_context(
    browser: Browser,
    site_url: str,
    showcase: Showcase,
    portal_page: PortalPage,
    viewport: dict[str, int],
) -> BrowserContext:
    """A fresh browser of the page's visitor, at `viewport`, signed in when they have an account."""
    context = browser.new_context(viewport=viewport, locale="en-GB")
    if portal_page.visitor is not None:
        key = _signed_in(showcase.users[portal_page.visitor])
        context.add_cookies([_session_cookie(site_url, key)])
    if portal_page.remembers is not None:
        key = _remembering(portal_page.remembers(showcase))
        context.add_cookies([_session_cookie(site_url, key)])
    return context


def show(
    context: BrowserContext, site_url: str, showcase: Showcase, portal_page: PortalPage
) -> BrowserPage:
    """Go to the page in `context`, check its answer code, and do what it asks before looking."""
    page = context.new_page()
    path = portal_page.path(showcase)
    url = path if path.startswith("http") else f"{site_url}{path}"
    response = page.goto(url)
    assert response is not None
    assert response.status == portal_page.status, (
        f"{portal_page.name}: {url} answered {response.status}, expected {portal_page.status}"
    )
    if portal_page.then is not None:
        portal_page.then(page)
    return page
