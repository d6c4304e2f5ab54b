"""The demo's team page: who works on it, adding and removing colleagues, handing it over.

Everyone who sees the demo sees who works on it; only its owner and sales managers change that
(demos.access.can_manage_team). Plain forms that post and come back with a message, so the page
works the same without JavaScript.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from demos.access import can_manage_team, can_see, get_demo_for_user, get_demo_to_manage
from demos.engine.lifecycle import Actor
from demos.errors import LifecycleError
from demos.guards import login_required
from demos.models import Demo
from demos.sales import team
from demos.sales.forms import AddColleagueForm, HandOverForm


def _page(
    request: HttpRequest,
    demo: Demo,
    *,
    add_form: AddColleagueForm | None = None,
    hand_over_form: HandOverForm | None = None,
    status: int = 200,
) -> HttpResponse:
    manages = can_manage_team(request.user, demo)
    context: dict[str, Any] = {
        "demo": demo,
        "colleagues": team.colleagues_of(demo),
        "manages": manages,
        "candidates": [team.person_label(p) for p in team.candidates_for(demo)] if manages else [],
        "add_form": add_form or AddColleagueForm(),
        "hand_over_form": hand_over_form or HandOverForm(),
        "shared_by": team.shared_by_note(request.user, demo),
    }
    return render(request, "demos/team.html", context, status=status)


@login_required
@require_GET
def team_page(request: HttpRequest, public_id: UUID) -> HttpResponse:
    return _page(request, get_demo_for_user(request.user, public_id))


@login_required
@require_POST
def add_colleague(request: HttpRequest, public_id: UUID) -> HttpResponse:
    demo = get_demo_to_manage(request.user, public_id)
    form = AddColleagueForm(request.POST)
    if form.is_valid():
        person = form.cleaned_data["person"]
        try:
            team.add_colleague(demo=demo, person=person, actor=Actor.of(request.user))
        except LifecycleError as exc:
            form.add_error("person", str(exc))
        else:
            messages.success(
                request,
                f"{team.person_name(person)} now works on this demo, and has been told by email.",
            )
            return redirect("demos:team", public_id=demo.public_id)
    return _page(request, demo, add_form=form, status=400)


@login_required
@require_POST
def remove_colleague(request: HttpRequest, public_id: UUID, user_id: int) -> HttpResponse:
    demo = get_demo_to_manage(request.user, public_id)
    person = get_object_or_404(get_user_model(), pk=user_id)
    if team.remove_colleague(demo=demo, person=person, actor=Actor.of(request.user)):
        messages.success(request, f"{team.person_name(person)} no longer works on this demo.")
    return redirect("demos:team", public_id=demo.public_id)


@login_required
@require_POST
def hand_over(request: HttpRequest, public_id: UUID) -> HttpResponse:
    demo = get_demo_to_manage(request.user, public_id)
    form = HandOverForm(request.POST)
    if form.is_valid():
        new_owner = form.cleaned_data["person"]
        try:
            demo = team.hand_over_demo(
                demo=demo,
                new_owner=new_owner,
                actor=Actor.of(request.user),
                keep_old_owner=form.cleaned_data["stay_on"],
            )
        except LifecycleError as exc:
            form.add_error("person", str(exc))
        else:
            messages.success(
                request,
                f"The demo now belongs to {team.person_name(new_owner)}; they have been emailed.",
            )
            # Someone who handed it over without staying on no longer sees it.
            fresh = get_demo_for_user_or_none(request.user, demo.public_id)
            if fresh is None:
                return redirect("demos:my_demos")
            return redirect("demos:team", public_id=demo.public_id)
    return _page(request, demo, hand_over_form=form, status=400)


def get_demo_for_user_or_none(user: Any, public_id: UUID) -> Demo | None:
    demo = Demo.objects.filter(public_id=public_id).first()
    return demo if demo is not None and can_see(user, demo) else None
