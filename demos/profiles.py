"""The salesperson as a prospect sees them: name, photo, title and ways to get in touch.

A prospect has no account, so the photo is public, but only at a signed URL: it names the
person and the photo's version, and the signature (keyed by SECRET_KEY) makes it unguessable,
so nobody can walk through everyone's photos by counting. A new photo makes a new URL, so
browsers may keep each one for a year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core import signing
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from demos.branding import IMMUTABLE
from demos.images import CheckedImage
from demos.models import Profile

_SIGNER = signing.Signer(salt="demos.profiles.photo")
# What a phone number may hold besides digits; a `tel:` link keeps only "+" and the digits.
_NOT_DIALLED = re.compile(r"[^\d+]")


@dataclass(frozen=True)
class ContactCard:
    """What the prospect's pages show of a demo's owner."""

    name: str
    initials: str
    job_title: str
    email: str
    phone: str
    booking_url: str
    photo_url: str | None

    @property
    def phone_link(self) -> str:
        return "tel:" + _NOT_DIALLED.sub("", self.phone) if self.phone else ""


def profile_of(user: User) -> Profile | None:
    """The user's profile if they have one (no query when it was selected with the user)."""
    try:
        return user.profile  # type: ignore[attr-defined]
    except Profile.DoesNotExist:
        return None


def initials(name: str) -> str:
    words = [word for word in re.split(r"[\s._@-]+", name) if word]
    return "".join(word[0] for word in words[:2]).upper() or "?"


def photo_url(profile: Profile | None) -> str | None:
    if profile is None or not profile.photo_type or profile.photo_updated_at is None:
        return None
    version = int(profile.photo_updated_at.timestamp() * 1000)
    signed = _SIGNER.sign(f"{profile.user_id}.{version}")
    return reverse("demos:profile_photo", args=[signed])


def contact_card(user: User) -> ContactCard:
    profile = profile_of(user)
    name = user.get_full_name() or user.get_username()
    return ContactCard(
        name=name,
        initials=initials(name),
        job_title=profile.job_title if profile else "",
        email=user.email,
        phone=profile.phone if profile else "",
        booking_url=profile.booking_url if profile else "",
        photo_url=photo_url(profile),
    )


def save_profile(
    *, user: User, first_name: str, last_name: str, job_title: str, phone: str, booking_url: str
) -> None:
    """What prospects see of `user`, except the photo (`set_photo`)."""
    with transaction.atomic():
        user.first_name, user.last_name = first_name.strip(), last_name.strip()
        user.save(update_fields=["first_name", "last_name"])
        Profile.objects.update_or_create(
            user=user,
            defaults={
                "job_title": job_title.strip(),
                "phone": phone.strip(),
                "booking_url": booking_url.strip(),
            },
        )


def set_photo(*, user: User, image: CheckedImage | None) -> None:
    """A new photo for `user` (checked by demos.images), or none with `image=None`."""
    defaults: dict[str, Any] = (
        {"photo": image.data, "photo_type": image.content_type, "photo_updated_at": timezone.now()}
        if image is not None
        else {"photo": b"", "photo_type": "", "photo_updated_at": None}
    )
    Profile.objects.update_or_create(user=user, defaults=defaults)


@require_GET
def photo(request: HttpRequest, signed: str) -> HttpResponse:
    """A salesperson's photo at its signed URL (public: prospects have no account)."""
    try:
        user_id, version = _SIGNER.unsign(signed).split(".")
    except (signing.BadSignature, ValueError):
        raise Http404("No such photo.") from None
    profile = Profile.objects.filter(user_id=user_id).exclude(photo_type="").first()
    if profile is None or profile.photo_updated_at is None:
        raise Http404("No such photo.")
    if str(int(profile.photo_updated_at.timestamp() * 1000)) != version:
        # The photo this URL named was replaced or removed since.
        raise Http404("This photo has been replaced.")
    response = HttpResponse(bytes(profile.photo), content_type=profile.photo_type)
    response["Cache-Control"] = IMMUTABLE
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = 'inline; filename="photo.png"'
    return response
