"""Decorators every salesperson-facing view wears."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.views import redirect_to_login
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
