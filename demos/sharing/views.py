"""The salesperson's side of prospect links: make, list and revoke them, see who visited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from demos.access import can_act_on, get_demo_for_user, get_demo_to_act_on
from demos.engine.lifecycle import Actor
from demos.errors import LifecycleError
from demos.gate import engagement
from demos.guards import login_required
from demos.models import Demo, ShareLink
from demos.sharing import links
from demos.sharing.forms import ShareLinkForm


@dataclass(frozen=True)
class LinkRow:
    """A prospect link in the share panel, with how its prospect has used the demo."""

    link: ShareLink
    usage: engagement.LinkUsage


def link_rows(demo: Demo) -> list[LinkRow]:
    """The demo's links with their engagement: read in the links' own query, plus one Redis
    round trip for who is in the demo now."""
    shared = list(engagement.with_usage(demo.share_links.all()))
    usage = engagement.link_usage(demo, shared)
    return [LinkRow(link, usage[link.pk]) for link in shared]


def share_context(demo: Demo, *, can_act: bool, **extra: Any) -> dict[str, Any]:
    """What the share panel shows. Only people who may change the demo may make or revoke links."""
    return {
        "demo": demo,
        "share_links": link_rows(demo),
        "visits": links.visits_for(demo)[:20],
        "share_form": extra.pop("share_form", None) or ShareLinkForm(),
        "shareable": can_act and links.is_shareable(demo),
        "can_share": can_act,
        **extra,
    }


def _panel(request: HttpRequest, demo: Demo, **extra: Any) -> HttpResponse:
    context = share_context(demo, can_act=can_act_on(request.user, demo), **extra)
    return TemplateResponse(request, "demos/share_panel.html#share_panel", context)


# The panel lists the prospect links, and shows a new one in full: never cached.
@never_cache
@login_required
@require_GET
def share_panel(request: HttpRequest, public_id: UUID) -> HttpResponse:
    return _panel(request, get_demo_for_user(request.user, public_id))


@never_cache
@login_required
@require_POST
def create_link(request: HttpRequest, public_id: UUID) -> HttpResponse:
    demo = get_demo_to_act_on(request.user, public_id)
    form = ShareLinkForm(request.POST)
    error = ""
    new_link = None
    if form.is_valid():
        try:
            new_link = links.create_share_link(
                demo=demo,
                actor=Actor.of(request.user),
                recipient=form.cleaned_data["recipient"],
                note=form.cleaned_data["note"],
                expires_at=form.chosen_expiry(),
            )
        except LifecycleError as exc:
            error = str(exc)
    if not request.htmx:
        if new_link:
            messages.success(
                request,
                f"Link for {new_link.link.recipient}: {new_link.url} "
                "(copy it now: it is shown only once).",
            )
        else:
            messages.error(request, error or "Check the link form: " + form.errors.as_text())
        return redirect("demos:detail", public_id=demo.public_id)
    if new_link:
        return _panel(request, demo, new_link=new_link)
    return _panel(request, demo, share_form=form, share_error=error)


@never_cache
@login_required
@require_POST
def revoke_link(request: HttpRequest, public_id: UUID, link_id: int) -> HttpResponse:
    demo = get_demo_to_act_on(request.user, public_id)
    link = get_object_or_404(ShareLink, pk=link_id, demo=demo)
    links.revoke_share_link(link=link, actor=Actor.of(request.user))
    if request.htmx:
        return _panel(request, demo, notice=f"The link for {link.recipient} no longer works.")
    messages.success(request, f"The link for {link.recipient} no longer works.")
    return redirect("demos:detail", public_id=demo.public_id)
