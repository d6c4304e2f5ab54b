"""The baselines the status fragment is compared with: Django doing (almost) nothing."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET


@require_GET
def trivial(request: HttpRequest) -> HttpResponse:
    """No database query at all: the cost of the framework, middleware and the server."""
    return HttpResponse("ok", content_type="text/plain")


@login_required
@require_GET
def trivial_signed_in(request: HttpRequest) -> HttpResponse:
    """The same, behind the login every salesperson page has (it loads session and user), so
    the comparison with the status fragment isolates what the fragment itself costs."""
    return HttpResponse("ok", content_type="text/plain")
