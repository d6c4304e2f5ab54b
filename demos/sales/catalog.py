"""The catalog (the landing page after login) and starting a demo from it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial

from django.contrib import messages
from django.db.models import Count, Max, prefetch_related_objects
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.http import condition, require_GET, require_http_methods

from demos.durations import format_duration
from demos.engine.capacity import CapacityError, Slots, check_user_limit, slots_for
from demos.engine.lifecycle import start_demo
from demos.engine.pools import pool_levels
from demos.engine.speeds import typical_times_to_ready
from demos.errors import LifecycleError
from demos.fragments import CSRF_PLACEHOLDER, Kept, hole
from demos.guards import login_required
from demos.models import ACTIVE, OPEN, Demo, DemoTemplate
from demos.sales.again import flagged_message
from demos.sales.buttons import OfferedAction, available_actions
from demos.sales.forms import StartDemoForm, new_start_token
from demos.sales.panel import DemoRow

_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
RUNNING_SHOWN = 10
RUNNING_COLUMNS = (
    "public_id",
    "status",
    "prospect_company",
    "requested_at",
    "template__name",
    "template__icon",
)


@dataclass(frozen=True)
class CatalogCard:
    template: DemoTemplate
    typical_time_to_ready: timedelta | None
    form: StartDemoForm | None  # None in the catalog, whose cards are kept (`_card_html`)
    # A warm-pool spare is ready: starting hands it over at once.
    instant: bool = False


CARD_TEMPLATE = "demos/catalog.html#template_card"


def _card_html(request: HttpRequest, cards: list[CatalogCard]) -> list[SafeString]:
    """The catalog's cards, each rendered once per process for what it shows (the template as
    of its last edit, whether a spare is ready, its usual time to ready) and kept
    (`demos.fragments`). Each view fills in a fresh start token per card, and the reader's CSRF
    token."""

    templates = [card.template for card in cards]

    def render(card: CatalogCard) -> str:
        # The charts, which only a card rendered afresh shows: read for every card at the first
        # one not kept (one query), and not at all while every card is.
        if "charts" not in getattr(card.template, "_prefetched_objects_cache", {}):
            prefetch_related_objects(templates, "charts")
        form = StartDemoForm(template=card.template)
        form.fields["start_token"].initial = hole("start_token")
        context = {"card": replace(card, form=form), "csrf_token": CSRF_PLACEHOLDER}
        return render_to_string(CARD_TEMPLATE, context)

    return Kept(request).many(
        [
            (
                (
                    "catalog-card",
                    card.template.pk,
                    card.template.version,
                    card.template.updated_at,
                    card.instant,
                    format_duration(card.typical_time_to_ready),
                ),
                partial(render, card),
                {"start_token": new_start_token()},
            )
            for card in cards
        ]
    )


@login_required
@require_GET
@never_cache  # a page restored from the back/forward cache would reuse spent start tokens
def catalog(request: HttpRequest) -> HttpResponse:
    # Only published templates: a draft that was never published is for template admins, and
    # one taken out after failing start after start waits for them to put it back.
    published = DemoTemplate.objects.filter(
        enabled=True, published_version__isnull=False, flagged_at__isnull=True
    )
    templates = list(published)
    typical = typical_times_to_ready([template.pk for template in templates])
    levels = pool_levels()
    cards = [
        CatalogCard(
            template,
            typical.get(template.pk),
            None,
            instant=levels.get(template.pk, {}).get("ready", 0) > 0,
        )
        for template in templates
    ]
    # The person's open demos at a glance: the few columns the list shows, the latest first;
    # My demos has them all.
    running = (
        Demo.objects.visible()
        .filter(owner=request.user, status__in=OPEN)
        .select_related("template")
        .only(*RUNNING_COLUMNS)
        .order_by("-requested_at", "-pk")[:RUNNING_SHOWN]
    )
    # Said before they start, so reaching the limit is never a surprise: one query.
    slots = slots_for(request.user)
    context = {
        "cards": cards,
        "card_html": _card_html(request, cards),
        "running": running,
        "slots": slots,
    }
    return render(request, "demos/catalog.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@never_cache
def start(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a demo. GET shows the form alone (deep links, and the form again after an error)."""
    template = get_object_or_404(
        DemoTemplate.objects.prefetch_related("charts"),
        slug=slug,
        enabled=True,
        published_version__isnull=False,
    )
    if request.method == "POST":
        form = StartDemoForm(request.POST, template=template)
    else:  # back from the choice at the limit, the details typed before come along
        form = StartDemoForm(initial=_typed_before(request), template=template)
    slots = slots_for(request.user)
    at_limit = slots.full
    status = 200
    if template.flagged_at is not None:
        # A form opened before it was taken out of the catalog, or a bookmark, starts nothing.
        messages.error(request, flagged_message(template))
        status = 409 if form.is_bound else 200
    elif form.is_bound:
        if form.is_valid():
            if at_limit and request.POST.get("when_full") != "queue":
                return _choose_at_limit(request, template, form, slots)
            try:
                demo = start_demo(
                    template=template,
                    owner=request.user,
                    prospect_name=form.cleaned_data["prospect_name"],
                    prospect_company=form.cleaned_data["prospect_company"],
                    lifetime=form.chosen_lifetime,
                    start_token=form.cleaned_data["start_token"],
                )
            except LifecycleError as exc:
                form.add_error(None, str(exc))
                status = 409
            else:
                return redirect("demos:detail", public_id=demo.public_id)
        else:
            status = 400
    elif at_limit:
        return _choose_at_limit(request, template, form, slots)
    typical = typical_times_to_ready([template.pk]).get(template.pk)
    card = CatalogCard(template, typical, form)
    context = {"card": card, "slots": slots}
    return render(request, "demos/start.html", context, status=status)


# What the start form carries through the choice at the limit and back to itself.
_TYPED_FIELDS = ("prospect_company", "prospect_name", "lifetime")
# The actions on a running demo that give its slot back.
_FREES_A_SLOT = ("pause", "delete")


def _typed_before(request: HttpRequest) -> dict[str, str]:
    return {name: request.GET[name] for name in _TYPED_FIELDS if request.GET.get(name)}


def _choose_at_limit(
    request: HttpRequest, template: DemoTemplate, form: StartDemoForm, slots: Slots
) -> HttpResponse:
    """Every slot of the person is taken: before anything starts, let them keep one of their
    demos for later, delete one, or queue the new one, instead of a demo that waits unasked."""
    if form.is_bound:
        token = form.cleaned_data["start_token"]
        made = Demo.objects.filter(owner=request.user, start_token=token).first()
        if made is not None:  # a second click of a start that went through before the limit
            return redirect("demos:detail", public_id=made.public_id)
    typed = {name: form[name].value() for name in _TYPED_FIELDS}
    typed_query = urlencode({name: value for name, value in typed.items() if value})
    back_here = reverse("demos:start", args=[template.slug])
    running = (
        Demo.objects.filter(owner=request.user, status__in=ACTIVE)
        .select_related("template", "owner")
        .order_by("-requested_at", "-pk")
    )
    rows = [DemoRow(demo, _slot_actions(request, demo)) for demo in running]
    # The lifecycle's own rule, in its own words, for whether one more may wait.
    queue_refusal = ""
    try:
        check_user_limit(request.user)
    except CapacityError as exc:
        queue_refusal = str(exc)
    context = {
        "template": template,
        "form": form,
        "slots": slots,
        "rows": rows,
        "queue_refusal": queue_refusal,
        # Without JavaScript an action returns here, with what was typed.
        "next_url": f"{back_here}?{typed_query}" if typed_query else back_here,
    }
    return render(request, "demos/at_limit.html", context, status=409 if queue_refusal else 200)


def _slot_actions(request: HttpRequest, demo: Demo) -> list[OfferedAction]:
    actions = available_actions(request.user, demo, in_list=True)
    return [action for action in actions if action.name in _FREES_A_SLOT]


def _accents_etag(request: HttpRequest) -> str:
    state = DemoTemplate.objects.aggregate(changed=Max("updated_at"), count=Count("pk"))
    return hashlib.sha256(repr(sorted(state.items())).encode()).hexdigest()[:32]


@login_required
@require_GET
@condition(etag_func=_accents_etag)
def template_accents(request: HttpRequest) -> HttpResponse:
    """Each template's accent colour as a stylesheet.

    The Content-Security-Policy forbids inline styles, so the colours an admin picks reach the
    page as a same-origin stylesheet of `.accent-<id>` classes.
    """
    rules = [
        f".accent-{pk} {{ --accent: {colour}; }}"
        for pk, colour in DemoTemplate.objects.values_list("pk", "colour")
        if _HEX_COLOUR.match(colour)
    ]
    response = HttpResponse("\n".join(rules) + "\n", content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "private, no-cache"
    return response
