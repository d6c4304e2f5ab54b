"""The catalog (the landing page after login) and starting a demo from it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import condition, require_GET, require_http_methods

from demos.engine.lifecycle import start_demo
from demos.engine.pools import pool_levels
from demos.engine.speeds import typical_times_to_ready
from demos.errors import LifecycleError
from demos.guards import login_required
from demos.models import OPEN, Demo, DemoTemplate
from demos.sales.forms import StartDemoForm

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
    form: StartDemoForm
    # A warm-pool spare is ready: starting hands it over at once.
    instant: bool = False


@login_required
@require_GET
@never_cache  # a page restored from the back/forward cache would reuse spent start tokens
def catalog(request: HttpRequest) -> HttpResponse:
    # Only published templates: a draft that was never published is for template admins.
    published = DemoTemplate.objects.filter(enabled=True, published_version__isnull=False)
    templates = list(published.prefetch_related("charts"))
    typical = typical_times_to_ready([template.pk for template in templates])
    levels = pool_levels()
    cards = [
        CatalogCard(
            template,
            typical.get(template.pk),
            StartDemoForm(template=template),
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
    return render(request, "demos/catalog.html", {"cards": cards, "running": running})


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
    form = StartDemoForm(request.POST if request.method == "POST" else None, template=template)
    status = 200
    if form.is_bound:
        if form.is_valid():
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
    typical = typical_times_to_ready([template.pk]).get(template.pk)
    card = CatalogCard(template, typical, form)
    return render(request, "demos/start.html", {"card": card}, status=status)


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
