"""The gate's figures: a check beside the trivial view, its queries, and revocation to blocked.

A check is what the ingress asks for every request to a demo's app, so it is held to the cost of
a view that does nothing (`gate check / trivial view (no session)` >= 0.8). It carries a
prospect's access cookie for a running demo, the costlier kind (the link is checked too, and the
prospect's presence recorded). Revocation to blocked is timed from the salesperson's revoke to
the first check that refuses, with checks arriving back to back.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench import portal_data
from bench.client import Browser

REVOCATION_TRIALS = 20


def prospect_headers(demo: Any) -> tuple[dict[str, str], Any]:
    """The headers ingress-nginx sends with a prospect's request, and the prospect's link."""
    from demos.engine.lifecycle import Actor
    from demos.gate import entry, passes, state
    from demos.sharing import links

    link = links.create_share_link(
        demo=demo, actor=Actor(user=demo.owner), recipient="ada@acme.example"
    ).link
    state.publish_demo(demo)
    state.publish_link(link)
    cookie = passes.seal_cookie(entry.link_pass(link))
    headers = {
        "Cookie": f"{passes.cookie_name()}={cookie}",
        "X-Original-URL": f"https://{demo.cluster_name}.{settings.DEMO_BASE_DOMAIN}/shop",
        "User-Agent": "Mozilla/5.0 (bench)",
    }
    return headers, link


def queries_per_check(headers: dict[str, str]) -> int:
    """Queries of one check once the gate's state is in Redis (in-process, same code)."""
    client = Client(SERVER_NAME="127.0.0.1")
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    client.get("/gate/check/", **extra)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/gate/check/", **extra)
    if response.status_code != 200:
        raise RuntimeError(f"the gate refused the bench's pass in-process: {response.status_code}")
    return len(queries.captured_queries)


def revocation_to_blocked(port: int, template: Any, owner: Any) -> list[float]:
    """Seconds from revoking a link to the first refused check, over several links."""
    delays = []
    for _ in range(REVOCATION_TRIALS):
        headers, link = prospect_headers(portal_data.running_demo(template, owner))
        delays.append(_one_revocation(port, headers, link, owner))
    return delays


def _one_revocation(port: int, headers: dict[str, str], link: Any, owner: Any) -> float:
    from demos.engine.lifecycle import Actor
    from demos.sharing import links

    browser = Browser(port, "")
    allowed = threading.Event()
    blocked = threading.Event()
    revoked_at: list[float] = []
    refused_at: list[float] = []

    def ask() -> None:
        while not blocked.is_set():
            status = browser.get("/gate/check/", headers=headers).status
            if status == 200:
                allowed.set()
            elif status == 401 and revoked_at:
                refused_at.append(time.perf_counter())
                blocked.set()

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    if not allowed.wait(30):  # checks are flowing, and the link works
        blocked.set()
        raise RuntimeError("the gate never let the bench's link through")
    revoked_at.append(time.perf_counter())
    links.revoke_share_link(link=link, actor=Actor(user=owner))
    if not blocked.wait(30):
        raise RuntimeError("a revoked link was still let through after 30 s")
    asker.join()
    browser.close()
    return refused_at[0] - revoked_at[0]
