"""A person's own settings: the time zone the portal shows times in.

Pages show every time in the zone in use (static/js/portal.js rewrites the server's UTC text): the
person's own zone when they chose one here, else their browser's. The zone is read for full pages
only (base.html's `data-time-zone`, the share form), never for polls, and kept in the sessions'
cache next to the cached user (portal/user_cache.py), so a page costs no query for it once warm.
An entry lives at most `LONGEST_ENTRY` seconds there; saving here replaces it at once.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.cache import BaseCache, caches
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from demos.guards import login_required
from demos.models import Profile

BROWSER_ZONE = ""  # stored and shown as "Use my browser's zone"


@cache
def zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_zone(name: str) -> bool:
    return name in zone_names()


def zone_label(name: str) -> str:
    """How a zone's name reads in a sentence: "America/New York"."""
    return name.replace("_", " ")


@cache
def zone_choices() -> list[tuple[str, Any]]:
    """The zones grouped by region ("Europe": Berlin, Paris…), as a select shows them."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(zone_names()):
        region, _, place = name.partition("/")
        group = region if place else "Other"
        groups.setdefault(group, []).append((name, zone_label(place or name)))
    return [(BROWSER_ZONE, "Use my browser's zone"), *groups.items()]


def _cache() -> BaseCache:
    return caches[settings.SESSION_CACHE_ALIAS]


def _key(user_id: Any) -> str:
    return f"time-zone:1:{user_id}"


def time_zone_of(user: Any) -> str:
    """The zone `user` chose (an IANA name), or "" for their browser's; one query on a miss."""
    if not getattr(user, "is_authenticated", False):
        return BROWSER_ZONE
    cached = _cache().get(_key(user.pk))
    if isinstance(cached, str):
        return cached
    found = Profile.objects.filter(user_id=user.pk).values_list("time_zone", flat=True).first()
    # A zone that left the zone database since it was chosen counts as no choice.
    zone = found if found and is_zone(found) else BROWSER_ZONE
    _cache().set(_key(user.pk), zone)
    return zone


def set_time_zone(*, user: Any, time_zone: str) -> None:
    """Remember `user`'s zone ("" for their browser's)."""
    if time_zone and not is_zone(time_zone):
        raise ValueError(f"Unknown time zone: {time_zone}")
    Profile.objects.update_or_create(user=user, defaults={"time_zone": time_zone})
    # Dropped now and after the commit, so a page reading the old row in between cannot keep it.
    _cache().delete(_key(user.pk))
    transaction.on_commit(lambda: _cache().delete(_key(user.pk)))


class TimeZoneForm(forms.Form):
    time_zone = forms.ChoiceField(
        required=False,
        label="Time zone",
        help_text="Times in the portal are shown in this zone, with its short name (such as CET).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["time_zone"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = zone_choices()
        field.error_messages["invalid_choice"] = (
            "Choose a zone from the list, or your browser's zone."
        )


@login_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """The person's settings: for now, the time zone times are shown in."""
    zone = time_zone_of(request.user)
    if request.method != "POST":
        form = TimeZoneForm(initial={"time_zone": zone})
        return TemplateResponse(request, "demos/account.html", {"form": form, "time_zone": zone})
    form = TimeZoneForm(request.POST)
    if form.is_valid():
        chosen = form.cleaned_data["time_zone"]
        set_time_zone(user=request.user, time_zone=chosen)
        if chosen:
            messages.success(request, f"Saved. Times now show in {zone_label(chosen)} time.")
        else:
            messages.success(request, "Saved. Times now show in your browser's time zone.")
        return redirect("demos:account")
    return TemplateResponse(request, "demos/account.html", {"form": form, "time_zone": zone})
