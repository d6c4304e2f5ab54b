"""Prospect access: share links with hashed tokens, visits, and requests for more time.

A link's token is 256 bits derived with a key from the portal's SECRET_KEY, from the link's id
and a random salt (`token_of`), so its owner can copy it again; only its SHA-256 is stored, and
lookups go by that hash. Neither the database nor the key alone yields a token. A link stops
working when it is revoked, when its own expiry passes, or when the demo ends; callers cannot
tell which (see `resolve`).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from redis.exceptions import RedisError

from demos.engine import notifications
from demos.engine.lifecycle import Actor, record_event
from demos.errors import LifecycleError
from demos.gate import state as gate_state
from demos.models import RESTING, Demo, ShareLink, ShareLinkVisit, Status
from portal.counters import count_one
from portal.sealing import SealingError, unseal

# Demos a prospect can still reach (or is told are on their way back).
_SHAREABLE = {
    Status.QUEUED,
    Status.REQUESTED,
    Status.PROVISIONING,
    Status.INSTALLING,
    Status.READY,
    Status.PAUSING,
    Status.PAUSED,
    Status.RESUMING,
    *RESTING,
}
MORE_TIME_COOLDOWN = timedelta(minutes=10)
# Emails of one link to its prospect: enough to resend after a typo, too few to pester anyone.
EMAILS_PER_LINK = 3
EMAIL_WINDOW = timedelta(hours=1)
# The HMAC's own key salt, so this key is used for nothing else derived from SECRET_KEY.
_HMAC_KEY_SALT = "demos.sharing.links.token"
log = logging.getLogger(__name__)


def utc_text(when: datetime) -> str:
    """A moment for a prospect's email, e.g. "3 Dec, 14:30 UTC": a prospect has no account, so
    no zone of their own (pages show it in local time)."""
    return notifications.time_for(None, when)


def is_shareable(demo: Demo) -> bool:
    return demo.status in _SHAREABLE


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(token: str) -> str:
    return settings.SITE_URL + reverse("prospect:landing", args=[token])


def _derive_token(pk: int, salt: str) -> str:
    digest = salted_hmac(_HMAC_KEY_SALT, f"share-link:{pk}:{salt}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_of(link: ShareLink) -> str | None:
    """The link's token, rebuilt so its owner can copy it again; never stored.

    None for links made before tokens were derived (no salt: shown only once) and after the
    portal's SECRET_KEY changed (the stored hash no longer matches what the key yields).
    """
    if not link.token_salt:
        return None
    token = _derive_token(link.pk, link.token_salt)
    return token if constant_time_compare(hash_token(token), link.token_hash) else None


def url_of(link: ShareLink) -> str | None:
    token = token_of(link)
    return link_url(token) if token else None


@dataclass(frozen=True)
class NewLink:
    link: ShareLink
    token: str  # never stored: rebuilt by `token_of` when needed again

    @property
    def url(self) -> str:
        return link_url(self.token)


def create_share_link(
    *,
    demo: Demo,
    actor: Actor,
    recipient: str,
    note: str = "",
    expires_at: datetime | None = None,
    time_zone: tzinfo = UTC,
) -> NewLink:
    """Make a link for a prospect. `expires_at=None` lets it follow the demo (and extensions).
    `time_zone`: the zone the salesperson reads times in, for the messages they get."""
    if demo.status == Status.FAILED:
        raise LifecycleError(
            "A broken demo cannot be shared: retry it, or start a new one, then make a link."
        )
    if demo.status not in _SHAREABLE:
        raise LifecycleError("This demo has ended, so it cannot be shared any more.")
    recipient = recipient.strip()
    if not recipient:
        raise LifecycleError("Say who the link is for (a name or an email address).")
    if expires_at is not None:
        if expires_at <= timezone.now():
            raise LifecycleError("The link's end must be in the future.")
        if demo.expires_at and expires_at > demo.expires_at:
            ends = dateformat.format(timezone.localtime(demo.expires_at, time_zone), "j M, H:i T")
            raise LifecycleError(
                f"A link cannot outlive its demo: choose a time before the demo ends at {ends}, "
                "or let the link follow the demo."
            )
    with transaction.atomic():
        # The token needs the link's id, so the row is made first with a stand-in hash: random,
        # so it is unique and no token matches it, and never seen outside this transaction.
        link = ShareLink.objects.create(
            demo=demo,
            token_hash=secrets.token_hex(32),
            token_salt=secrets.token_hex(16),
            recipient=recipient,
            note=note.strip(),
            expires_at=expires_at,
            created_by=actor.user,
        )
        token = _derive_token(link.pk, link.token_salt)
        link.token_hash = hash_token(token)
        link.save(update_fields=["token_hash"])
        # Said in the zone of the person who made the link: a timeline's text is written once.
        until = (
            f"until {notifications.time_for(actor.user, expires_at)}"
            if expires_at
            else "for as long as it runs"
        )
        record_event(
            demo,
            "share-link-created",
            f"Shared with {recipient} {until}.",
            actor,
            {"link": link.pk},
        )
    return NewLink(link, token)


def revoke_share_link(*, link: ShareLink, actor: Actor) -> ShareLink:
    if link.revoked_at is None:
        now = timezone.now()
        if ShareLink.objects.filter(pk=link.pk, revoked_at=None).update(revoked_at=now):
            link.revoked_at = now
            # The gate stops the link's open sessions at their next request.
            transaction.on_commit(lambda: gate_state.publish_link(link))
            record_event(
                link.demo,
                "share-link-revoked",
                f"Revoked the link for {link.recipient}.",
                actor,
                {"link": link.pk},
            )
    return link


# Words that cannot be part of an email address, around one in "Pat Lee <pat@acme.example>".
_NOT_IN_ADDRESS = re.compile(r"[\s,;<>()\[\]\"']+")


def prospect_email(link: ShareLink) -> str | None:
    """The email address in the link's "For" field, if it holds one."""
    for word in _NOT_IN_ADDRESS.split(link.recipient):
        if "@" not in word:
            continue
        try:
            validate_email(word)
        except ValidationError:
            continue
        return word
    return None


def email_share_link(*, link: ShareLink, actor: Actor) -> str:
    """Email the link to its prospect from the portal, in the owner's name; the address sent to.

    At most `EMAILS_PER_LINK` a link in `EMAIL_WINDOW`. Raises LifecycleError saying what to do
    instead when the link cannot be sent.
    """
    address = prospect_email(link)
    if address is None:
        raise LifecycleError(
            "“For” holds no email address, so the portal cannot send this link: copy it and "
            "send it yourself."
        )
    url = url_of(link)
    if not is_usable(link) or url is None:
        raise LifecycleError("This link no longer works, so it was not sent: make a new link.")
    if not _take_email_turn(link):
        raise LifecycleError(
            f"This link was emailed {EMAILS_PER_LINK} times in the last hour, the most the portal "
            "sends: copy it and send it yourself, or try again later."
        )
    if not notifications.share_link_to_prospect(link, url=url, to=address, until=_until(link)):
        raise LifecycleError(
            "The email could not be sent just now: copy the link and send it yourself, or try "
            "again in a few minutes."
        )
    record_event(
        link.demo,
        "share-link-emailed",
        f"Emailed the link for {link.recipient} to {address}.",
        actor,
        {"link": link.pk},
    )
    return address


def _until(link: ShareLink) -> str:
    """How long the link works, in words for the prospect."""
    if link.expires_at is not None:
        return f"until {utc_text(link_expires_at(link) or link.expires_at)}"
    if link.demo.expires_at is not None:
        return f"while the demo runs, now until {utc_text(link.demo.expires_at)}"
    return "while the demo runs"


def _take_email_turn(link: ShareLink) -> bool:
    """Count one email of `link`; False when its window's allowance is used up."""
    count = count_one(f"share-link:emails:{link.pk}", EMAIL_WINDOW)
    if count is None:
        # As with requests for more time: without Redis there is no limit, only a note of it.
        log.warning("Cannot count the emails of a share link: Redis is unavailable")
        return True
    return count <= EMAILS_PER_LINK


def is_usable(link: ShareLink, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    demo = link.demo
    if link.revoked_at is not None or demo.status not in _SHAREABLE:
        return False
    if link.expires_at is not None and link.expires_at <= now:
        return False
    return not (demo.status == Status.READY and demo.expires_at and demo.expires_at <= now)


def find_link(token: str) -> ShareLink | None:
    """The link for `token` whatever its state (for a prospect who already used it)."""
    if not token or len(token) > 100:
        return None
    return (
        ShareLink.objects.select_related("demo__template", "demo__owner__profile")
        .filter(token_hash=hash_token(token))
        .first()
    )


def resolve(token: str) -> ShareLink | None:
    """The usable link for `token`, or None. Wrong, expired, revoked and ended look the same."""
    link = find_link(token)
    return link if link is not None and is_usable(link) else None


def link_expires_at(link: ShareLink) -> datetime | None:
    """When the prospect loses access (the earlier of the link's and the demo's end)."""
    ends = [t for t in (link.expires_at, link.demo.expires_at) if t is not None]
    return min(ends) if ends else None


def truncate_address(address: str) -> str:
    """Keep only the network part of an address: /24 for IPv4, /48 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def record_visit(link: ShareLink, *, user_agent: str, address: str) -> ShareLinkVisit:
    """Log an open; tell the owner the first time a prospect opens this link."""
    now = timezone.now()
    visit = ShareLinkVisit.objects.create(
        link=link,
        visited_at=now,
        user_agent=user_agent[:300],
        client_address=truncate_address(address),
    )
    ShareLink.objects.filter(pk=link.pk).update(open_count=F("open_count") + 1, last_opened_at=now)
    first = ShareLink.objects.filter(pk=link.pk, first_opened_at=None).update(first_opened_at=now)
    if first:
        _record_prospect_event(
            link, "share-link-opened", f"{link.recipient} opened the demo link for the first time."
        )
        notifications.first_open(link)
    return visit


def record_first_entry(link: ShareLink) -> None:
    """The prospect went into the live app for the first time (through the gate)."""
    _record_prospect_event(
        link, "prospect-entered", f"{link.recipient} went into the demo for the first time."
    )
    notifications.first_use(link)


def _record_prospect_event(link: ShareLink, kind: str, message: str) -> None:
    """On the demo's timeline, by the prospect, naming the link they came through."""
    record_event(link.demo, kind, message, Actor(label="prospect"), {"link": link.pk})


def request_more_time(link: ShareLink) -> bool:
    """Tell the owner the prospect wants more time, by email and a badge on the demo. Changes
    nothing else by itself.

    False when the prospect asked less than ten minutes ago (one note is enough).
    """
    key = f"prospect:more-time:{link.pk}"
    try:
        if not cache.add(key, 1, timeout=int(MORE_TIME_COOLDOWN.total_seconds())):
            return False
    except RedisError:
        pass  # without Redis there is no cooldown; the owner may hear twice, never not at all
    # The badge on the demo's page and its row in My demos; an earlier request still waiting
    # keeps its time.
    Demo.objects.filter(pk=link.demo.pk, more_time_requested_at=None).update(
        more_time_requested_at=timezone.now()
    )
    _record_prospect_event(
        link, "more-time-requested", f"{link.recipient} asked for more time with the demo."
    )
    notifications.more_time_requested(link)
    return True


def offers_kubeconfig(demo: Demo) -> bool:
    """Whether the prospect is offered a kubeconfig: the template allows it, the demo is ready
    and the worker stored one when it became ready."""
    return bool(
        demo.spec.get("allow_kubeconfig_download")
        and demo.status == Status.READY
        and demo.kubeconfig_sealed
    )


def kubeconfig_for(link: ShareLink) -> str | None:
    """The kubeconfig for the prospect, from the database: the web tier never asks the cluster.

    None when it is not offered (see `offers_kubeconfig`) or no configured key opens it.
    """
    demo = link.demo
    if not offers_kubeconfig(demo):
        return None
    try:
        return unseal(demo.kubeconfig_sealed)
    except SealingError as exc:
        log.warning("Kubeconfig of demo %s not served: %s", demo.cluster_name, exc)
        return None


class FailureLimiter:
    """Counts failed link lookups per client address in fixed windows (shared through Redis)."""

    def __init__(self, limit: int | None = None, window: int | None = None) -> None:
        self.limit = limit or settings.PROSPECT_FAILURE_LIMIT
        self.window = window or settings.PROSPECT_FAILURE_WINDOW_SECONDS

    def _key(self, address: str) -> str:
        bucket = int(timezone.now().timestamp() // self.window)
        return f"prospect:failures:{truncate_address(address) or 'unknown'}:{bucket}"

    # Both fail open: while Redis is down, prospects still reach their demos, unthrottled.

    def blocked(self, address: str) -> bool:
        try:
            return (cache.get(self._key(address)) or 0) >= self.limit
        except RedisError:
            return False

    def record_failure(self, address: str) -> None:
        if count_one(self._key(address), timedelta(seconds=self.window * 2)) is None:
            log.warning("Cannot count a failed link lookup: Redis is unavailable")


def visits_for(demo: Demo) -> Any:
    return ShareLinkVisit.objects.filter(link__demo=demo).select_related("link")
