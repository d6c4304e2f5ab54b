"""What lets a browser into a demo: a ticket (once, for a minute) and then an access cookie.

Both are signed with the portal's secret key (Django's signing, so SECRET_KEY_FALLBACKS rotate
them too) and name the demo's cluster and who they are for: a share link (`l`) or a team member
(`m`). The cookie alone proves nothing about the present: the gate also asks whether the link
and the demo still allow entry (demos.gate.state), so a revocation needs no cookie to expire.

A ticket carries the grant from the portal's host to the demo's host, where the cookie is set
(host-only, so a cookie of one demo is never sent to another). It is used once: redeeming marks
its nonce in Redis; while Redis is away a ticket still works, only not strictly once, within its
minute.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from redis.exceptions import RedisError

from portal.redis_connection import shared

log = logging.getLogger(__name__)

LINK = "l"
MEMBER = "m"
_COOKIE_SALT = "demos.gate.cookie"
_TICKET_SALT = "demos.gate.ticket"


class InvalidPass(Exception):
    """A cookie or ticket that is malformed, forged, expired or already used."""


@dataclass(frozen=True)
class Pass:
    cluster: str
    demo: int  # the demo's id, so counting its use needs no lookup
    kind: str  # LINK or MEMBER
    subject: int  # the link's or the member's id
    expires: int  # epoch seconds

    @property
    def is_prospect(self) -> bool:
        return self.kind == LINK

    def _payload(self) -> str:
        return f"{self.cluster}.{self.demo}.{self.kind}{self.subject}.{self.expires}"

    @classmethod
    def _parse(cls, payload: str) -> Pass:
        try:
            cluster, demo, who, expires = payload.split(".")
            grant = cls(cluster, int(demo), who[0], int(who[1:]), int(expires))
        except (ValueError, IndexError):
            raise InvalidPass("malformed") from None
        if grant.kind not in (LINK, MEMBER):
            raise InvalidPass("malformed")
        return grant


def cookie_name() -> str:
    # `__Host-`: browsers accept it only Secure, host-only and for path /, so no other host or
    # path can plant or read it.
    return "__Host-demo-access" if settings.DEMO_GATE_COOKIE_SECURE else "demo-access"


def lasting_until(link_end: float | None, now: float | None = None) -> int:
    """A cookie's end: the link's own end when sooner than the longest a cookie lasts."""
    now = now or time.time()
    longest = now + settings.DEMO_GATE_COOKIE_SECONDS
    return int(min(link_end, longest) if link_end else longest)


def seal_cookie(grant: Pass) -> str:
    return signing.Signer(salt=_COOKIE_SALT).sign(grant._payload())


def open_cookie(value: str, now: float | None = None) -> Pass:
    """The pass in an access cookie; InvalidPass if forged or past its end."""
    if not value or len(value) > 300:
        raise InvalidPass("missing")
    try:
        grant = Pass._parse(signing.Signer(salt=_COOKIE_SALT).unsign(value))
    except signing.BadSignature:
        raise InvalidPass("forged") from None
    if grant.expires <= (now or time.time()):
        raise InvalidPass("expired")
    return grant


def issue_ticket(grant: Pass) -> str:
    nonce = secrets.token_urlsafe(12)
    return signing.TimestampSigner(salt=_TICKET_SALT).sign(f"{grant._payload()}.{nonce}")


def redeem_ticket(ticket: str) -> Pass:
    """The pass a ticket carries, once; InvalidPass when forged, too old or used before."""
    if not ticket or len(ticket) > 300:
        raise InvalidPass("missing")
    try:
        payload = signing.TimestampSigner(salt=_TICKET_SALT).unsign(
            ticket, max_age=settings.DEMO_GATE_TICKET_SECONDS
        )
    except signing.SignatureExpired:
        raise InvalidPass("expired") from None
    except signing.BadSignature:
        raise InvalidPass("forged") from None
    grant_payload, _, nonce = payload.rpartition(".")
    grant = Pass._parse(grant_payload)
    if not nonce:
        raise InvalidPass("malformed")
    try:
        first = shared().set(
            f"gate:ticket:{nonce}", 1, nx=True, ex=settings.DEMO_GATE_TICKET_SECONDS * 2
        )
    except RedisError:
        log.warning("Redis is unavailable: a gate ticket is accepted without its single-use check")
        first = True
    if not first:
        raise InvalidPass("used")
    return grant
