"""How the portal presents itself to prospects: the company's name, logo and accent colour.

One `Branding` row, edited by superusers in the Django admin (demos/admin.py), read through
`current_branding()`: a page costs no query for it once the cache is warm, and with no row the
portal's defaults apply. The logo and the colours reach pages from URLs that carry the row's
version, so browsers may keep them for a year and still see a change at once: a change makes
new URLs. The colours come as a stylesheet because the Content-Security-Policy forbids inline
styles.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from django import forms
from django.core.cache import cache
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

from demos import images
from demos.models import Branding

CACHE_KEY = "branding:1"
CACHE_SECONDS = 24 * 3600  # saving drops it at once; this only bounds a missed drop
# A versioned URL never changes what it serves, so browsers may keep it.
IMMUTABLE = "public, max-age=31536000, immutable"
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_DEFAULTS = Branding()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortalBranding:
    """What pages need of the branding; the logo's bytes stay in the database."""

    name: str
    accent_colour: str
    website: str
    has_logo: bool
    version: str

    @property
    def logo_url(self) -> str | None:
        if not self.has_logo:
            return None
        return reverse("demos:brand_logo", args=[self.version])

    @property
    def stylesheet_url(self) -> str:
        return reverse("demos:brand_stylesheet", args=[self.version])


def _version(row: Branding | None) -> str:
    if row is None or row.updated_at is None:
        return "default"
    return hashlib.sha256(row.updated_at.isoformat().encode()).hexdigest()[:16]


def _from_row(row: Branding | None) -> PortalBranding:
    source = row or _DEFAULTS
    colour = source.accent_colour if HEX_COLOUR.match(source.accent_colour) else ""
    return PortalBranding(
        name=source.name or _DEFAULTS.name,
        accent_colour=(colour or _DEFAULTS.accent_colour).lower(),
        website=source.website,
        has_logo=bool(row is not None and row.logo_type),
        version=_version(row),
    )


def _read() -> PortalBranding:
    row = Branding.objects.defer("logo").order_by("pk").first()
    return _from_row(row)


def current_branding() -> PortalBranding:
    """The branding pages show: cached; the defaults when no admin has set it."""
    try:
        cached = cache.get(CACHE_KEY)
    except RedisError:
        return _read()  # without Redis a page still shows the right name, at one query
    if isinstance(cached, PortalBranding):
        return cached
    branding = _read()
    try:
        cache.set(CACHE_KEY, branding, timeout=CACHE_SECONDS)
    except RedisError:
        log.warning("Cannot cache the branding: Redis is unavailable")
    return branding


def forget_branding() -> None:
    """Drop the cached branding, now and after the surrounding transaction commits (so a page
    that read the old row in between cannot put it back)."""

    def drop() -> None:
        try:
            cache.delete(CACHE_KEY)
        except RedisError:
            log.warning("Cannot drop the cached branding: Redis is unavailable")

    drop()
    transaction.on_commit(drop)


def accent_rules(colour: str) -> str:
    """The stylesheet that gives prospect pages (`body.branded`) the accent colour."""
    if not HEX_COLOUR.match(colour):
        colour = _DEFAULTS.accent_colour
    return (
        ".branded {\n"
        f"  --primary: {colour};\n"
        f"  --primary-hover: color-mix(in srgb, {colour} 80%, #000000);\n"
        f"  --primary-soft: color-mix(in srgb, {colour} 12%, var(--surface));\n"
        f"  --on-primary: {_readable_on(colour)};\n"
        f"  --accent: {colour};\n"
        "}\n"
    )


def _readable_on(colour: str) -> str:
    """Black or white, whichever reads better on `colour` (WCAG relative luminance)."""

    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    # Contrast with white is 1.05 / (L + 0.05), with black (L + 0.05) / 0.05: equal at L ≈ 0.179.
    return "#ffffff" if luminance <= 0.179 else "#111111"


def _versioned(response: HttpResponse, version: str, wanted: str) -> HttpResponse:
    """Long-lived when the URL's version is the current one; an old URL (a page from before a
    change) still gets the current content, but browsers must not keep it."""
    response["Cache-Control"] = IMMUTABLE if version == wanted else "public, no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def logo(request: HttpRequest, version: str) -> HttpResponse:
    """The portal's logo (public: prospects have no account)."""
    row = Branding.objects.order_by("pk").first()
    if row is None or not row.logo_type:
        raise Http404("No logo has been set.")
    response = HttpResponse(bytes(row.logo), content_type=row.logo_type)
    response["Content-Disposition"] = 'inline; filename="logo.png"'
    return _versioned(response, _version(row), version)


@require_GET
def stylesheet(request: HttpRequest, version: str) -> HttpResponse:
    """The accent colour as a stylesheet (public, like the prospect pages that use it)."""
    branding = current_branding()
    response = HttpResponse(
        accent_rules(branding.accent_colour), content_type="text/css; charset=utf-8"
    )
    return _versioned(response, branding.version, version)


class BrandingForm(forms.ModelForm):
    """The admin's form: the logo is uploaded, checked and re-encoded (demos.images)."""

    logo_upload = forms.FileField(
        label="Logo",
        required=False,
        help_text=(
            f"PNG, JPEG or WebP, up to {images.MAX_UPLOAD_BYTES // 1024} KB. It is shown at most "
            f"{images.LOGO_MAX_HEIGHT} pixels high, and stored as PNG without the file's metadata."
        ),
    )
    remove_logo = forms.BooleanField(label="Remove the logo", required=False)

    class Meta:
        model = Branding
        fields = ["name", "accent_colour", "website"]
        widgets = {"accent_colour": forms.TextInput(attrs={"type": "color"})}

    def clean_accent_colour(self) -> str:
        colour = self.cleaned_data["accent_colour"].strip()
        if not HEX_COLOUR.match(colour):
            raise forms.ValidationError(
                f"“{colour}” is not a colour: write it as # and six hex digits, such as #4f46e5."
            )
        return colour.lower()

    def clean_logo_upload(self) -> images.CheckedImage | None:
        upload = self.cleaned_data.get("logo_upload")
        return images.checked_logo(upload) if upload else None

    def save(self, commit: bool = True) -> Branding:
        branding = super().save(commit=False)
        checked = self.cleaned_data.get("logo_upload")
        if checked is not None:
            branding.logo, branding.logo_type = checked.data, checked.content_type
        elif self.cleaned_data.get("remove_logo"):
            branding.logo, branding.logo_type = b"", ""
        if commit:
            branding.save()
        return branding
