"""What prospects see: the landing page behind a share link. No account, no login.

Every response here carries `Referrer-Policy: no-referrer` (the token is in the URL and must not
travel to the demo's site), `Cache-Control: no-store, private` (the page shows credentials) and
`X-Robots-Tag: noindex`. Pages wear the portal's branding (demos.branding) and show the demo's
owner as a contact card (demos.profiles).

A token that matches no link gets one neutral page whatever was typed, and repeated failures
from one network are rate-limited; a working link always works, so a neighbour's guessing never
locks a prospect out. A token that matches a link that no longer works (revoked, expired, or its
demo ended or broke) is told so, with whom to contact, on any device: holding a 256-bit token is
not guessing, and the link's owner meant the prospect to reach them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from demos import profiles
from demos.branding import current_branding
from demos.engine.lifecycle import Actor
from demos.gate import entry
from demos.gate import views as gate_views
from demos.models import ENDED, SETTLED, ShareLink, Status
from demos.sharing import links
from portal.clients import client_address

SESSION_KEY = entry.PROSPECT_LINKS_SESSION_KEY
# The landing page polls while something changes for the prospect; a ready demo still needs a
# slow poll, to show the end when it comes.
POLL_SECONDS = {"busy": 3, "ready": 30}


def prospect_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        add_never_cache_headers(response)
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapper


def _not_available(request: HttpRequest, status: int = 404, fragment: bool = False) -> HttpResponse:
    name = "prospect/not_available.html" + ("#panel" if fragment else "")
    context = {"too_many": status == 429, "branding": current_branding()}
    return TemplateResponse(request, name, context, status=status)


def _remember(request: HttpRequest, link: ShareLink) -> None:
    seen = set(request.session.get(SESSION_KEY, []))
    if link.pk not in seen:
        request.session[SESSION_KEY] = sorted(seen | {link.pk})


def why_it_stopped(link: ShareLink) -> str:
    """Why a link that existed no longer opens its demo, in the words of `prospect/ended.html`:
    "revoked" (its owner turned it off), "failed" (the demo broke and was turned off),
    "expired" (the link's own end passed while the demo runs on) or "ended" (the demo ended)."""
    demo = link.demo
    if link.revoked_at is not None:
        return "revoked"
    if demo.status == Status.FAILED:
        return "failed"
    link_ran_out = link.expires_at is not None and link.expires_at <= timezone.now()
    if link_ran_out and demo.status not in ENDED and links.is_shareable(demo):
        return "expired"
    return "ended"


def _ended(request: HttpRequest, link: ShareLink, *, fragment: bool = False) -> HttpResponse:
    name = "prospect/ended.html" + ("#panel" if fragment else "")
    context = {
        "link": link,
        "demo": link.demo,
        "reason": why_it_stopped(link),
        # Swapped into the landing page under its own h1, or a page of its own.
        "heading": "h2" if fragment else "h1",
        "card": profiles.contact_card(link.demo.owner),
        "branding": current_branding(),
    }
    return TemplateResponse(request, name, context)


def _link_or_refusal(
    request: HttpRequest, token: str, *, fragment: bool = False
) -> ShareLink | HttpResponse:
    """The usable link, or the page (or panel fragment) to answer with instead.

    The token is looked up before the rate limit is consulted: only unknown tokens count and
    only they are refused, so a working (or once working) link opens even from a network that
    is guessing.
    """
    link = links.find_link(token)
    if link is not None:
        return link if links.is_usable(link) else _ended(request, link, fragment=fragment)
    limiter = links.FailureLimiter()
    address = client_address(request)
    if limiter.blocked(address):
        return _not_available(request, status=429, fragment=fragment)
    limiter.record_failure(address)
    return _not_available(request, fragment=fragment)


def _context(link: ShareLink) -> dict[str, Any]:
    demo = link.demo
    busy = demo.status not in SETTLED
    return {
        "link": link,
        "demo": demo,
        "spec": demo.spec,
        "ends_at": links.link_expires_at(link),
        "poll_seconds": POLL_SECONDS["busy" if busy else "ready"],
        "can_download_kubeconfig": links.offers_kubeconfig(demo),
        # More time only means something while the clock runs: not while it is kept or asleep.
        "offers_more_time": demo.status == Status.READY,
        "card": profiles.contact_card(demo.owner),
        "branding": current_branding(),
    }


def with_link(*, fragment: bool = False) -> Callable[[Callable[..., HttpResponse]], Any]:
    """Resolve the URL's token to a usable link, or answer with the refusal page instead."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, token: str) -> HttpResponse:
            found = _link_or_refusal(request, token, fragment=fragment)
            if isinstance(found, HttpResponse):
                if fragment and found.status_code in (200, 404):
                    found.status_code = 286  # htmx: swap this in and stop polling
                return found
            return view(request, found)

        return wrapper

    return decorate


@prospect_page
@require_GET
@with_link()
def landing(request: HttpRequest, link: ShareLink) -> HttpResponse:
    _remember(request, link)
    links.record_visit(
        link, user_agent=request.headers.get("User-Agent", ""), address=client_address(request)
    )
    return TemplateResponse(request, "prospect/landing.html", _context(link))


@prospect_page
@require_GET
@with_link()
def open_demo(request: HttpRequest, link: ShareLink) -> HttpResponse:
    """The prospect's "Open demo": into the app through the gate, waking it if it sleeps."""
    _remember(request, link)
    return gate_views.open_demo(request, link.demo, entry.link_pass(link), Actor(label="prospect"))


@prospect_page
@require_GET
@with_link(fragment=True)
def status(request: HttpRequest, link: ShareLink) -> HttpResponse:
    """The live part of the landing page (htmx). 286 stops polling once the demo has ended."""
    return TemplateResponse(request, "prospect/landing.html#panel", _context(link))


@prospect_page
@require_POST
@with_link()
def more_time(request: HttpRequest, link: ShareLink) -> HttpResponse:
    sent = links.request_more_time(link)
    if request.htmx:
        context = {**_context(link), "more_time_sent": True, "more_time_new": sent}
        return TemplateResponse(request, "prospect/landing.html#more_time", context)
    return redirect("prospect:landing", **request.resolver_match.kwargs)


@prospect_page
@require_GET
@with_link()
def kubeconfig(request: HttpRequest, link: ShareLink) -> HttpResponse:
    config = links.kubeconfig_for(link)
    if config is None:
        return _not_available(request)
    response = HttpResponse(config, content_type="application/yaml")
    response["Content-Disposition"] = (
        f'attachment; filename="{link.demo.cluster_name}-kubeconfig.yaml"'
    )
    return response
