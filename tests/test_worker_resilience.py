"""Workers take maintenance first and outlive Redis; so does the cron process.

Real `manage.py runworker` and `manage.py runcron` processes throughout. The outage tests run them
against a `redis-server` of their own (free port, no persistence), so killing it disturbs no one
and a restart comes back empty, as an unpersisted Redis does after a crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django_rq
import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError
from rq import Queue, Worker
from rq.cron import CronScheduler

from portal.health import HEARTBEAT_KEY
from tests.conftest import ROOT, _die_with_parent, wait_for

ORDER = "test:ran"
HOLD = "test:hold"
LOST_LINE = "cannot reach Redis"


def _runworker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "runworker", "--burst", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.worker
class TestQueuePriority:
    def test_it_takes_maintenance_before_a_thousand_demo_steps(
        self, worker_env: dict[str, str], rq_redis: Any
    ) -> None:
        demos = django_rq.get_queue("demos", commit_mode="auto")
        steps = [
            Queue.prepare_data("tests.worker_jobs.record_and_stop", (ORDER, f"demos-{number}"))
            for number in range(1000)
        ]
        demos.enqueue_many(steps)
        maintenance = django_rq.get_queue("maintenance", commit_mode="auto")
        maintenance.enqueue("tests.worker_jobs.record_and_stop", ORDER, "maintenance")

        _runworker(worker_env)  # every job stops the worker after it: it runs exactly one

        assert rq_redis.lrange(ORDER, 0, -1) == [b"maintenance"]
        assert demos.count == 1000

    def test_a_worker_can_be_limited_to_maintenance(
        self, worker_env: dict[str, str], rq_redis: Any
    ) -> None:
        django_rq.get_queue("demos", commit_mode="auto").enqueue(
            "tests.worker_jobs.record", ORDER, "demos"
        )
        django_rq.get_queue("maintenance", commit_mode="auto").enqueue(
            "tests.worker_jobs.record", ORDER, "maintenance"
        )

        _runworker(worker_env, "--queues", "maintenance")

        assert rq_redis.lrange(ORDER, 0, -1) == [b"maintenance"]
        assert django_rq.get_queue("demos").count == 1

    def test_it_refuses_a_queue_the_portal_does_not_have(self) -> None:
        with pytest.raises(CommandError, match="invalid choice: 'default'"):
            call_command("runworker", "--queues", "default")


class PrivateRedis:
    """A `redis-server` of the test's own on a free port, without persistence."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(port=self.port, socket_timeout=2)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        wait_for(self._answers, 10, "the private redis-server did not start")

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def crash(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class PortalProcess:
    """`manage.py <command>` in a session of its own, logging to a file."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", command],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if not self.alive:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.crash()


@pytest.fixture
def portal_processes(
    worker_env: dict[str, str], private_redis: PrivateRedis, tmp_path: Path
) -> Iterator[tuple[PortalProcess, PortalProcess]]:
    """A worker and the cron process on the private Redis (which is not started yet)."""
    # The sweep as often as allowed (5 s), so the cron process is at work when Redis goes.
    env = {**worker_env, "REDIS_URL": private_redis.url, "DEMO_RECONCILE_SECONDS": "5"}
    worker = PortalProcess("runworker", env, tmp_path / "worker.log")
    cron = PortalProcess("runcron", env, tmp_path / "cron.log")
    yield worker, cron
    worker.stop()
    cron.stop()


def _worker_names(client: redis.Redis) -> list[str]:
    return [worker.name for worker in Worker.all(connection=client)]


def _both_at_work(server: PrivateRedis) -> str:
    """Wait until the worker is registered and has run a heartbeat the cron enqueued."""
    names = wait_for(lambda: _worker_names(server.client), 30, "the worker did not register")
    wait_for(lambda: server.client.get(HEARTBEAT_KEY), 30, "no heartbeat from cron and worker")
    return names[0]


def _runs_jobs(client: redis.Redis) -> None:
    Queue("demos", connection=client).enqueue("tests.worker_jobs.record", ORDER, "after")
    wait_for(lambda: client.lrange(ORDER, 0, -1) == [b"after"], 15, "a new job did not run")


@pytest.mark.worker
class TestRedisOutages:
    def test_worker_and_cron_wait_for_redis_at_start(
        self, private_redis: PrivateRedis, portal_processes: tuple[PortalProcess, PortalProcess]
    ) -> None:
        worker, cron = portal_processes
        time.sleep(4)  # long enough to load Django and fail to connect more than once
        assert worker.alive, worker.output()
        assert cron.alive, cron.output()

        private_redis.start()
        _both_at_work(private_redis)

        assert worker.output().count(LOST_LINE) == 1
        assert cron.output().count(LOST_LINE) == 1

    def test_worker_and_cron_outlive_a_redis_restart(
        self, private_redis: PrivateRedis, portal_processes: tuple[PortalProcess, PortalProcess]
    ) -> None:
        worker, cron = portal_processes
        private_redis.start()
        client = private_redis.client
        name = _both_at_work(private_redis)
        wait_for(lambda: Worker.find_by_key(f"rq:worker:{name}", client).get_state() == "idle")

        private_redis.crash()
        time.sleep(8)
        assert worker.alive, worker.output()
        assert cron.alive, cron.output()
        private_redis.start()  # empty: every registration and queued job is gone

        # The same worker, registered again (not a new one started in its place).
        wait_for(lambda: _worker_names(client) == [name], 25, "the worker did not register again")
        _runs_jobs(client)
        # The cron process registered again, and enqueues again: the worker ran its heartbeat.
        wait_for(lambda: CronScheduler.all(client), 15, "the cron process did not register again")
        wait_for(lambda: client.get(HEARTBEAT_KEY), 20, "no heartbeat after the restart")

        assert worker.alive
        assert cron.alive
        assert worker.output().count(LOST_LINE) == 1
        assert cron.output().count(LOST_LINE) == 1

    def test_a_job_running_when_redis_goes_carries_on(
        self, private_redis: PrivateRedis, portal_processes: tuple[PortalProcess, PortalProcess]
    ) -> None:
        worker, _ = portal_processes
        private_redis.start()
        client = private_redis.client
        name = _both_at_work(private_redis)
        Queue("demos", connection=client).enqueue("tests.worker_jobs.hold", HOLD, job_timeout=60)
        wait_for(lambda: client.scard(f"{HOLD}:workers"), 15, "the long job did not start")

        private_redis.crash()
        time.sleep(6)
        assert worker.alive, worker.output()
        private_redis.start()
        client.set(HOLD, "done")

        # The job saw the key set after the restart: it ran through the outage to its end.
        wait_for(lambda: client.exists(f"{HOLD}:ended"), 10, "the long job did not end")
        wait_for(lambda: _worker_names(client) == [name], 15, "the worker did not register again")
        _runs_jobs(client)
        assert worker.alive
        assert worker.output().count(LOST_LINE) == 1
