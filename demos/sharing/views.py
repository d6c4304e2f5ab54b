"""The salesperson's side of prospect links: make, list and revoke them, see who visited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from demos.access import can_act_on, get_demo_for_user, get_demo_to_act_on
from demos.engine.lifecycle import Actor
from demos.errors import LifecycleError
from demos.fragments import Kept
from demos.gate import engagement
from demos.guards import login_required
from demos.models import Demo, ShareLink
from demos.sales.account import time_zone_of
from demos.sales.panel import panel_context
from demos.sales.poll import panel_state
from demos.sharing import links
from demos.sharing.forms import ShareLinkForm


@dataclass(frozen=True)
class LinkRow:
    """A prospect link in the share panel, with how its prospect has used the demo."""

    link: ShareLink
    usage: engagement.LinkUsage
    active: bool
    # Whether the link can be rebuilt to copy it again (not for links made before that).
    copyable: bool


def link_rows(demo: Demo) -> list[LinkRow]:
    """The demo's links with their engagement: read in the links' own query, plus one Redis
    round trip for who is in the demo now."""
    shared = list(engagement.with_usage(demo.share_links.all()))
    usage = engagement.link_usage(demo, shared)
    return [
        LinkRow(
            link,
            usage[link.pk],
            active=links.is_usable(link),
            copyable=links.token_of(link) is not None,
        )
        for link in shared
    ]


@dataclass(frozen=True)
class ShownLink:
    """One link in full, in the link dialog: to copy, or to email to the prospect."""

    link: ShareLink
    active: bool
    url: str | None  # None: it no longer works, or was shown only when it was made
    email: str | None  # the prospect's address, when "For" holds one
    new: bool = False
    sent_to: str = ""
    error: str = ""


def shown_link(link: ShareLink, **extra: Any) -> ShownLink:
    active = links.is_usable(link)
    url = links.url_of(link) if active else None
    return ShownLink(link, active, url, links.prospect_email(link), **extra)


def share_context(
    request: HttpRequest, demo: Demo, *, can_act: bool, time_zone: str = "", **extra: Any
) -> dict[str, Any]:
    """What the share panel shows. Only people who may change the demo may make or revoke links.
    `time_zone`: the zone the person chose (demos.sales.account), for the new link's form;
    `share_form` in `extra`: a form sent back with its errors."""
    shareable = can_act and links.is_shareable(demo)
    form = extra.pop("share_form", None)
    return {
        "demo": demo,
        "share_links": link_rows(demo),
        "visits": links.visits_for(demo)[:20],
        "share_form": form,
        "share_fields": new_link_fields(request, form, time_zone) if shareable else "",
        "shareable": shareable,
        "can_share": can_act,
        **extra,
    }


NEW_LINK_FIELDS = "demos/share_panel.html#new_link_fields"


def new_link_fields(request: HttpRequest, form: ShareLinkForm | None, time_zone: str) -> SafeString:
    """The new link form's fields: `form`'s, or a blank form's. A blank form is the same for
    everyone in one time zone, and its widgets cost more to render than the rest of the demo's
    page: kept, like a row of My demos (demos.fragments)."""
    if form is not None:
        return render_to_string(NEW_LINK_FIELDS, {"share_form": form})

    def render() -> str:
        return render_to_string(NEW_LINK_FIELDS, {"share_form": ShareLinkForm(time_zone=time_zone)})

    return Kept(request).many([(("new link fields", time_zone), render, {})])[0]


def _panel(request: HttpRequest, demo: Demo, **extra: Any) -> HttpResponse:
    can_act = can_act_on(request.user, demo)
    zone = time_zone_of(request.user)
    context = share_context(request, demo, can_act=can_act, time_zone=zone, **extra)
    return TemplateResponse(request, "demos/share_panel.html#share_panel", context)


def demo_page_context(
    request: HttpRequest, demo: Demo, *, version: str, can_act: bool, **extra: Any
) -> dict[str, Any]:
    """Everything the demo's page shows: its status panel (of `version`, read before the demo so
    the first poll can answer 204) and its share panel, with `extra` there."""
    context = panel_context(request, demo, version=version)
    context["show_owner"] = demo.owner_id != request.user.pk
    zone = time_zone_of(request.user)
    context.update(share_context(request, demo, can_act=can_act, time_zone=zone, **extra))
    return context


def _demo_page(request: HttpRequest, demo: Demo, **extra: Any) -> HttpResponse:
    """The demo's page with `extra` in its share panel: how browsers without JavaScript see a
    link in full (the dialog is then a section of the page)."""
    state = panel_state(demo.public_id)
    version = state.version if state else ""
    context = demo_page_context(request, demo, version=version, can_act=True, **extra)
    return TemplateResponse(request, "demos/detail.html", context)


def _link_to_act_on(request: HttpRequest, public_id: UUID, link_id: int) -> ShareLink:
    demo = get_demo_to_act_on(request.user, public_id)
    link = get_object_or_404(ShareLink, pk=link_id, demo=demo)
    link.demo = demo  # the one already loaded, with its owner and template
    return link


def _link_page_url(link: ShareLink, *, new: bool = False) -> str:
    url = reverse("demos:share_link", args=[link.demo.public_id, link.pk])
    # The dialog's id: a browser without JavaScript scrolls to the link it asked for.
    return f"{url}?new=1#link-dialog" if new else f"{url}#link-dialog"


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
    form = ShareLinkForm(request.POST, time_zone=time_zone_of(request.user))
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
                time_zone=form.display_zone(),
            )
        except LifecycleError as exc:
            error = str(exc)
    if not request.htmx:
        if new_link:
            # The link's own page shows it in full: no token in a message or an address bar.
            return redirect(_link_page_url(new_link.link, new=True))
        messages.error(request, error or "Check the link form: " + form.errors.as_text())
        return redirect("demos:detail", public_id=demo.public_id)
    if new_link:
        email = links.prospect_email(new_link.link)
        shown = ShownLink(new_link.link, True, new_link.url, email, new=True)
        return _panel(request, demo, shown=shown)
    return _panel(request, demo, share_form=form, share_error=error)


# Shows a token: never cached.
@never_cache
@login_required
@require_GET
def show_link(request: HttpRequest, public_id: UUID, link_id: int) -> HttpResponse:
    """One link in full, to copy it again: for the demo's owner and sales managers only."""
    link = _link_to_act_on(request, public_id, link_id)
    shown = shown_link(link, new=request.GET.get("new") == "1")
    if request.htmx:
        return _panel(request, link.demo, shown=shown)
    return _demo_page(request, link.demo, shown=shown)


@never_cache
@login_required
@require_POST
def email_link(request: HttpRequest, public_id: UUID, link_id: int) -> HttpResponse:
    """Send the link to its prospect from the portal, in the owner's name."""
    link = _link_to_act_on(request, public_id, link_id)
    sent_to, error = "", ""
    try:
        sent_to = links.email_share_link(link=link, actor=Actor.of(request.user))
    except LifecycleError as exc:
        error = str(exc)
    if request.htmx:
        return _panel(request, link.demo, shown=shown_link(link, sent_to=sent_to, error=error))
    if sent_to:
        messages.success(request, f"Sent the link to {sent_to}.")
    else:
        messages.error(request, error)
    return redirect(_link_page_url(link))


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
