"""Shared fixtures: a few named users, a sample template, Redis and a real worker process."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import django_rq
import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.forms.models import model_to_dict
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.duration import duration_string

from demos import roles
from demos.backends.base import Observation, Phase
from demos.backends.simulated import SimulatedBackend
from demos.catalog.forms import CHART_FIELDS, TEMPLATE_FIELDS
from demos.engine import capacity, dispatch, lifecycle, operations
from demos.models import Demo, DemoTemplate, Status, TemplateChart
from demos.studio.versions import Actor, record_row_as_version
from tests.nginx_gate import nginx_port  # noqa: F401 - a fixture for the gate's tests

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


@pytest.fixture
def admin_client(client: Client, template_admin: User) -> Client:
    """A client logged in as the template admin (instead of pytest-django's superuser)."""
    client.force_login(template_admin)
    return client


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
    # Published, as the catalog offers only published templates (the studio's tests make drafts).
    record_row_as_version(template=template, actor=Actor(label="tests"), note="Test template.")
    return template


@pytest.fixture
def template(db: None) -> DemoTemplate:
    return make_template()


# The template admin's change form, as the admin tests post it.


def form_data(template: DemoTemplate, **changes: Any) -> dict[str, Any]:
    """What the admin change form posts for `template` unchanged, with `changes` applied."""
    data: dict[str, Any] = {"_save": "Save"}
    for name in TEMPLATE_FIELDS:
        value = getattr(template, name)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = duration_string(value) if isinstance(value, timedelta) else value
    charts = list(template.charts.order_by("position", "pk"))
    data |= {
        "charts-TOTAL_FORMS": len(charts),
        "charts-INITIAL_FORMS": len(charts),
        "charts-MIN_NUM_FORMS": 0,
        "charts-MAX_NUM_FORMS": 1000,
    }
    for index, chart in enumerate(charts):
        data[f"charts-{index}-id"] = chart.pk
        data[f"charts-{index}-template"] = template.pk
        for name in CHART_FIELDS:
            data[f"charts-{index}-{name}"] = getattr(chart, name)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def snapshot(template: DemoTemplate) -> dict[str, Any]:
    """Everything stored about a template, to prove a rejected save changed nothing."""
    template = DemoTemplate.objects.get(pk=template.pk)
    return {
        "template": model_to_dict(template) | {"version": template.version},
        "charts": [model_to_dict(chart) for chart in template.charts.order_by("pk")],
    }


def change_url(template: DemoTemplate) -> str:
    return reverse("admin:demos_demotemplate_change", args=[template.pk])


@pytest.fixture
def rq_redis() -> Iterator[Any]:
    """The tests' own Redis database, emptied before and after."""
    redis = django_rq.get_connection("demos")
    redis.flushdb()
    yield redis
    redis.flushdb()


def run_jobs(max_rounds: int = 200) -> None:
    """Run everything queued in this process, like a worker in burst mode, and the follow-up
    steps demos schedule for themselves (without waiting out their few seconds) until none is
    left. Jobs due later than that (expiry) stay scheduled."""
    worker = django_rq.get_worker(*settings.RQ_QUEUE_NAMES, worker_class="rq.SimpleWorker")
    for _ in range(max_rounds):
        worker.work(burst=True, with_scheduler=False)
        if not _enqueue_scheduled_soon():
            return
        time.sleep(settings.DEMO_OBSERVE_INTERVAL)


def _enqueue_scheduled_soon(within: int = 5) -> int:
    """Move jobs due in the next `within` seconds to their queues, as RQ's scheduler would."""
    moved = 0
    for name in settings.RQ_QUEUE_NAMES:
        queue = django_rq.get_queue(name)
        registry = queue.scheduled_job_registry
        for job_id in registry.get_jobs_to_schedule(int(time.time()) + within):
            job = queue.fetch_job(job_id)
            registry.remove(job_id)
            if job is not None:
                queue._enqueue_job(job)
                moved += 1
    return moved


def wait_for(predicate: Callable[[], Any], timeout: float = 20, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(message or "condition not met in time")


# How long the test database's other sessions get to end before it is dropped.
SESSIONS_END_SECONDS = 15


@pytest.fixture(scope="session", autouse=True)
def _test_database_left_alone(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Before the test database is dropped, wait for the sessions of the processes the tests
    started (workers, gunicorn) to end. A process that was just stopped may still hold its
    session for a moment, and then dropping the database failed ("being accessed by other
    users"), leaving it behind. Sessions still there after the wait are named in a warning, so
    the test that leaked them can be found, and ended so the database can go."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock():
        left = _other_sessions(deadline=time.monotonic() + SESSIONS_END_SECONDS)
        if left:
            warnings.warn(
                f"{len(left)} session(s) still on the test database after "
                f"{SESSIONS_END_SECONDS} s, ended now: {left}",
                stacklevel=1,
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        connection.close()


def _other_sessions(deadline: float) -> list[tuple[Any, ...]]:
    """The test database's sessions besides this one (pid, application, state, last query),
    once there are none or at `deadline`."""
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, application_name, state, left(query, 80) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            left = cursor.fetchall()
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def wait_for_status(demo: Demo, *statuses: str, timeout: float = 20) -> Demo:
    def reached() -> bool:
        demo.refresh_from_db()
        return demo.status in statuses

    wait_for(reached, timeout, f"demo stayed {demo.status}, wanted {statuses}")
    return demo


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def _die_with_parent() -> None:
    """Runs in the child before exec: if the test process dies, the worker gets SIGTERM.

    Without it, a test run that is interrupted leaves a worker behind that takes the next run's
    jobs from the shared test Redis database.
    """
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1
_started: list[WorkerProcess] = []


def forget_fragments() -> None:
    """Forget every rendered row and card: this process's and those shared in Redis, as on a
    portal just deployed."""
    from django.core.cache import caches
    from redis.exceptions import RedisError

    from portal.redis_connection import shared

    caches["fragments"].clear()
    with contextlib.suppress(RedisError):
        redis = shared()
        for key in redis.scan_iter("portal-fragments:*", count=1000):
            redis.delete(key)


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    """The fleet's time-to-ready figures are cached for a minute, catalog fragments for the life
    of the process, the gate's state for minutes and the branding until it changes: each test
    renders and computes its own."""
    from django.core.cache import cache
    from redis.exceptions import RedisError

    from demos.branding import CACHE_KEY as BRANDING_CACHE_KEY
    from demos.fleet.selectors import FLEET_FIGURES_CACHE_KEY, TIME_TO_READY_CACHE_KEY
    from demos.gate import state as gate_state
    from demos.sales.pages import OWNERS_CACHE_KEY
    from portal.redis_connection import shared

    forget_fragments()
    with contextlib.suppress(RedisError):
        for key in (TIME_TO_READY_CACHE_KEY, FLEET_FIGURES_CACHE_KEY):
            cache.delete_many([key, f"{key}:refresh"])
        cache.delete(OWNERS_CACHE_KEY)
        cache.delete(BRANDING_CACHE_KEY)  # a row of an earlier test's database
        # The gate's state names demos and links by id, which each test's database reuses.
        gate_state.forget_held()
        redis = shared()
        for key in redis.scan_iter("gate:*", count=1000):
            redis.delete(key)
        # So do a person's cached time zone, a template's cached typical time to ready and a
        # link's cooldown between requests for more time.
        for pattern in (
            "portal-sessions:*time-zone:*",
            "portal-cache:*typical-time-to-ready:*",
            "portal-cache:*prospect:more-time:*",
        ):
            for key in redis.scan_iter(pattern, count=1000):
                redis.delete(key)


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
        """SIGKILL the worker with the job it runs and its scheduler, as losing the pod would."""
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


# How a demo reaches each state, from the first step on: the lifecycle's own functions, in order.
_PATHS: dict[Status, tuple[str, ...]] = {
    Status.QUEUED: ("queue",),
    Status.REQUESTED: ("admit",),
    Status.PROVISIONING: ("admit", "provision"),
    Status.INSTALLING: ("admit", "provision", "install"),
    Status.FAILED: ("admit", "provision", "install", "fail"),
    Status.READY: ("admit", "ready"),
    Status.PAUSING: ("admit", "ready", "pause"),
    Status.PAUSED: ("admit", "ready", "pause", "paused"),
    Status.RESUMING: ("admit", "ready", "pause", "paused", "resume"),
    Status.ARCHIVING: ("admit", "ready", "archive"),
    Status.ARCHIVED: ("admit", "ready", "archive", "archived"),
    Status.DELETING: ("admit", "ready", "delete"),
    Status.DELETED: ("admit", "ready", "delete", "deleted"),
    Status.SLEEPING: ("admit", "ready", "sleep"),
    Status.ASLEEP: ("admit", "ready", "sleep", "asleep"),
    Status.WAKING: ("admit", "ready", "sleep", "asleep", "wake"),
}
_UNLIMITED = 1_000_000


def make_demo(
    template: DemoTemplate,
    owner: User | None,
    status: Status = Status.READY,
    *,
    at: datetime | None = None,
    ready_after: timedelta = timedelta(0),
    extensions: int = 0,
    error_message: str = "Chart “app0” failed: image pull error for registry.example.com/x:1.",
    error_detail: str = "",
    is_spare: bool = False,
    **start: Any,
) -> Demo:
    """A demo in `status`, reached the way a real one gets there: only states that can happen.

    Every step is the lifecycle's own function (`demos.engine.lifecycle`), so each transition
    sets the timestamps, progress and events it always sets:

    - `queued`: `start_demo` while capacity is full; everything else starts with `start_demo`
      while there is room (or `start_spare` with `is_spare=True`, owner None). Capacity limits
      are lifted while the demo is built, so a test can have as many demos as it needs; tests
      of capacity itself call `start_demo`. Like `start_demo`, it takes a ready spare of the
      template when one exists.
    - `provisioning`: `begin_provisioning`, and the cluster is applied to the simulated backend.
    - `installing`: `record_start` of the simulated backend's mid-install observation.
    - `failed`: then `fail_demo(error_message, error_detail)`: a chart failed while installing.
    - `ready`: the worker's own provisioning step (`operations.provision`) on the simulated
      backend, with its step time set to zero.
    - `pausing`/`paused`/`resuming`, `archiving`/`archived`, `deleting`/`deleted`: from ready,
      `pause_demo`/`resume_demo`, `archive_demo`, `delete_demo`, then the worker's own steps
      (`operations.pause`, `.archive`, `.delete`) on the simulated backend.
    - `sleeping`/`asleep`/`waking`: from ready, `sleep_demo` (as the sweep does), the worker's
      `operations.pause`, then `wake_demo`.
    - `extensions`: that many `extend_demo` calls once ready.

    `start` goes to `start_demo` (prospect_name, prospect_company, lifetime, start_token).
    Clock: with `at`, the demo is requested at `at` and the clock stands still (time-machine)
    until it is ready `ready_after` later, where every later step happens too; so
    `time_to_ready == ready_after` and `status_changed_at` is that moment. Without `at`, it all
    happens now (or `ready_after` ago).

    The one shortcut: the factory does the workers' part itself, so nothing it does is handed to
    background jobs (no provision, expiry or admission job is enqueued); with a real worker
    running, such a job would race the factory. Everything stored in the database is exactly
    what the lifecycle writes.
    """
    start_at = at or timezone.now() - ready_after
    ready_at = start_at + ready_after
    actor = lifecycle.Actor.of(owner) if owner is not None else lifecycle.SCHEDULER
    path = _PATHS[Status(status)]
    limits = {
        "DEMO_MAX_ACTIVE_PER_USER": _UNLIMITED,
        "DEMO_MAX_ACTIVE_TOTAL": 0 if path[0] == "queue" else _UNLIMITED,
        "DEMO_SIM_STEP_SECONDS": 0,
        "DEMO_SIM_FAIL_STEP": "",
        "DEMO_SIM_FAIL_TEMPLATES": [],
        "DEMO_SIM_FAIL_RATE": 0,
        "DEMO_SIM_ERROR_RATE": 0,
    }
    # Everything `dispatch` hands to a worker: the factory does that work itself.
    handoffs = ("enqueue_step", "schedule_expiry", "cancel_expiry", "request_pool_refill")
    with (
        override_settings(**limits),
        mock.patch.multiple(dispatch, **dict.fromkeys(handoffs, _nothing)),
        mock.patch.object(capacity, "request_admission", _nothing),
        time_machine.travel(start_at, tick=False) as clock,
    ):
        if is_spare:
            demo = lifecycle.start_spare(template=template)
        else:
            demo = lifecycle.start_demo(template=template, owner=owner, **start)
        for step in path[1:]:
            if step == "ready":
                clock.move_to(ready_at)
            demo = _advance(demo, step, actor, (error_message, error_detail))
        if status == Status.READY:
            for _ in range(extensions):
                demo = lifecycle.extend_demo(demo=demo, actor=actor)
    demo.refresh_from_db()
    return demo


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _advance(demo: Demo, step: str, actor: lifecycle.Actor, error: tuple[str, str]) -> Demo:
    """One step of `make_demo`'s path: what the person, the worker and the backend each do."""
    backend = SimulatedBackend()
    match step:
        case "provision":
            demo = lifecycle.begin_provisioning(demo)
            backend.apply(demo.spec)
            return demo
        case "install":
            charts = demo.spec["charts"]
            message = f"Installing {charts[0]['name']}." if charts else "Checking the app."
            observation = Observation(Phase.INSTALLING, message)
            return lifecycle.record_start(demo, demo.steps, observation)
        case "fail":
            return lifecycle.fail_demo(demo, *error)
        case "ready":
            return work_until_it_moves(demo, operations.provision)
        case "pause":
            return lifecycle.pause_demo(demo=demo, actor=actor)
        case "paused":
            return work_until_it_moves(demo, operations.pause)
        case "resume":
            return lifecycle.resume_demo(demo=demo, actor=actor)
        case "sleep":
            return lifecycle.sleep_demo(demo=demo, actor=lifecycle.SCHEDULER)
        case "asleep":
            return work_until_it_moves(demo, operations.pause)
        case "wake":
            return lifecycle.wake_demo(demo=demo, actor=actor)
        case "archive":
            return lifecycle.archive_demo(demo=demo, actor=actor)
        case "archived":
            return work_until_it_moves(demo, operations.archive)
        case "delete":
            return lifecycle.delete_demo(demo=demo, actor=actor)
        case "deleted":
            return work_until_it_moves(demo, operations.delete)
    raise ValueError(f"make_demo has no step {step!r}")


def finish_delete(demo: Demo) -> Demo:
    """The worker's delete steps on a `deleting` demo, run here until it is deleted."""
    return work_until_it_moves(demo, operations.delete)


def work_until_it_moves(demo: Demo, step: Any) -> Demo:
    """Run the worker's steps on `demo` until its state changes, as the follow-up jobs would."""
    for _ in range(10):
        step(str(demo.public_id), demo.steps)
        changed = Demo.objects.get(pk=demo.pk)
        if changed.status != demo.status:
            return changed
        demo = changed
    raise AssertionError(f"{demo.status} did not move on after 10 steps")
