"""One Redis client per process and Redis: shared by enqueues, the heartbeat and readiness,
new in a forked child, and still telling when Redis is down."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from django.test import Client

from demos.engine import dispatch
from portal import health, redis_connection
from portal.redis_connection import connection_for
from tests.conftest import ROOT


class TestOnePool:
    def test_every_call_gets_the_same_client_and_pool(self, settings: Any) -> None:
        first, second = connection_for("demos"), connection_for("demos")
        assert first is second
        assert first.connection_pool is second.connection_pool
        # Both queues name the same Redis: one pool for both.
        assert connection_for("maintenance") is first
        assert settings.RQ_QUEUES["maintenance"]["URL"] == settings.RQ_QUEUES["demos"]["URL"]

    def test_another_redis_gets_a_client_of_its_own(self, settings: Any) -> None:
        before = connection_for("demos")
        settings.RQ_QUEUES = {
            **settings.RQ_QUEUES,
            "maintenance": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60},
        }
        elsewhere = connection_for("maintenance")
        assert elsewhere is not before
        assert elsewhere.connection_pool.connection_kwargs["port"] == 1
        assert connection_for("demos") is before

    def test_enqueues_use_it(self) -> None:
        assert dispatch._queue().connection is connection_for("demos")
        assert dispatch._queue(dispatch.MAINTENANCE).connection is connection_for("maintenance")

    def test_readiness_checks_open_no_new_client(
        self, client: Client, db: None, rq_redis: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connection_for("maintenance")
        made: list[dict[str, Any]] = []
        real = redis_connection.get_redis_connection

        def counting(config: dict[str, Any]) -> Any:
            made.append(config)
            return real(config)

        monkeypatch.setattr(redis_connection, "get_redis_connection", counting)
        for _ in range(20):
            client.get("/readyz")
            health.record_heartbeat()
        assert made == []


# Run in a process of its own: forking pytest's process, which has threads, could deadlock.
FORK_CHECK = """
import os
import django

django.setup()
from portal.redis_connection import connection_for
from tests.conftest import ROOT

parent = connection_for("demos")
assert parent.ping()
reader, writer = os.pipe()
pid = os.fork()
if pid == 0:
    child = connection_for("demos")
    fresh = child is not parent and child.connection_pool is not parent.connection_pool
    again = connection_for("demos") is child
    os.write(writer, b"own" if fresh and again and child.ping() else b"shared")
    os._exit(0)
os.close(writer)
answer = os.fdopen(reader, "rb").read().decode()
os.waitpid(pid, 0)
# The child left the parent's client, and its connection, alone.
print(answer, connection_for("demos") is parent and parent.ping())
"""


class TestAfterAFork:
    def test_the_child_gets_a_client_of_its_own_and_the_parents_still_works(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings_test"}
        result = subprocess.run(
            [sys.executable, "-c", FORK_CHECK],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["own", "True"]


class TestHealth:
    def test_it_still_reports_redis_down(self, client: Client, db: None, settings: Any) -> None:
        assert client.get("/readyz").json()["redis"] == "ok"
        settings.RQ_QUEUES = {
            name: {"URL": "redis://127.0.0.1:1/0"} for name in settings.RQ_QUEUE_NAMES
        }
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["redis"] == "down"
