"""Emails to salespeople. Plain text, short, with one link to act on."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from demos.durations import format_duration
from demos.models import Demo, ShareLink

log = logging.getLogger(__name__)


def demo_url(demo: Demo) -> str:
    return settings.SITE_URL + reverse("demos:detail", args=[demo.public_id])


def _send(demo: Demo, subject: str, body: str) -> bool:
    if demo.owner is None or not demo.owner.email:
        return False
    try:
        send_mail(subject, body, None, [demo.owner.email])
    except OSError:
        # Mail trouble must not break the sweep or a prospect's page; the event log still says
        # what happened.
        log.exception("Could not send “%s” to %s", subject, demo.owner.email)
        return False
    return True


def _who(demo: Demo) -> str:
    return demo.prospect_company or demo.prospect_name or "your prospect"


def expiry_warning(demo: Demo, left: timedelta) -> bool:
    # In whole minutes: the sweep's own delay and the time to read the email make seconds noise.
    ends_in = format_duration(max(left // timedelta(minutes=1), 1) * timedelta(minutes=1))
    return _send(
        demo,
        f"Your {demo.template.name} demo ends in {ends_in}",
        f"Your {demo.template.name} demo for {_who(demo)} ends in about {ends_in}.\n\n"
        f"Extend it or keep it for later here:\n{demo_url(demo)}\n",
    )


def first_open(link: ShareLink) -> bool:
    demo = link.demo
    return _send(
        demo,
        f"{link.recipient} opened your {demo.template.name} demo",
        f"{link.recipient} just opened the link to your {demo.template.name} demo for "
        f"{_who(demo)}, for the first time.\n\nSee their visits and the demo here:\n"
        f"{demo_url(demo)}\n",
    )


def first_use(link: ShareLink) -> bool:
    """The prospect went through the gate into the live app for the first time: a good moment
    to call. The gate calls this once per link (ShareLink.first_entered_at)."""
    demo = link.demo
    return _send(
        demo,
        f"{link.recipient} is using your {demo.template.name} demo now",
        f"{link.recipient} has just started using your {demo.template.name} demo for "
        f"{_who(demo)}, for the first time.\n\nSee how they use it and the demo here:\n"
        f"{demo_url(demo)}\n",
    )


def more_time_requested(link: ShareLink) -> bool:
    demo = link.demo
    return _send(
        demo,
        f"{link.recipient} asks for more time with the {demo.template.name} demo",
        f"{link.recipient} would like more time with your {demo.template.name} demo for "
        f"{_who(demo)}. Nothing has been changed: extend it, if you agree, here:\n"
        f"{demo_url(demo)}\n",
    )
