"""A prospect's request for more time, as a badge on the demo with one-click Extend.

The prospect's page records the request (demos.sharing.links.request_more_time sets
`Demo.more_time_requested_at`); extending the demo answers it (the lifecycle's extend clears it),
and Dismiss puts it away without extending. When Extend is no longer possible the badge says why
and offers to write to the prospect instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from demos.access import get_demo_to_act_on
from demos.engine.lifecycle import Actor, extension_refusal, record_event
from demos.guards import login_required
from demos.models import ENDED, Demo, Status
from demos.sharing import links


@dataclass(frozen=True)
class MoreTimeBadge:
    who: str  # "Pat Lee asked for more time": the prospect's name, or "Your prospect"
    asked_at: datetime
    refusal: str  # why Extend is not possible; "" when it is
    email_url: str  # a mailto: link to the prospect, offered when Extend is not possible

    @property
    def can_extend(self) -> bool:
        return not self.refusal


def badge_for(demo: Demo) -> MoreTimeBadge | None:
    """The badge `demo` shows, or None when no request is waiting (or the demo is gone)."""
    asked_at = demo.more_time_requested_at
    if asked_at is None or demo.status in ENDED or demo.status == Status.FAILED:
        return None
    who = demo.prospect_name or (
        f"Your prospect at {demo.prospect_company}" if demo.prospect_company else "Your prospect"
    )
    refusal = extension_refusal(demo) or ""
    # Only then is the prospect's address looked up: one query, and only for this rare badge.
    email_url = _email_url(demo) if refusal else ""
    return MoreTimeBadge(who, asked_at, refusal, email_url)


def _email_url(demo: Demo) -> str:
    address = next(
        filter(None, (links.prospect_email(link) for link in demo.share_links.order_by("-pk"))),
        "",
    )
    subject = f"Your {demo.template.name} demo"
    body = (
        "Hello,\n\nThank you for asking for more time with the demo. It cannot run any longer "
        "as it is, so let us find another way: "
    )
    return f"mailto:{quote(address, safe='@')}?subject={quote(subject)}&body={quote(body)}"


def dismiss_more_time(*, demo: Demo, actor: Actor) -> bool:
    """Put the request away without extending. False when there was none (a double click)."""
    if not Demo.objects.filter(pk=demo.pk, more_time_requested_at__isnull=False).update(
        more_time_requested_at=None
    ):
        return False
    demo.more_time_requested_at = None
    record_event(
        demo, "more-time-dismissed", "Dismissed the prospect's request for more time.", actor
    )
    return True


@never_cache
@login_required
@require_POST
def dismiss(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """Dismiss: answers in place (the status panel, or the row) like the demo's actions."""
    from demos.sales.actions import back_to, in_place

    demo = get_demo_to_act_on(request.user, public_id)
    dismiss_more_time(demo=demo, actor=Actor.of(request.user))
    notice = "Dismissed the request for more time."
    if request.htmx:
        return in_place(request, demo, notice=notice)
    messages.success(request, notice)
    return redirect(back_to(request, demo))
