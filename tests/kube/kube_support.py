"""Shared helpers of the vCluster backend tests: names, the recording API client, the live-link
server and the /readyz switch. Fixtures built on them are in conftest.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import kmock
from kubernetes import client

from demos.backends.vcluster.backend import VClusterBackend

CLUSTER = "demo-1a2b3c4d"
NAMESPACE = f"vcluster-{CLUSTER}"


class RecordingApiClient(client.ApiClient):
    """The real API client, also noting every (method, url) it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str]] = []
        self.log: list[str] | None = None

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((method, url))
        if self.log is not None:
            self.log.append(f"{method} {urlsplit(url).path}")
        return super().call_api(method, url, *args, **kwargs)


class ReadyzSwitch:
    """What the vCluster emulator answers on /readyz; tests flip it."""

    def __init__(self) -> None:
        self.ready = True

    def __call__(self) -> bytes:
        if not self.ready:
            raise kmock.KubernetesError(status=500, message="[-]etcd failed: not ready")
        return b"ok"


class Site:
    """A live link: a tiny HTTP server whose answer the test chooses."""

    def __init__(self) -> None:
        site = self
        self.status = 200

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(site.status)
                self.end_headers()
                self.wfile.write(b"demo shop")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/shop/"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


BackendFactory = Callable[..., VClusterBackend]
