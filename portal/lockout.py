"""The page a person sees when django-axes refuses a log-in (settings.AXES_LOCKOUT_CALLABLE)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """429 with the portal's own page: how long the pause lasts, and who can lift it."""
    context = {
        "failure_limit": settings.LOGIN_FAILURE_LIMIT,
        "cooloff_minutes": settings.LOGIN_COOLOFF_MINUTES,
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    add_never_cache_headers(response)
    return response
