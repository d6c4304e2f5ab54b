"""Passwords: a forgotten one reset by email, and a known one changed while signed in.

Django's own views, with the portal's rules around them:

- the answer to "send me a reset link" is the same whether the address belongs to anyone, so
  the page tells nobody who has an account;
- requests are limited per address (so nobody is flooded with emails) and per client (so nobody
  probes many addresses), in Redis; with Redis down they go through unlimited, with a log line;
- the email says when, from which network and browser the reset was asked for, and what to do
  if it was not the reader;
- setting a new password lifts a login lockout (django-axes) for that person, as an admin
  unlocking them would.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

from axes.utils import reset as reset_login_failures
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse_lazy
from django.utils import timezone

from demos.sharing.agents import describe
from demos.sharing.links import truncate_address
from portal.clients import client_address
from portal.counters import count_one

log = logging.getLogger(__name__)

# Enough to ask again after a typo or a lost email; too few to flood anyone.
RESETS_PER_ADDRESS = 3
# One office behind one address may have several people who forgot theirs.
RESETS_PER_CLIENT = 10
RESET_WINDOW = timedelta(hours=1)


def _take_turn(key: str, limit: int) -> bool:
    """Count one request under `key`; False once the window's `limit` is used up. Fails open."""
    count = count_one(key, RESET_WINDOW)
    if count is None:
        log.warning("Cannot count password reset requests: Redis is unavailable, not limiting")
        return True
    return count <= limit


def address_key(email: str) -> str:
    # Hashed: the cache holds no email addresses, only whether one was asked for lately.
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"password-reset:address:{digest}"


def client_key(address: str) -> str:
    return f"password-reset:client:{truncate_address(address) or 'unknown'}"


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link by email. Unknown addresses get the same answer as known ones."""

    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _take_turn(client_key(client_address(request)), RESETS_PER_CLIENT):
            log.info("Password reset refused: too many requests from one client")
            form = self.get_form()
            form.is_valid()
            form.add_error(
                None,
                "Too many password reset requests came from your network in the last hour. "
                "Please try again later, or ask a portal admin.",
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        email = form.cleaned_data["email"]
        if not _take_turn(address_key(email), RESETS_PER_ADDRESS):
            # The same page as a sent email, so the limit says nothing about the address.
            log.info("Password reset email not sent: too many requests for one address")
            return HttpResponseRedirect(self.get_success_url())
        request = self.request
        form.save(
            use_https=request.is_secure(),
            token_generator=self.token_generator,
            from_email=self.from_email,
            email_template_name=self.email_template_name,
            subject_template_name=self.subject_template_name,
            request=request,
            html_email_template_name=self.html_email_template_name,
            extra_email_context={
                # Links in the email lead to the portal's own address, never to whatever host
                # the request named.
                "site_url": settings.SITE_URL,
                "site_name": "the demo portal",
                "asked_at": timezone.now(),
                "asked_from": describe(request.headers.get("User-Agent", "")),
                "asked_network": truncate_address(client_address(request)) or "unknown",
                "valid_for": _valid_for(),
            },
        )
        return HttpResponseRedirect(self.get_success_url())


def _valid_for() -> str:
    minutes = settings.PASSWORD_RESET_TIMEOUT // 60
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset_done.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(valid_for=_valid_for(), **kwargs)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Choose the new password from the emailed link; it also lifts a login lockout."""

    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        username = form.user.get_username()
        # Whoever holds the emailed link has proved who they are: lift the pause on logging in
        # that too many wrong passwords started.
        lifted = reset_login_failures(username=username)
        if lifted:
            log.info("Lifted a login lockout after a password reset (%s records)", lifted)
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "registration/password_reset_complete.html"


class PasswordChangeView(auth_views.PasswordChangeView):
    """For people who are signed in and know their password (Django keeps them signed in)."""

    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("password_change_done")


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "registration/password_change_done.html"
