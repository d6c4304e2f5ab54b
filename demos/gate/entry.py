"""Who may enter a demo's live app, and where "Open demo" leads them.

A team member who may see the demo, or a prospect whose link still works, gets a pass. A running
demo is entered at once, through a ticket to its host; a sleeping one is woken and the visitor
waits on the waking page, which goes on to the app when it is ready.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from demos import access
from demos.engine import lifecycle
from demos.errors import LifecycleError
from demos.gate import hosts
from demos.gate.passes import LINK, MEMBER, Pass, issue_ticket, lasting_until
from demos.models import Demo, ShareLink, Status
from demos.sharing import links

log = logging.getLogger(__name__)

# The prospect pages remember which links this browser opened (demos.sharing.prospect).
PROSPECT_LINKS_SESSION_KEY = "prospect_links"
ENTER_PATH = "/.portal-gate/enter"


def member_pass(demo: Demo, user_id: int) -> Pass:
    return Pass(demo.cluster_name, demo.pk, MEMBER, user_id, lasting_until(None))


def link_pass(link: ShareLink) -> Pass:
    ends = links.link_expires_at(link)
    return Pass(
        link.demo.cluster_name,
        link.demo.pk,
        LINK,
        link.pk,
        lasting_until(ends.timestamp() if ends else None),
    )


def safe_next(path: str) -> str:
    """A path on the demo's own host: anything else (another host, a scheme) becomes `/`."""
    if not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    return path


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else "") or "/")


def enter_url(demo: Demo, grant: Pass, next_path: str = "/") -> str:
    """The demo host's address that trades a fresh ticket for the access cookie."""
    origin = hosts.gated_origin(demo)
    query = urlencode({"ticket": issue_ticket(grant), "next": safe_next(next_path)})
    return f"{origin}{ENTER_PATH}?{query}"


def signin_url(original_url: str) -> str:
    """Where a browser without a valid pass is sent: the portal asks who it is."""
    return f"{settings.SITE_URL}{reverse('gate:signin')}?{urlencode({'rd': original_url})}"


def waking_url(demo: Demo, next_path: str = "/") -> str:
    return (
        reverse("gate:waking", args=[demo.public_id])
        + "?"
        + urlencode({"next": safe_next(next_path)})
    )


def visitor_pass(request: HttpRequest, demo: Demo) -> tuple[Pass, lifecycle.Actor] | None:
    """The pass this browser may have for `demo`, and who it acts as; None for a stranger.

    A signed-in person who may see the demo enters as a team member; otherwise a link this
    browser opened before (remembered by the prospect pages) that still works.
    """
    user = request.user
    if user.is_authenticated and access.can_see(user, demo):
        return member_pass(demo, user.pk), lifecycle.Actor(user=user)
    remembered = request.session.get(PROSPECT_LINKS_SESSION_KEY, [])
    if remembered:
        candidates = ShareLink.objects.filter(pk__in=remembered, demo=demo).select_related(
            "demo__template", "demo__owner"
        )
        for link in candidates:
            if links.is_usable(link):
                return link_pass(link), lifecycle.Actor(label="prospect")
    return None


def known_link(request: HttpRequest, demo: Demo) -> ShareLink | None:
    """A link to `demo` this browser opened before, usable or not (for the "ended" page)."""
    remembered = request.session.get(PROSPECT_LINKS_SESSION_KEY, [])
    return (
        ShareLink.objects.filter(pk__in=remembered, demo=demo, revoked_at=None)
        .select_related("demo__template", "demo__owner")
        .first()
        if remembered
        else None
    )


def wake_if_asleep(demo: Demo, actor: lifecycle.Actor) -> Demo:
    """Wake a sleeping demo for someone who opened it. Waking twice is harmless."""
    if demo.status != Status.ASLEEP:
        return demo
    try:
        return lifecycle.wake_demo(demo=demo, actor=actor)
    except LifecycleError as exc:
        log.info("Demo %s not woken: %s", demo.cluster_name, exc)
        demo.refresh_from_db()
        return demo


def record_entry(grant: Pass) -> None:
    """The first time a prospect goes into the app through their link: tell the owner."""
    if not grant.is_prospect:
        return
    now = timezone.now()
    if ShareLink.objects.filter(pk=grant.subject, first_entered_at=None).update(
        first_entered_at=now
    ):
        link = ShareLink.objects.select_related("demo__template", "demo__owner").get(
            pk=grant.subject
        )
        links.record_first_entry(link)
