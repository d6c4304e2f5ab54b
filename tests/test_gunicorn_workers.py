"""gunicorn loads and warms the portal once, in its master, and every worker it forks serves
from that: also the workers `--max-requests` starts anew, with the database and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from demos.engine.lifecycle import Actor
from demos.models import DemoTemplate
from demos.sharing.links import create_share_link
from tests.conftest import make_demo
from tests.gunicorn_server import Gunicorn, get, portal_env

MAX_REQUESTS = 8


@pytest.fixture
def replaced_often(tmp_path: Path, transactional_db: None, rq_redis: Any) -> Iterator[Gunicorn]:
    server = Gunicorn(
        tmp_path,
        portal_env(),
        "--workers", "2",
        "--threads", "2",
        "--max-requests", str(MAX_REQUESTS),
        "--max-requests-jitter", "0",
    )  # fmt: skip
    yield server
    server.stop()


def test_workers_forked_from_the_warm_master_serve_the_database_and_redis(
    replaced_often: Gunicorn, template: DemoTemplate, alice: Any
) -> None:
    demo = make_demo(template, alice)
    token = create_share_link(demo=demo, actor=Actor.of(alice), recipient="Pat").token
    # The prospect page reads the database and Redis; the sign-in page sets a session cookie.
    paths = [f"/p/{token}/", f"/p/{token}/status/", "/login/"] * 20

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda path: get(replaced_often.url(path)), paths))
    replaced_often.stop()

    assert statuses == [200] * len(paths)
    log = replaced_often.error_log.read_text()
    assert log.count("Warmed: views imported,") == 1, log  # in the master, not per worker
    # ...and before it forks any worker, so each one starts from the warm master.
    assert log.index("Warmed: views imported,") < log.index("Booting worker"), log
    # 60 requests at 8 a worker: the answers above came from at least six workers in turn.
    assert log.count("Autorestarting worker after current request.") >= 5, log
