from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, include, path
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from demos.sales import password
from portal import health
from portal.redaction import PROSPECT_PREFIX


def superusers_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """django-rq lets any staff member empty queues and delete jobs; here only superusers may.

    Anonymous visitors still meet django-rq's own checks (the admin login, or the statistics'
    bearer token); anyone signed in who is not a superuser is refused outright.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not user.is_superuser:
            raise PermissionDenied("The job queues are for superusers only.")
        return view(request, *args, **kwargs)

    return wrapper


def _job_queue_urls() -> list[URLPattern]:
    api = [
        URLPattern(p.pattern, superusers_only(p.callback), p.default_args, p.name)
        for p in get_api_urlpatterns()
    ]
    return api + get_admin_urlpatterns(view_wrapper=superusers_only)


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Passwords: reset by email when forgotten, changed when signed in (demos/sales/password.py).
    path("password/reset/", password.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        password.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        password.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/done/",
        password.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("password/change/", password.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/change/done/",
        password.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path(PROSPECT_PREFIX, include("demos.sharing.prospect_urls")),
    path("gate/", include("demos.gate.urls")),
    path("admin/rq/", include((_job_queue_urls(), "django_rq"))),
    path("admin/", admin.site.urls),
    path("", include("demos.urls")),
]
