"""Shared fixtures: a few named users, a sample template, Redis and a real worker process."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.utils import timezone

from demos import roles
from demos.models import Demo, DemoTemplate, Status, TemplateChart

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"


def _user(username: str, *groups: str, **extra: Any) -> User:
    user = User.objects.create_user(
        username, f"{username}@example.com", PASSWORD, first_name=username.title(), **extra
    )
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def alice(db: None) -> User:
    return _user("alice", roles.SALES)


@pytest.fixture
def bob(db: None) -> User:
    return _user("bob", roles.SALES)


@pytest.fixture
def manager(db: None) -> User:
    return _user("mia", roles.SALES, roles.SALES_MANAGERS)


@pytest.fixture
def template_admin(db: None) -> User:
    return _user("tara", roles.TEMPLATE_ADMINS, is_staff=True)


def make_template(slug: str = "webshop", charts: int = 2, **fields: Any) -> DemoTemplate:
    template = DemoTemplate.objects.create(
        slug=slug,
        name=fields.pop("name", slug.title()),
        tagline="A shop with a database",
        entry_url="https://${DEMO_HOST}/",
        instructions="Log in as **admin** at ${DEMO_HOST}.",
        credentials="Username: admin\nPassword: demo",
        **fields,
    )
    for position in range(charts):
        TemplateChart.objects.create(
            template=template,
            position=position,
            repository="oci://registry.example.com/charts",
            chart=f"chart{position}",
            version="1.0.0",
            release_name=f"app{position}",
            namespace="demo",
            values="host: ${DEMO_HOST}\ngreeting: Hello ${PROSPECT_COMPANY}\n",
        )
    return template


@pytest.fixture
def template(db: None) -> DemoTemplate:
    return make_template()


@pytest.fixture
def rq_redis() -> Iterator[Any]:
    """The tests' own Redis database, emptied before and after."""
    redis = django_rq.get_connection("demos")
    redis.flushdb()
    yield redis
    redis.flushdb()


def run_jobs() -> None:
    """Run everything queued (and due) in this process, like a worker in burst mode."""
    worker = django_rq.get_worker("demos", "maintenance", worker_class="rq.SimpleWorker")
    worker.work(burst=True, with_scheduler=False)


def wait_for(predicate: Callable[[], Any], timeout: float = 20, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(message or "condition not met in time")


def wait_for_status(demo: Demo, *statuses: str, timeout: float = 20) -> Demo:
    def reached() -> bool:
        demo.refresh_from_db()
        return demo.status in statuses

    wait_for(reached, timeout, f"demo stayed {demo.status}, wanted {statuses}")
    return demo


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def _die_with_parent() -> None:
    """Runs in the child before exec: if the test process dies, the worker gets SIGTERM.

    Without it, a test run that is interrupted leaves a worker behind that takes the next run's
    jobs from the shared test Redis database.
    """
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1
_started: list[WorkerProcess] = []


@pytest.fixture(autouse=True)
def _stop_leftover_workers() -> Iterator[None]:
    """Whatever a test started and did not stop (it failed half-way) is stopped after it."""
    yield
    while _started:
        _started.pop().stop()


class WorkerProcess:
    """A real `manage.py runworker` process against the test database and Redis."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = ROOT / "var" / f"test-worker-{os.getpid()}.log"

    def start(self) -> None:
        self.log.parent.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runworker"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        _started.append(self)
        redis = django_rq.get_connection("demos")
        from rq import Worker

        wait_for(lambda: Worker.count(connection=redis) > 0, 20, "worker did not register")

    def kill(self) -> None:
        """SIGKILL the worker and its work horse, as an out-of-memory kill would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_env(transactional_db: None, rq_redis: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings_test",
        DATABASE_URL=_database_url(),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def worker(worker_env: dict[str, str]) -> Iterator[WorkerProcess]:
    process = WorkerProcess(worker_env)
    process.start()
    yield process
    process.stop()
    from rq import Worker

    for stale in Worker.all(connection=django_rq.get_connection("demos")):
        stale.register_death()


def backdate(demo: Demo, **delta: float) -> None:
    """Move a demo's clock fields into the past instead of sleeping."""
    shift = timedelta(**delta)
    fields = {
        name: getattr(demo, name) - shift
        for name in ("requested_at", "started_at", "ready_at", "expires_at", "status_changed_at")
        if getattr(demo, name) is not None
    }
    Demo.objects.filter(pk=demo.pk).update(**fields)
    demo.refresh_from_db()


def ready_demo(template: DemoTemplate, owner: User, **fields: Any) -> Demo:
    """A demo already running, made directly (for tests of what happens after start)."""
    now = timezone.now()
    demo = Demo.objects.create(
        template=template,
        owner=owner,
        cluster_name=f"demo-{Demo.objects.count():010x}",
        status=Status.READY,
        started_at=now,
        ready_at=now,
        expires_at=now + template.default_lifetime,
        live_url="https://example.com/",
        **fields,
    )
    from demos.engine.specs import render_spec

    demo.spec = render_spec(demo)
    demo.save(update_fields=["spec"])
    return demo
