"""Emails to salespeople. Plain text, short, with one link to act on."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import EmailMessage, send_mail, send_mass_mail
from django.db.models import Q
from django.urls import reverse
from django.utils import dateformat, timezone
from redis.exceptions import RedisError

from demos import roles
from demos.durations import format_duration
from demos.models import Demo, ShareLink
from demos.sales.account import time_zone_of

log = logging.getLogger(__name__)

# At most one email per template to its admins in this time: a broken template failing every
# demo must not flood them.
ADMIN_FAILURE_COOLDOWN = timedelta(minutes=10)


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


def time_for(person: Any | None, when: datetime) -> str:
    """A moment as an email's reader reads it: "3 Dec, 14:30 CET" in the zone they chose on
    their account page; in UTC, said so, for anyone who chose none and for prospects (no
    account), as an email cannot ask the reader's browser."""
    name = time_zone_of(person) if person is not None else ""
    zone = ZoneInfo(name) if name else UTC
    return dateformat.format(timezone.localtime(when, zone), "j M, H:i T")


def expiry_warning(demo: Demo, left: timedelta) -> bool:
    # In whole minutes: the sweep's own delay and the time to read the email make seconds noise.
    ends_in = format_duration(max(left // timedelta(minutes=1), 1) * timedelta(minutes=1))
    at = f", at {time_for(demo.owner, demo.expires_at)}" if demo.expires_at else ""
    return _send(
        demo,
        f"Your {demo.template.name} demo ends in {ends_in}",
        f"Your {demo.template.name} demo for {_who(demo)} ends in about {ends_in}{at}.\n\n"
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


def share_link_to_prospect(link: ShareLink, *, url: str, to: str, until: str) -> bool:
    """A share link, emailed to its prospect in the demo owner's name ("Sam Seller via Demo
    portal"), from the portal's own address so it passes mail checks; replies reach the owner.
    `until` says how long the link works ("until 3 Dec, 14:30 UTC")."""
    demo = link.demo
    owner = demo.owner
    name = (owner.get_full_name() or owner.get_username()) if owner else "Your contact"
    portal_name, portal_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    sender = Address(
        display_name=f"{name} via {portal_name or 'Demo portal'}", addr_spec=portal_address
    )
    lines = [
        "Hello,",
        "",
        f"{name} has set up a {demo.template.name} demo for you. Open it here, no account needed:",
        "",
        url,
        "",
    ]
    if link.note:
        lines += [f"A note from {name}:", link.note, ""]
    lines += [f"The link works {until}.", "", f"Reply to this email to reach {name}."]
    message = EmailMessage(
        subject=f"{name} shared a {demo.template.name} demo with you",
        body="\n".join(lines) + "\n",
        from_email=str(sender),
        to=[to],
        reply_to=[owner.email] if owner and owner.email else [],
    )
    try:
        message.send()
    except OSError:
        # The address, not the message: the body holds the link, which is never logged.
        log.exception("Could not email a share link to %s", to)
        return False
    return True


def studio_url(demo: Demo) -> str:
    return settings.SITE_URL + reverse("demos:studio_template", args=[demo.template.slug])


def demo_failed(demo: Demo, *, template_flagged: bool = False) -> None:
    """Tell who needs to know that `demo` failed.

    The owner gets plain words and the demo's link; the template's admins the technical cause
    and the template's studio page. A test launch concerns only the admin who launched it, and
    a warm-pool spare (no owner) only the admins.
    """
    if demo.is_test_launch:
        _send(demo, _admin_subject(demo), _admin_body(demo, template_flagged=False))
        return
    if demo.owner is not None:
        _send(
            demo,
            f"Your {demo.template.name} demo is broken",
            f"Your {demo.template.name} demo for {_who(demo)} could not go on: it is broken "
            "right now, and the template's admins have been told.\n\n"
            f"Try it again, or delete it, here:\n{demo_url(demo)}\n",
        )
    # A template taken out of the catalog is news admins must get, cooldown or not; it happens
    # once until they put it back.
    if template_flagged or _admins_not_told_recently(demo.template_id):
        _send_to_admins(_admin_subject(demo), _admin_body(demo, template_flagged=template_flagged))


def template_admin_emails() -> list[str]:
    """Who is told about failures: the template admins (and superusers) with an address."""
    admins = get_user_model().objects.filter(
        Q(groups__name=roles.TEMPLATE_ADMINS) | Q(is_superuser=True), is_active=True
    )
    return sorted(set(admins.exclude(email="").values_list("email", flat=True)))


def _admins_not_told_recently(template_id: int) -> bool:
    try:
        return bool(
            cache.add(
                f"failures:admins-told:{template_id}",
                1,
                timeout=int(ADMIN_FAILURE_COOLDOWN.total_seconds()),
            )
        )
    except RedisError:
        return True  # without Redis there is no cooldown: told twice rather than not at all


def _admin_subject(demo: Demo) -> str:
    return f"A {demo.template.name} demo failed"


def _admin_body(demo: Demo, *, template_flagged: bool) -> str:
    if demo.is_test_launch:
        whose = "Your test launch"
    elif demo.is_spare:
        whose = "A warm-pool spare"
    elif demo.owner is not None:
        whose = f"The demo of {demo.owner.get_full_name() or demo.owner.get_username()}"
    else:
        whose = "A demo"
    lines = [
        f"{whose} ({demo.template.name}, cluster {demo.cluster_name}) failed:",
        "",
        demo.error_message or "No cause was recorded.",
    ]
    if demo.error_detail:
        lines += ["", "Detail (the end of it):", demo.error_detail[-1500:]]
    if template_flagged:
        lines += [
            "",
            f"The template failed {settings.DEMO_TEMPLATE_FLAG_AFTER} starts in a row, so it is "
            "taken out of the catalog. Fix it, then put it back in the catalog from its studio "
            "page.",
        ]
    lines += ["", f"The template in the studio:\n{studio_url(demo)}"]
    if demo.is_test_launch:
        launch = reverse("demos:studio_launch", args=[demo.template.slug, demo.public_id])
        lines += ["", f"The test launch:\n{settings.SITE_URL}{launch}"]
    elif not demo.is_spare:
        lines += ["", f"The demo and its event log:\n{demo_url(demo)}"]
    return "\n".join(lines) + "\n"


def _send_to_admins(subject: str, body: str) -> int:
    recipients = template_admin_emails()
    if not recipients:
        log.warning("Nobody to tell about “%s”: no template admin has an email address.", subject)
        return 0
    try:
        # One message each, so admins do not see one another's addresses.
        return send_mass_mail([(subject, body, None, [email]) for email in recipients])
    except OSError:
        log.exception("Could not send “%s” to the template admins", subject)
        return 0


# --- Team work: who works on a demo ---------------------------------------------------------------


def _send_to_person(person: Any, subject: str, body: str) -> bool:
    """One email to someone who is not (or not yet) the demo's owner."""
    if not person.email:
        return False
    try:
        send_mail(subject, body, None, [person.email])
    except OSError:
        log.exception("Could not send “%s” to %s", subject, person.email)
        return False
    return True


def _name(person: Any) -> str:
    if person is None:
        return "A manager"
    return person.get_full_name() or person.get_username()


def colleague_added(demo: Demo, *, colleague: Any, by: Any) -> bool:
    """`colleague` was added to `demo`: they see it in My demos and act on it as the owner does."""
    return _send_to_person(
        colleague,
        f"{_name(by)} added you to a {demo.template.name} demo",
        f"{_name(by)} added you as a colleague on the {demo.template.name} demo for "
        f"{_who(demo)}, owned by {_name(demo.owner)}.\n\n"
        "You see it in My demos and can open, extend, pause and share it as its owner does.\n\n"
        f"The demo:\n{demo_url(demo)}\n",
    )


def demo_handed_over(demo: Demo, *, new_owner: Any, by: Any) -> bool:
    """`demo` is now `new_owner`'s: its slot counts against them, and its links keep working."""
    return _send_to_person(
        new_owner,
        f"{_name(by)} handed a {demo.template.name} demo over to you",
        f"{_name(by)} handed the {demo.template.name} demo for {_who(demo)} over to you: it is "
        "yours now and counts as one of your demo slots. The prospect's links keep working.\n\n"
        f"The demo:\n{demo_url(demo)}\n",
    )
