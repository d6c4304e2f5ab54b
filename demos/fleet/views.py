"""The fleet pages for sales managers and template admins: overview, bulk actions, activity feed
and CSV exports. Anonymous visitors are sent to log in; everyone else without the role gets 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from demos import roles
from demos.access import can_act_on, demos_visible_to
from demos.fleet import rows, selectors
from demos.fleet.bulk import BulkActionForm, apply_bulk_action
from demos.fleet.exports import demo_rows, stream_csv, visit_rows
from demos.guards import role_required
from demos.models import Status
from demos.paging import page_of

# Demos per page of the overview's list: a screenful, and half the rendering of 50.
FLEET_PAGE_SIZE = 25
# More failures than this in one bulk action are summarised, not listed one by one.
MAX_FAILURE_MESSAGES = 10


# Logged in, and a sales manager or template admin: the one check for every fleet page.
fleet_access = role_required(
    roles.can_view_fleet, "The fleet is for sales managers and template admins."
)


@fleet_access
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    listed = selectors.fleet_demos(now)
    status = request.GET.get("status", "")
    status = status if status in Status.values else ""
    page = page_of(
        listed.filter(status=status) if status else listed, request.GET, size=FLEET_PAGE_SIZE
    )
    for demo in page:
        demo.fleet_can_act = can_act_on(request.user, demo)
    figures = selectors.fleet_figures_recent()
    failures = selectors.recent_failures(now)
    shown = list(failures[: selectors.FAILURES_SHOWN])
    return render(
        request,
        "fleet/overview.html",
        {
            "demos": page,
            "demo_rows": rows.of_demos(request, page),
            "failure_rows": rows.of_failures(request, shown),
            "can_act_on_any": any(demo.fleet_can_act for demo in page),
            "status_filter": status,
            "status_label": Status(status).label if status else "",
            "counts": figures.counts,
            "listed_total": figures.listed_total,
            "failures": shown,
            "failure_count": failures.count(),
            "speeds": selectors.time_to_ready_recent(),
            "capacity": figures.capacity,
            "sleep": figures.sleep,
            "warm_pools": figures.warm_pools,
        },
    )


@fleet_access
@require_POST
def bulk_action(request: HttpRequest) -> HttpResponse:
    """Extend or delete the ticked demos: a confirmation page first, then the lifecycle."""
    form = BulkActionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("demos:fleet")
    action = form.bulk_action
    selected = form.cleaned_data["demos"]
    demos = list(demos_visible_to(request.user).filter(public_id__in=selected))
    missing = len(selected) - len(demos)
    if not form.cleaned_data["confirmed"]:
        return render(
            request,
            "fleet/confirm.html",
            {
                "action": action,
                "demos": [demo for demo in demos if can_act_on(request.user, demo)],
                "refused": [demo for demo in demos if not can_act_on(request.user, demo)],
                "missing": missing,
            },
        )

    outcomes = apply_bulk_action(action=action, demos=demos, user=request.user)
    selectors.forget_fleet_figures()
    done = [outcome for outcome in outcomes if outcome.ok]
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if done:
        messages.success(request, f"{action.done} {len(done)} demo{'s' if len(done) != 1 else ''}.")
    for outcome in failed[:MAX_FAILURE_MESSAGES]:
        owner = outcome.demo.owner.get_username() if outcome.demo.owner else "no owner"
        messages.error(request, f"{outcome.demo.cluster_name} ({owner}): {outcome.message}")
    if len(failed) > MAX_FAILURE_MESSAGES:
        messages.error(
            request, f"…and {len(failed) - MAX_FAILURE_MESSAGES} more demos could not be changed."
        )
    if missing:
        messages.warning(request, f"{missing} selected demos no longer exist.")
    return redirect("demos:fleet")


def _parse_before(text: str) -> datetime | None:
    """The feed's paging cursor; anything unreadable means "from the newest"."""
    try:
        moment = parse_datetime(text)
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


@fleet_access
@require_GET
def activity(request: HttpRequest) -> HttpResponse:
    area = request.GET.get("area", "")
    area = area if area in ("demo", "template") else ""
    before = _parse_before(request.GET.get("before", ""))
    items = selectors.activity_feed(before=before, area=area)
    return render(
        request,
        "fleet/activity.html",
        {
            "items": items,
            "area": area,
            "before": before,
            "older": items[-1].at.isoformat() if len(items) == selectors.ACTIVITY_PAGE else "",
            "can_open_admin": request.user.has_perm("demos.view_demotemplate"),
        },
    )


def _csv_response(rows: Any, name: str) -> StreamingHttpResponse:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return StreamingHttpResponse(
        stream_csv(rows),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"'},
    )


@fleet_access
@require_GET
def export_demos(request: HttpRequest) -> StreamingHttpResponse:
    return _csv_response(demo_rows(), "demos")


@fleet_access
@require_GET
def export_visits(request: HttpRequest) -> StreamingHttpResponse:
    return _csv_response(visit_rows(), "prospect-visits")
