"""Demo hosts: `<cluster>.<DEMO_BASE_DOMAIN>`, and the requests that arrive for them."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

from demos.models import Demo

DEMO_HOST_URLCONF = "demos.gate.demo_host_urls"


def cluster_for_host(host: str) -> str | None:
    """The cluster a demo host names, or None for any other host (the portal's own)."""
    if host.startswith("["):
        return None  # an IPv6 address, never a name under the demo domain
    name = host.partition(":")[0].lower().rstrip(".")
    suffix = "." + settings.DEMO_BASE_DOMAIN.lower()
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    return label if label and "." not in label else None


def cluster_for_url(url: str) -> str | None:
    try:
        return cluster_for_host(urlsplit(url).netloc.rpartition("@")[2])
    except ValueError:
        return None


def gated_origin(demo: Demo) -> str | None:
    """The origin of the demo's live link when the gate guards it, else None.

    A template may send its live link elsewhere (a fixed address outside the demo domain); the
    gate cannot guard that, and "Open demo" goes there directly.
    """
    if not settings.DEMO_GATE or not demo.live_url:
        return None
    if cluster_for_url(demo.live_url) != demo.cluster_name:
        return None
    parts = urlsplit(demo.live_url)
    return f"{parts.scheme}://{parts.netloc}"


def simulated_origin(cluster: str) -> str:
    """Where the simulated backend's app answers for `cluster`: SITE_URL's scheme and port, or
    SIMULATED_APP_ORIGIN (with `{host}` standing for the demo host) when the demo hosts are
    reached some other way (through an nginx in front of the portal, say)."""
    host = f"{cluster}.{settings.DEMO_BASE_DOMAIN}"
    if settings.SIMULATED_APP_ORIGIN:
        return settings.SIMULATED_APP_ORIGIN.replace("{host}", host).rstrip("/")
    site = urlsplit(settings.SITE_URL)
    port = f":{site.port}" if site.port else ""
    return f"{site.scheme}://{host}{port}"


class DemoHostMiddleware:
    """Requests for a demo host get the demo host's URLs (demos.gate.demo_host_urls) instead of
    the portal's: its gate paths and, with the simulated backend, the sample app."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEMO_GATE:
            try:
                cluster = cluster_for_host(request.get_host())
            except DisallowedHost:
                cluster = None  # Django answers 400 for it on the way, as for any bad host
            if cluster is not None:
                request.urlconf = DEMO_HOST_URLCONF
                request.demo_cluster = cluster  # type: ignore[attr-defined]
        return self.get_response(request)
