"""A person's own settings: what prospects see of them, and the time zone times are shown in.

The profile (name, job title, phone, booking link, photo) is what a prospect's landing page
shows of a demo's owner (demos.profiles); the page previews that card as prospects will see it.

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

from demos import images, profiles
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


class ProfileForm(forms.Form):
    """What prospects see of the person, besides the photo."""

    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    job_title = forms.CharField(
        label="Job title", max_length=100, required=False, help_text="Such as Account executive."
    )
    phone = forms.RegexField(
        label="Phone",
        max_length=40,
        required=False,
        regex=r"^\+?[0-9 ().-]{5,39}$",
        error_messages={
            "invalid": "Write a phone number with digits, spaces and an optional leading +."
        },
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
    )
    booking_url = forms.URLField(
        label="Booking link",
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text="A page where prospects book a meeting with you; shown as “Book a meeting”.",
    )

    def clean_booking_url(self) -> str:
        url = self.cleaned_data["booking_url"]
        if url and not url.startswith(("https://", "http://")):
            raise forms.ValidationError("Give a web address starting with https://.")
        return url


class PhotoForm(forms.Form):
    photo = forms.FileField(
        label="Choose a picture",
        required=False,
        help_text=(
            f"PNG, JPEG or WebP, up to {images.MAX_UPLOAD_BYTES // 1024} KB. It is cropped to a "
            f"square of {images.PHOTO_SIZE} pixels and stored without the file's metadata."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
    )
    remove = forms.BooleanField(required=False)

    def clean_photo(self) -> images.CheckedImage | None:
        upload = self.cleaned_data.get("photo")
        return images.checked_photo(upload) if upload else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors and not cleaned.get("photo") and not cleaned.get("remove"):
            raise forms.ValidationError("Choose a picture to upload first.")
        return cleaned


def _profile_initial(user: Any) -> dict[str, str]:
    profile = profiles.profile_of(user)
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "job_title": profile.job_title if profile else "",
        "phone": profile.phone if profile else "",
        "booking_url": profile.booking_url if profile else "",
    }


def _page(request: HttpRequest, status: int = 200, **forms_given: forms.Form) -> HttpResponse:
    zone = time_zone_of(request.user)
    context = {
        "form": forms_given.get("form") or TimeZoneForm(initial={"time_zone": zone}),
        "profile_form": forms_given.get("profile_form")
        or ProfileForm(initial=_profile_initial(request.user)),
        "photo_form": forms_given.get("photo_form") or PhotoForm(),
        "card": profiles.contact_card(request.user),
        "time_zone": zone,
    }
    return TemplateResponse(request, "demos/account.html", context, status=status)


def _save_profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST)
    if not form.is_valid():
        return _page(request, profile_form=form)
    profiles.save_profile(user=request.user, **form.cleaned_data)
    messages.success(request, "Saved. Prospects see these details on their demo pages.")
    return redirect("demos:account")


def _save_photo(request: HttpRequest) -> HttpResponse:
    form = PhotoForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, photo_form=form)
    if form.cleaned_data.get("photo"):
        profiles.set_photo(user=request.user, image=form.cleaned_data["photo"])
        messages.success(request, "Saved. Prospects now see this photo.")
    else:
        profiles.set_photo(user=request.user, image=None)
        messages.success(request, "Photo removed. Prospects see your initials instead.")
    return redirect("demos:account")


def _save_time_zone(request: HttpRequest) -> HttpResponse:
    form = TimeZoneForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form)
    chosen = form.cleaned_data["time_zone"]
    set_time_zone(user=request.user, time_zone=chosen)
    if chosen:
        messages.success(request, f"Saved. Times now show in {zone_label(chosen)} time.")
    else:
        messages.success(request, "Saved. Times now show in your browser's time zone.")
    return redirect("demos:account")


@login_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """The person's settings: their profile as prospects see it, and their time zone."""
    if request.method != "POST":
        return _page(request)
    section = request.POST.get("section")
    if section == "profile":
        return _save_profile(request)
    if section == "photo":
        return _save_photo(request)
    return _save_time_zone(request)
