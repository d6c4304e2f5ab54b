"""Decorators views wear: signed in (htmx-aware), and a role where a section needs one."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_htmx.http import HttpResponseClientRedirect

View = Callable[..., HttpResponse]


def login_required(view: View) -> View:
    """Django's `login_required`, aware of htmx.

    A fragment request (a status poll, an in-place action) whose session has ended must not get
    the login form swapped into the middle of a page: it gets a full-page redirect to the login
    page instead, which comes back to the page the person was on.
    """
    guarded = django_login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.htmx and not request.user.is_authenticated:
            back_to = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(back_to).url)
        return guarded(request, *args, **kwargs)

    return wrapper


def role_required(allowed: Callable[[Any], bool], refusal: str) -> Callable[[View], View]:
    """Signed in (as `login_required`), and `allowed(user)`; anyone else signed in gets 403
    with `refusal`, the one check a whole section of pages (the fleet, the studio) wears."""

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not allowed(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
