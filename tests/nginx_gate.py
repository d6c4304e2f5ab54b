"""A real nginx in front of the portal, configured the way ingress-nginx configures external
authentication: an `auth_request` subrequest to the portal's check for every request to a demo
host, 401 turned into a redirect to the portal's sign-in page (`auth-signin`), and the
`/.portal-gate/` path passed to the portal without a check.

ingress-nginx builds the same from `nginx.ingress.kubernetes.io/auth-url` and `auth-signin`
(its template's `location = /_external-auth-...` with `proxy_set_header X-Original-URL
$scheme://$http_host$request_uri`); docs/gate-controllers.md shows the Ingress.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CONFIG = """
worker_processes 1;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 128; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  server {{
    listen 127.0.0.1:{port};
    server_name ~^[a-z0-9-]+\\.{domain_pattern}$;

    # Tickets: to the portal, unchecked.
    location /.portal-gate/ {{
      proxy_pass http://{portal};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}

    location = /_external-auth {{
      internal;
      proxy_pass http://{portal}/gate/check/;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host {portal};
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Host $http_host;
    }}

    # The demo's app (here the simulated app, which the portal serves on demo hosts).
    location / {{
      auth_request /_external-auth;
      error_page 401 = @signin;
      proxy_pass http://{portal};
      proxy_set_header Host $http_host;
    }}

    location @signin {{
      return 302 {site}/gate/signin/?rd=$scheme://$http_host$request_uri;
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )


@contextmanager
def running_nginx(root: Path, *, portal: str, site: str, domain: str) -> Iterator[int]:
    """nginx in front of `portal` (host:port) for `*.domain`, on a free port; yields the port."""
    binary = nginx_binary()
    assert binary, "nginx is not installed (apt-get install nginx)"
    port = free_port()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    config = root / "nginx.conf"
    config.write_text(
        CONFIG.format(
            root=root,
            port=port,
            portal=portal,
            site=site,
            domain_pattern=domain.replace(".", "\\."),
        )
    )
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"nginx did not start: {process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def nginx_port(live_server: Any, settings: Any, tmp_path: Path) -> Iterator[int]:
    """nginx in front of the live server's demo hosts, checking as ingress-nginx does; the
    simulated backend's live links point at it. Import it into a test module to use it."""
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    settings.SITE_URL = live_server.url
    settings.DEMO_GATE_CONTROLLER = "ingress-nginx"  # nginx checks; the app behind it does not
    settings.DEMO_GATE_CACHE_SECONDS = 1.0  # as in production: decisions held for a second
    portal = f"127.0.0.1:{urlsplit(live_server.url).port}"
    with running_nginx(
        tmp_path, portal=portal, site=settings.SITE_URL, domain=settings.DEMO_BASE_DOMAIN
    ) as port:
        settings.SIMULATED_APP_ORIGIN = f"http://{{host}}:{port}"
        yield port
