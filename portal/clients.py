"""Who is asking: the client's address, for rate limits, login throttling and the visit log.

Behind an ingress, REMOTE_ADDR is the ingress controller and the client is in X-Forwarded-For.
But anyone can send that header, so it is read only when the direct peer is one of the proxies
in TRUSTED_PROXY_NETWORKS, and then only as far as the proxies go: walking the list from the
right (the entry the nearest proxy appended), the first address that is not a trusted proxy is
the client. Entries further left were written by the client and prove nothing.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted_proxy(address: Address) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXY_NETWORKS)


def client_address(request: HttpRequest) -> str:
    """The client's IP address as text, or the direct peer's when no trusted proxy is involved."""
    peer = request.META.get("REMOTE_ADDR", "")
    current = _parse(peer)
    if current is None or not is_trusted_proxy(current):
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed(forwarded.split(",")):
        hop = _parse(entry)
        if hop is None:
            break  # a malformed entry: nothing left of it can be trusted
        current = hop
        if not is_trusted_proxy(hop):
            break
    return str(current)
