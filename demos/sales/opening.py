"""The team's "Open demo": into the live app through the gate (demos.gate), as a team member."""

from __future__ import annotations

from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from demos.access import get_demo_for_user
from demos.engine.lifecycle import Actor
from demos.gate import entry
from demos.gate import views as gate_views
from demos.guards import login_required


@login_required
@require_GET
def open_for_member(request: HttpRequest, public_id: UUID) -> HttpResponse:
    demo = get_demo_for_user(request.user, public_id)
    grant = entry.member_pass(demo, request.user.pk)
    return gate_views.open_demo(request, demo, grant, Actor(user=request.user))
