"""Changing a demo: extend, keep for later, resume, archive, retry, delete, restore.

Every action is a POST that calls one lifecycle function. With htmx it answers in place (the
status panel, or a row of My demos); without JavaScript it redirects back with a message.
"""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from demos.access import get_demo_to_act_on
from demos.engine.lifecycle import restore_snapshot
from demos.errors import LifecycleError
from demos.guards import login_required
from demos.models import Demo, Status
from demos.sales.buttons import ACTIONS, done_message, is_allowed
from demos.sales.forms import RestoreSnapshotForm
from demos.sales.panel import queue_note, queue_reason, render_row, render_status_update, row_dom_id


def back_to(request: HttpRequest, demo: Demo) -> str:
    """Where a no-JavaScript action returns: the page it came from, if it is ours."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("demos:detail", args=[demo.public_id])


def in_place(
    request: HttpRequest, demo: Demo, *, notice: str = "", error: str = "", status: int = 200
) -> HttpResponse:
    if request.htmx.target == row_dom_id(demo):
        return render_row(request, demo, notice=notice, error=error, status=status)
    return render_status_update(request, demo, notice=notice, error=error, status=status)


# Answers in place with the status panel, which shows the demo's credentials.
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def demo_action(request: HttpRequest, public_id: UUID, action: str) -> HttpResponse:
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise Http404("No such action.")
    demo = get_demo_to_act_on(request.user, public_id)
    return_to = back_to(request, demo)

    if request.method == "GET":
        # Without JavaScript, actions that ask first arrive here as a link: show the question.
        # A GET never changes anything.
        if not chosen.confirm or not is_allowed(chosen, demo):
            return redirect(return_to)
        context = {"demo": demo, "action": chosen, "back_to": return_to}
        return render(request, "demos/confirm_action.html", context)

    try:
        demo = chosen.run(demo, request.user)
    except LifecycleError as exc:
        if request.htmx:
            demo.refresh_from_db()
            return in_place(request, demo, error=str(exc), status=409)
        messages.error(request, str(exc))
        return redirect(return_to)
    notice = done_message(chosen, demo)
    if request.htmx:
        return in_place(request, demo, notice=notice)
    messages.success(request, notice)
    return redirect(return_to)


@login_required
@require_POST
def restore(request: HttpRequest, public_id: UUID, snapshot_id: int) -> HttpResponse:
    """Start a new demo from an archived demo's snapshot; the new demo belongs to the restorer."""
    demo = get_demo_to_act_on(request.user, public_id)
    snapshot = get_object_or_404(demo.snapshots, pk=snapshot_id)
    form = RestoreSnapshotForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The form has expired. Reload the page and try again.")
        return redirect("demos:detail", public_id=demo.public_id)
    try:
        restored = restore_snapshot(
            snapshot=snapshot, owner=request.user, start_token=form.cleaned_data["start_token"]
        )
    except LifecycleError as exc:
        messages.error(request, str(exc))
        return redirect("demos:detail", public_id=demo.public_id)
    messages.success(request, _restored_message(restored))
    return redirect("demos:detail", public_id=restored.public_id)


def _restored_message(restored: Demo) -> str:
    """A restore that has to wait says so, and why: it is a new demo, held to the same limits."""
    if restored.status != Status.QUEUED:
        return "Restoring from the snapshot: a new demo is starting."
    reason = queue_reason(restored)
    return f"Restoring from the snapshot: the new demo is queued. {queue_note(reason, restored)}"
