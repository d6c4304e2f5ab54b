"""Liveness and readiness endpoints, with a real worker and the real cron heartbeat job."""

from __future__ import annotations

import time
from typing import Any

import django_rq
import pytest
from django.db import connection
from django.test import Client
from rq.job import JobStatus

from portal import health
from tests.conftest import WorkerProcess, wait_for


class TestHealthz:
    def test_it_answers_without_login(self, client: Client, db: None) -> None:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert "no-cache" in response["Cache-Control"]

    def test_it_is_503_when_the_database_is_down(
        self, client: Client, db: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise connection.Database.OperationalError("connection refused")

        with monkeypatch.context() as patched:
            patched.setattr(connection, "cursor", refuse)
            response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "down"}


class TestReadyz:
    def test_it_reports_degraded_without_workers_or_heartbeat(
        self, client: Client, db: None, rq_redis: Any
    ) -> None:
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["database"] == "ok"
        assert body["redis"] == "ok"
        assert body["workers"] == 0
        assert body["cron_heartbeat_age_seconds"] is None

    def test_it_reports_redis_down(self, client: Client, db: None, settings: Any) -> None:
        settings.RQ_QUEUES = {
            name: {"URL": "redis://127.0.0.1:1/0"} for name in settings.RQ_QUEUE_NAMES
        }
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["redis"] == "down"

    @pytest.mark.worker
    def test_a_real_worker_runs_the_heartbeat_and_readiness_turns_ok(
        self, client: Client, worker: WorkerProcess
    ) -> None:
        queue = django_rq.get_queue("maintenance", commit_mode="auto")
        job = queue.enqueue(health.record_heartbeat)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, 20, "heartbeat job did not run")
        assert abs(job.return_value() - time.time()) < 30

        response = client.get("/readyz")
        body = response.json()
        assert response.status_code == 200, body
        assert body["workers"] >= 1
        assert body["cron_heartbeat_age_seconds"] < health.HEARTBEAT_STALE_AFTER
