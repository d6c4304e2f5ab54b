"""Every address on a demo host (`<cluster>.<DEMO_BASE_DOMAIN>`) that reaches the portal.

The ingress routes `/.portal-gate/` here without asking the gate; everything else is the demo's
app, which the ingress serves only after the gate's check (here, the simulated app).
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import re_path, set_urlconf

from demos.gate import views


def portal_urls(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolved here, but links and emails the view makes name the portal's own URLs."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        set_urlconf(None)
        return view(request, *args, **kwargs)

    return wrapper


urlpatterns = [
    re_path(r"^\.portal-gate/enter/?$", portal_urls(views.enter), name="gate_enter"),
    # Envoy's external auth appends the original path (demos/backends/vcluster/entry.py).
    re_path(
        r"^\.portal-gate/check(?P<original_path>/.*)?$",
        portal_urls(views.check),
        name="gate_host_check",
    ),
    re_path(r"^(?P<path>.*)$", portal_urls(views.demo_app), name="demo_app"),
]
