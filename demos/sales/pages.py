"""What a salesperson looks at: one demo with its live status, and the list of their demos."""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_htmx.http import HTMX_STOP_POLLING

from demos.access import (
    can_act_on,
    can_see,
    demos_visible_to,
    get_demo_for_user,
    sees_everyones_demos,
)
from demos.guards import login_required
from demos.models import OPEN, Demo, Status
from demos.sales.buttons import available_actions
from demos.sales.panel import DemoRow, panel_context, render_row, render_status_update
from demos.sales.poll import panel_state
from demos.sharing.views import share_context

# Ended demos are history: the list shows the latest, not all of them.
ENDED_SHOWN = 25
# An event id, as the page sends it back: ASCII digits only (str.isdigit() also takes "²").
_EVENT_ID = re.compile(r"[0-9]{1,18}")


# The demo page and its fragments show the demo's credentials: never kept by a browser or proxy.
@never_cache
@login_required
@require_GET
def demo_detail(request: HttpRequest, public_id: UUID) -> HttpResponse:
    # The panel's version before the demo (see `demo_status`), so the first poll can answer 204.
    state = panel_state(public_id)
    demo = get_demo_for_user(request.user, public_id)
    context = panel_context(request, demo, version=state.version if state else "")
    context["show_owner"] = demo.owner_id != request.user.pk
    context.update(share_context(demo, can_act=can_act_on(request.user, demo)))
    return render(request, "demos/detail.html", context)


@never_cache
@login_required
@require_GET
def demo_status(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """The fragment the demo page (or a row of My demos) polls every two seconds.

    Answers 204 when the panel the page shows is still current (most polls), and 286 once the
    demo has settled, which tells htmx to stop polling.
    """
    if request.GET.get("fragment") == "row":
        demo = get_demo_for_user(request.user, public_id)
        return render_row(request, demo, status=HTMX_STOP_POLLING if demo.is_settled else 200)
    # The version first and the demo after it, so the panel sent is never older than its version.
    state = panel_state(public_id)
    if state and state.unchanged_since(request.GET.get("v", "")) and can_see(request.user, state):
        return HttpResponse(status=HTTPStatus.NO_CONTENT)
    since = request.GET.get("since", "")
    if since and not _EVENT_ID.fullmatch(since):
        return HttpResponseBadRequest("since must be an event id (digits).")
    demo = get_demo_for_user(request.user, public_id)
    return render_status_update(
        request,
        demo,
        status=HTMX_STOP_POLLING if demo.is_settled else 200,
        since=int(since) if since else None,
        version=state.version if state else "",
    )


@login_required
@require_GET
def my_demos(request: HttpRequest) -> HttpResponse:
    """The person's demos, split into active, kept for later and ended.

    Sales managers (and fleet watchers) see everyone's and can narrow the list to one owner.
    """
    demos = demos_visible_to(request.user)
    everyone = sees_everyones_demos(request.user)
    owner = request.GET.get("owner", "") if everyone else ""
    owners = []
    if everyone:
        owners = list(
            get_user_model()
            .objects.filter(demos__in=demos)
            .distinct()
            .order_by("first_name", "username")
        )
        if owner:
            demos = demos.filter(owner__username=owner)
    else:
        demos = demos.filter(owner=request.user)

    # Archived demos are kept while their snapshot is (keep_until), then they count as ended.
    kept_filter = Q(status=Status.PAUSED) | Q(status=Status.ARCHIVED, keep_until__isnull=False)
    ended_filter = Q(status=Status.DELETED) | Q(status=Status.ARCHIVED, keep_until__isnull=True)
    active = demos.filter(status__in=OPEN).order_by("-requested_at")
    kept = demos.filter(kept_filter).order_by("keep_until")
    ended = demos.filter(ended_filter).order_by("-ended_at", "-requested_at")[:ENDED_SHOWN]

    def rows(queryset: Iterable[Demo]) -> list[DemoRow]:
        return [DemoRow(d, available_actions(request.user, d, in_list=True)) for d in queryset]

    sections = [
        ("active", "Active", rows(active)),
        ("kept", "Kept for later", rows(kept)),
        ("ended", "Ended", rows(ended)),
    ]
    context = {
        "sections": sections,
        "has_any": any(section_rows for _key, _title, section_rows in sections),
        "everyone": everyone,
        "owners": owners,
        "owner": owner,
        "show_owner": everyone and not owner,
        "ended_shown": ENDED_SHOWN,
        "next_url": request.get_full_path(),
    }
    return render(request, "demos/my_demos.html", context)
