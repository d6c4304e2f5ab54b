"""The gate's HTTP side: the check the ingress calls, and the pages a browser passes through.

- `check`: for every request to a demo host. 200 lets it through; otherwise 401 for controllers
  that redirect by themselves (ingress-nginx's `auth-signin`, nginx's `error_page`), or a 302 to
  the sign-in page for those that hand the check's answer to the browser (Traefik's ForwardAuth,
  Envoy's external authorization). It reads no session and no database row while Redis holds
  the gate's state (demos.gate.state).
- `enter` (on the demo host): trades a ticket for the host-only access cookie.
- `signin` (on the portal): where a browser without a valid pass lands; it is let in again if
  the portal knows it (a team member, or a prospect whose link this browser opened), woken into
  a sleeping demo, or told the demo is private.
- `waking`: the page that waits for a sleeping demo and then goes on into it.
- `demo_app` (on the demo host): the simulated backend's sample app, checked here when no
  ingress stands in front (DEMO_GATE_CONTROLLER=portal).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRedirect

from demos.backends.simulated_app import simulated_app
from demos.engine.lifecycle import Actor
from demos.gate import activity, entry, hosts, passes, state
from demos.gate.state import Decision
from demos.models import RESTING, Demo, Status

WAKING_POLL_SECONDS = 2


def _original_url(request: HttpRequest, original_path: str | None = None) -> str:
    """The address the browser asked for, as the ingress reports it: ingress-nginx in
    X-Original-URL, Traefik in X-Forwarded-Host and -Uri, Envoy by keeping the original Host
    and appending the original path to the check's (`original_path`)."""
    original = request.headers.get("X-Original-URL")
    if original:
        return original
    if original_path is not None:
        proto = request.headers.get("X-Forwarded-Proto", "https")
        query = request.META.get("QUERY_STRING", "")
        return f"{proto}://{request.get_host()}{original_path}" + (f"?{query}" if query else "")
    host = request.headers.get("X-Forwarded-Host")
    if host:
        proto = request.headers.get("X-Forwarded-Proto", "https")
        return f"{proto}://{host}{request.headers.get('X-Forwarded-Uri', '/')}"
    return request.build_absolute_uri()


def _decision(request: HttpRequest, cluster: str | None) -> Decision:
    if cluster is None:
        return Decision.DENY
    try:
        grant = passes.open_cookie(request.COOKIES.get(passes.cookie_name(), ""))
    except passes.InvalidPass:
        return Decision.DENY
    if grant.cluster != cluster:
        return Decision.DENY  # another demo's cookie (cookies are host-only; this is a forgery)
    counts = activity.counts(request.headers.get("User-Agent", ""))
    return state.check(grant, counts=counts)


@csrf_exempt
def check(request: HttpRequest, original_path: str | None = None) -> HttpResponse:
    original = _original_url(request, original_path)
    decision = _decision(request, hosts.cluster_for_url(original))
    if decision is Decision.ALLOW:
        response = HttpResponse(status=200)
    elif "X-Original-URL" in request.headers:
        response = HttpResponse(status=401)
    else:
        response = HttpResponseRedirect(entry.signin_url(original))
    # Set directly: Django's add_never_cache_headers costs a tenth of a check.
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def enter(request: HttpRequest) -> HttpResponse:
    cluster = request.demo_cluster  # type: ignore[attr-defined]
    next_path = entry.safe_next(request.GET.get("next", "/"))
    try:
        grant = passes.redeem_ticket(request.GET.get("ticket", ""))
    except passes.InvalidPass:
        # Used, stale or forged: start again at the portal, which knows whether to let them in.
        return _no_store(redirect(entry.signin_url(request.build_absolute_uri(next_path))))
    if grant.cluster != cluster:
        return _no_store(redirect(entry.signin_url(request.build_absolute_uri(next_path))))
    decision = state.check(grant, counts=False, fresh=True)
    if decision is not Decision.ALLOW:
        return _no_store(redirect(entry.signin_url(request.build_absolute_uri(next_path))))
    response = redirect(next_path)
    response.set_cookie(
        passes.cookie_name(),
        passes.seal_cookie(grant),
        max_age=max(int(grant.expires - time.time()), 1),
        secure=settings.DEMO_GATE_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    entry.record_entry(grant)
    return _no_store(response)


def _no_store(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "no-referrer"  # the ticket is in the address
    return response


def _demo_for_cluster(cluster: str | None) -> Demo | None:
    if cluster is None:
        return None
    return Demo.objects.select_related("template", "owner").filter(cluster_name=cluster).first()


def _private(request: HttpRequest, demo: Demo | None, status: int = 403) -> HttpResponse:
    """For a browser the portal does not know: a team member signs in, a prospect uses their
    link. Ended demos reached through a link this browser opened say so, with the owner."""
    if demo is not None:
        link = entry.known_link(request, demo)
        if link is not None:
            response = TemplateResponse(
                request, "prospect/ended.html", {"link": link, "demo": demo}, status=410
            )
            return _no_store(response)
    response = TemplateResponse(
        request, "gate/private.html", {"signin_next": request.get_full_path()}, status=status
    )
    return _no_store(response)


@require_GET
def signin(request: HttpRequest) -> HttpResponse:
    original = request.GET.get("rd", "")
    demo = _demo_for_cluster(hosts.cluster_for_url(original))
    if demo is None:
        return _private(request, None, status=404)
    found = entry.visitor_pass(request, demo)
    if found is None:
        return _private(request, demo)
    grant, actor = found
    return _open(request, demo, grant, actor, entry.path_of(original))


def _open(
    request: HttpRequest,
    demo: Demo,
    grant: passes.Pass,
    actor: Actor,
    next_path: str,
) -> HttpResponse:
    """Into the app when it runs, to the waking page while it sleeps, else to what explains."""
    if hosts.gated_origin(demo) is None:
        if demo.status == Status.READY and demo.live_url:
            return redirect(demo.live_url)
    elif demo.status == Status.READY:
        return _no_store(redirect(entry.enter_url(demo, grant, next_path)))
    elif demo.status in RESTING:
        entry.wake_if_asleep(demo, actor)
        return redirect(entry.waking_url(demo, next_path))
    if grant.is_prospect:
        return _private(request, demo)
    return redirect("demos:detail", public_id=demo.public_id)


def open_demo(request: HttpRequest, demo: Demo, grant: passes.Pass, actor: Actor) -> HttpResponse:
    """What an "Open demo" button does (demos:open for the team, prospect:open for prospects)."""
    return _open(request, demo, grant, actor, "/")


@require_GET
def waking(request: HttpRequest, public_id: str) -> HttpResponse:
    demo = Demo.objects.select_related("template", "owner").filter(public_id=public_id).first()
    if demo is None:
        raise Http404("No such demo.")
    found = entry.visitor_pass(request, demo)
    if found is None:
        return _private(request, demo)
    grant, actor = found
    next_path = entry.safe_next(request.GET.get("next", "/"))
    if demo.status == Status.READY:
        target = entry.enter_url(demo, grant, next_path)
        if request.htmx:
            return _no_store(HttpResponseClientRedirect(target))
        return _no_store(redirect(target))
    demo = entry.wake_if_asleep(demo, actor)
    context = {
        "demo": demo,
        "waking": demo.status in RESTING,
        "is_prospect": grant.is_prospect,
        "poll_seconds": WAKING_POLL_SECONDS,
        "since": demo.status_changed_at,
    }
    name = "gate/waking.html#panel" if request.htmx else "gate/waking.html"
    response = TemplateResponse(request, name, context)
    if request.htmx and demo.status not in RESTING:
        response.status_code = 286  # htmx: show this and stop polling
    return _no_store(response)


def demo_app(request: HttpRequest, path: str = "") -> HttpResponse:
    """Everything else on a demo host: the simulated app (nothing else is served from here)."""
    cluster = request.demo_cluster  # type: ignore[attr-defined]
    if settings.DEMO_GATE_CONTROLLER == "portal":
        decision = _decision(request, cluster)
        if decision is not Decision.ALLOW:
            return _no_store(redirect(entry.signin_url(request.build_absolute_uri())))
    return simulated_app(request, cluster)
