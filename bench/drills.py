"""`make drills`: break the portal's parts while demos start, and prove nothing is lost.

Runs the portal as in production against a PostgreSQL database of its own and a private
`redis-server` (on a free port, no persistence, so a restart loses every queued job, as a crash
of an unpersisted Redis does): gunicorn, real `manage.py runworker` processes (each in a session
of its own) and one `manage.py runcron`. A supervisor restarts any worker or cron process that
exits, with a short back-off, as Kubernetes restarts a crashed container. Demos are started and
acted on over HTTP, by a salesperson signed in through the login form, exactly as from a browser.

Every interval is the production default from portal/settings.py (the sweep every 30 s, a busy
worker's heartbeat every 10 s, a look at a starting cluster every second), and the simulated
backend takes 2 s per step, so a start takes about ten seconds and recovery is measured as it
would be in production.

Drills, each repeated (BENCH_SCALE / BENCH_DRILL_* set how often):
- strike: a worker killed at a named code point of the engine (`demos.engine.faults`), the points
  in a seeded order; a point that is never reached is reported, not waited for forever;
- kill: a worker killed with SIGKILL (with its work horse) at a seeded moment while demos start;
- scheduler: the worker running RQ's scheduler killed; how soon a job due a second later runs;
- redis: Redis down for 30 s with starts arriving meanwhile, then back empty;
- db: every database connection of the portal terminated (`pg_terminate_backend`);
- errors: backend errors injected on 30 % of calls (DEMO_SIM_ERROR_RATE=0.3), with deletes.

After each fault the drill waits until every demo it started has settled and no cluster is left
that no live demo owns, and reports the time that took; then counts demos stuck (not settled),
orphaned clusters, lost demos (accepted, then gone) and failed demos: all must be zero, except
failures in the errors drill, which are reported with their messages. A wait that times out is
recorded as a miss and the run goes on. After each round it also checks that a job scheduled one
second ahead still runs: follow-up steps, retries and expiry jobs wait for RQ's scheduler.

BENCH_DRILL_SEED fixes the seed (printed at the start and stored with the results).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import figures as fig
from bench import stack as st
from bench.client import Browser, answers_health
from bench.figures import Figure
from bench.salesperson import Answer, act, log_in, new_token, try_start
from bench.scale import Scale, from_env
from bench.strikes import FaultFile, Strike, drill_rng, operation_for, point_sequence

DRILL_DB = st.db_name("drills")
SLUG = "drill"
STEP_SECONDS = 2.0
ERROR_RATE = 0.3
# Left at their production defaults (portal/settings.py), whatever the caller's environment says:
# the drills measure recovery as it happens in production.
PRODUCTION_TIMINGS = (
    "DEMO_RECONCILE_SECONDS",
    "RQ_JOB_MONITORING_INTERVAL",
    "DEMO_OBSERVE_INTERVAL",
    "DEMO_JOB_RETRIES",
    "DEMO_SIM_ERROR_RATE",
    "DEMO_SIM_FAIL_RATE",
    "DEMO_SIM_FAIL_STEP",
    "DEMO_SIM_FAIL_TEMPLATES",
)
# A random moment while a batch starts: a start takes four 2-second steps.
KILL_WINDOW = (0.5, 8.0)
# After that moment, how long a kill may wait for a worker to be inside a job.
BUSY_WAIT = 3.0
# Starts sent while Redis is down, spread over the outage.
STARTS_WHILE_REDIS_DOWN = 4
# Demos a pause, resume, archive or delete round acts on (one reaching the point is enough).
OPERATION_DEMOS = 3
# BENCH_DRILLS=strike,db runs only those.
DRILLS = ("strike", "kill", "scheduler", "redis", "db", "errors")
# The state each operation leaves a demo in.
_OUTCOME = {
    "start": "ready",
    "pause": "paused",
    "resume": "ready",
    "archive": "archived",
    "delete": "deleted",
}


def log(message: str) -> None:
    print(f"[drills {time.strftime('%H:%M:%S')}] {message}", flush=True)


def seed_from_env(environ: dict[str, str] | None = None) -> int:
    """BENCH_DRILL_SEED, or a fresh seed (printed, so the run can be repeated)."""
    raw = (environ if environ is not None else os.environ).get("BENCH_DRILL_SEED", "").strip()
    if not raw:
        return secrets.randbelow(1_000_000)
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"BENCH_DRILL_SEED={raw!r} is not a whole number.") from None


def wait_or_miss(
    check: Callable[[], Any], timeout: float, what: str, tally: Tally | None, interval: float = 0.2
) -> bool:
    """Wait for `check`; on a timeout record a miss (in `tally`, or the log) and go on."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):  # Redis or the database may be the fault
            if check():
                return True
        if time.monotonic() >= deadline:
            if tally is not None:
                tally.miss(f"{what}: not within {timeout:g} s")
            else:
                log(f"  MISS: {what}: not within {timeout:g} s")
            return False
        time.sleep(interval)


class PrivateRedis:
    """A `redis-server` of the drill's own, so stopping it disturbs nobody else."""

    def __init__(self, logs: Path) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise st.BenchError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.logs = logs
        self.port = st.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.logs),
                "--logfile", str(self.logs / "redis.log"),
            ],
            start_new_session=True,
        )  # fmt: skip
        st.wait_until(self._answers, 20, "the drill's redis-server to answer", 0.05)

    def _answers(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def crash(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.crash()


@dataclass
class Census:
    missing: int  # accepted, and no row any more
    unsettled: int
    failed: int
    failed_silently: int  # failed without a message a salesperson could read
    unexpected_deletes: int
    wrong_state: int  # settled, not failed, and not in the state the drill asked for
    orphans: int
    messages: Counter[str] = field(default_factory=Counter)  # failure messages seen

    @property
    def recovered(self) -> bool:
        return not (self.missing or self.unsettled or self.orphans or self.unexpected_deletes)


@dataclass
class Tally:
    drill: str
    # False for the injected-errors drill: failures are what it provokes, reported not judged.
    failures_judged: bool = True
    faults: int = 0
    demos: int = 0
    stuck: int = 0
    orphaned: int = 0
    lost: int = 0
    failed: int = 0
    failed_silently: int = 0
    wrong_state: int = 0
    unrecovered: int = 0
    recover: list[float] = field(default_factory=list)
    start_errors: int = 0
    action_errors: int = 0
    restarts: int = 0
    scheduler_lost: int = 0  # rounds after which scheduled jobs no longer ran
    misses: list[str] = field(default_factory=list)  # waits that timed out, described
    failure_messages: Counter[str] = field(default_factory=Counter)
    # Drill-specific evidence that the fault really struck: name -> (value, unit, target).
    evidence: dict[str, tuple[float | None, str, str | None]] = field(default_factory=dict)

    def count(self, name: str, unit: str, by: float = 1, target: str | None = None) -> None:
        value, _unit, _target = self.evidence.get(name, (0, unit, target))
        self.evidence[name] = ((value or 0) + by, unit, target)

    def note(self, name: str, value: float | None, unit: str, target: str | None = None) -> None:
        self.evidence[name] = (value, unit, target)

    def miss(self, what: str) -> None:
        """A wait that timed out: recorded, logged, and the drill goes on."""
        self.misses.append(what)
        log(f"  MISS: {what}")

    def add_census(self, census: Census) -> None:
        self.stuck += census.unsettled
        self.orphaned += census.orphans
        self.lost += census.missing + census.unexpected_deletes
        self.failed += census.failed
        self.failed_silently += census.failed_silently
        self.wrong_state += census.wrong_state
        self.failure_messages.update(census.messages)

    def figures(self) -> list[Figure]:
        name = self.drill
        out = [
            Figure.of(f"{name}: faults injected", self.faults, "faults"),
            Figure.of(f"{name}: demos started", self.demos, "demos"),
            Figure.of(f"{name}: demos stuck", self.stuck, "demos", "== 0"),
            Figure.of(f"{name}: orphaned clusters", self.orphaned, "clusters", "== 0"),
            Figure.of(f"{name}: demos lost", self.lost, "demos", "== 0"),
            Figure.of(
                f"{name}: demos failed",
                self.failed,
                "demos",
                "== 0" if self.failures_judged else None,
            ),
            Figure.of(
                f"{name}: failed demos without a message", self.failed_silently, "demos", "== 0"
            ),
            Figure.of(
                f"{name}: demos not in the state asked for", self.wrong_state, "demos", "== 0"
            ),
            Figure.of(f"{name}: rounds not recovered in time", self.unrecovered, "rounds", "== 0"),
            Figure.of(f"{name}: waits that timed out", len(self.misses), "waits", "== 0"),
        ]
        if self.recover:
            out += [
                Figure.of(f"{name}: time to recover, median", statistics.median(self.recover), "s"),
                Figure.of(f"{name}: time to recover, max", max(self.recover), "s"),
            ]
        out.append(
            Figure.of(
                f"{name}: rounds after which scheduled jobs stopped running",
                self.scheduler_lost,
                "rounds",
                "== 0",
            )
        )
        for label, (value, unit, target) in self.evidence.items():
            out.append(Figure.of(f"{name}: {label}", value, unit, target))
        if self.start_errors:
            out.append(
                Figure.of(f"{name}: starts answered with an error", self.start_errors, "starts")
            )
        if self.action_errors:
            out.append(
                Figure.of(f"{name}: actions answered with an error", self.action_errors, "actions")
            )
        if self.restarts:
            out.append(Figure.of(f"{name}: worker/cron restarts", self.restarts, "restarts"))
        return out


class Drills:
    def __init__(self, scale: Scale, logs: Path, redis: PrivateRedis, seed: int) -> None:
        self.scale = scale
        self.redis = redis
        self.seed = seed
        self.logs = logs
        self.port = st.free_port()
        self.fault = FaultFile(logs / "fault")
        env = st.portal_env(
            DRILL_DB,
            redis.url,
            self.port,
            DEMO_SIM_STEP_SECONDS=str(STEP_SECONDS),
            DEMO_FAULT_FILE=str(self.fault.path),
            BENCH_STATIC_ROOT=str(logs / "static"),
        )
        for name in PRODUCTION_TIMINGS:
            env.pop(name, None)
        self.env = env
        self.stack = st.Stack(env, logs)
        self.accepted: list[str] = []
        self.expected: dict[str, str] = {}  # start token -> the state the drill asked for
        self.public_ids: dict[str, str] = {}  # start token -> public id
        self.restarts = 0
        self._supervising = threading.Event()
        self.browser = Browser(self.port)

    # Set-up -------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.stack.manage("migrate", "--noinput")
        self.stack.manage("collectstatic", "--noinput", "--verbosity", "0")
        os.environ.update(self.env)
        import django

        django.setup()
        from django.conf import settings

        from bench import portal_data

        self.owner = portal_data.salespeople(1, "driller")[0]
        password = secrets.token_urlsafe(16)
        self.owner.set_password(password)
        self.owner.save(update_fields=["password"])
        portal_data.template(SLUG)
        self.reconcile_seconds = float(settings.DEMO_RECONCILE_SECONDS)
        self.monitoring = float(settings.RQ_JOB_MONITORING_INTERVAL)
        log(
            f"production timings: sweep every {self.reconcile_seconds:g} s, heartbeat every "
            f"{self.monitoring:g} s, observe every {settings.DEMO_OBSERVE_INTERVAL:g} s, "
            f"{STEP_SECONDS:g} s per simulated step"
        )
        self.stack.start_web(self.port, self.scale.web_workers, self.scale.web_threads)
        st.wait_until(lambda: answers_health(self.browser), 60, "gunicorn to answer /healthz", 0.2)
        log_in(self.browser, self.owner.username, password)

    def start_workers(self, tally: Tally | None = None, **extra_env: str) -> None:
        env = {**self.env, **extra_env}
        for index in range(self.scale.drill_rq_workers):
            self.stack.start_worker(index, env)
        wait_or_miss(
            lambda: st.worker_count(self.redis.url) >= self.scale.drill_rq_workers,
            60,
            "the workers to register",
            tally,
        )

    def stop_supervising(self) -> None:
        self._supervising.clear()

    def retire_workers(self) -> None:
        for proc in self.stack.workers():
            self.stack.retire(proc)

    def supervise(self) -> None:
        """Restart exited workers and cron, as Kubernetes would (see `Stack.restart_exited`)."""
        self._supervising.set()

        def loop() -> None:
            while self._supervising.is_set():
                self.restarts += self.stack.restart_exited()
                time.sleep(0.25)

        threading.Thread(target=loop, name="supervisor", daemon=True).start()

    # Demos, over HTTP ----------------------------------------------------------------------

    def start_one(self, tally: Tally) -> tuple[str, Answer]:
        """POST the start form once; the token, and how the portal answered."""
        token = new_token()
        answer = try_start(self.browser, SLUG, token)
        if not answer.demo_page:
            tally.start_errors += 1
            log(f"  a start answered {answer.status}: {answer.detail[:160]!r}")
        # Accepted once its row is committed, even when the answer was an error: the
        # salesperson may reload and find it there.
        public_id = self._db(lambda: self._public_id(token))
        if public_id:
            self.accepted.append(token)
            self.expected[token] = _OUTCOME["start"]
            self.public_ids[token] = public_id
            tally.demos += 1
        return token, answer

    def start_batch(self, count: int, tally: Tally) -> list[str]:
        """Start `count` demos; the tokens of those the portal accepted."""
        tokens = []
        for _ in range(count):
            token, _answer = self.start_one(tally)
            if token in self.public_ids:
                tokens.append(token)
        return tokens

    def act_on(self, tokens: list[str], operation: str, tally: Tally) -> None:
        """Press the operation's button on each demo's page."""
        for token in tokens:
            answer = act(self.browser, self.public_ids[token], operation)
            if answer.status != 302:
                tally.action_errors += 1
                log(f"  {operation} answered {answer.status}: {answer.detail[:160]!r}")
                continue
            self.expected[token] = _OUTCOME[operation]

    @staticmethod
    def _public_id(token: str) -> str:
        from demos.models import Demo

        found = Demo.objects.filter(start_token=token).values_list("public_id", flat=True).first()
        return str(found) if found else ""

    def demos_in(self, status: str, count: int, exclude: set[str]) -> list[str]:
        """Up to `count` tokens of this drill's demos now in `status`."""
        from demos.models import Demo

        tokens = Demo.objects.filter(
            start_token__in=[t for t in self.accepted if t not in exclude], status=status
        ).values_list("start_token", flat=True)
        return sorted(tokens)[:count]

    def census(self, tokens: list[str]) -> Census:
        return self._db(lambda: self._census(tokens))

    def _census(self, tokens: list[str]) -> Census:
        from demos.models import SETTLED, Demo, SimulatedCluster, Status

        rows = {
            token: (status, message)
            for token, status, message in Demo.objects.filter(start_token__in=tokens).values_list(
                "start_token", "status", "error_message"
            )
        }
        live = Demo.objects.owning_clusters().values("cluster_name")
        failed = [message for status, message in rows.values() if status == Status.FAILED]
        return Census(
            missing=sum(1 for token in tokens if token not in rows),
            unsettled=sum(1 for status, _m in rows.values() if status not in SETTLED),
            failed=len(failed),
            failed_silently=sum(1 for message in failed if not message.strip()),
            unexpected_deletes=sum(
                1
                for token, (status, _m) in rows.items()
                if status == Status.DELETED and self.expected.get(token) != Status.DELETED
            ),
            wrong_state=sum(
                1
                for token, (status, _m) in rows.items()
                if status in SETTLED
                and status not in (Status.FAILED, Status.DELETED)
                and status != self.expected.get(token, status)
            ),
            orphans=SimulatedCluster.objects.exclude(name__in=live).count(),
            messages=Counter(message.strip()[:160] for message in failed),
        )

    def wait_recovered(
        self, tokens: list[str], since: float, tally: Tally, what: str, *, timed: bool = True
    ) -> Census:
        """Wait until the round's demos have settled and no cluster is orphaned; count what is
        wrong then. A round that does not recover in time is a miss, and the drill goes on.
        With `timed`, the time from `since` is one of the drill's times to recover."""
        deadline = since + self.scale.drill_recover_timeout
        while True:
            census = self.census(tokens)
            if census.recovered:
                if timed:
                    tally.recover.append(time.monotonic() - since)
                break
            if time.monotonic() > deadline:
                tally.unrecovered += 1
                tally.miss(f"{what}: not recovered within {self.scale.drill_recover_timeout:g} s")
                break
            time.sleep(0.25)
        tally.add_census(census)
        log(f"  {what}: {self._describe(census, tally, timed)}")
        return census

    def _db[T](self, query: Callable[[], T]) -> T:
        """Run `query`, reconnecting once if the connection was dropped under it (the db drill)."""
        from django.db import DatabaseError

        try:
            return query()
        except DatabaseError:
            self._reset_db()
            return query()

    def _reset_db(self) -> None:
        from django.db import connections

        connections.close_all()

    def _live_workers(self) -> list[st.Proc]:
        return sorted(self.stack.workers(), key=lambda proc: (proc.name, proc.pid))

    # Strikes at named points ---------------------------------------------------------------

    def strike_points(self) -> Tally:
        from demos.engine import faults

        tally = Tally("strike at named points")
        rounds = self.scale.drill_strike_rounds
        sequence = point_sequence(self.seed, rounds, faults.POINTS)
        log(f"  points in order (seed {self.seed}): {', '.join(sequence)}")
        unreached: Counter[str] = Counter()
        recovered_after: dict[str, list[float]] = {}
        for round_, point in enumerate(sequence, 1):
            operation = operation_for(point)
            label = f"strike round {round_} ({point})"
            tokens = self.prepare_operation(operation, tally, label)
            if tokens is None:
                continue
            workers_before = self._live_workers()
            self.fault.arm(point)
            armed = time.monotonic()
            if operation == "start":
                tokens = self.start_batch(self.scale.drill_demos, tally)
            else:
                self.act_on(tokens, operation, tally)
            hit = self.wait_for_strike(self.scale.drill_strike_timeout)
            if hit is None:
                unreached[point] += 1
                tally.miss(f"{label}: armed, never reached")
                since = armed
            else:
                since = time.monotonic()
                tally.faults += 1
                self.record_strike(hit, workers_before, tally)
            census = self.wait_recovered(tokens, since, tally, label, timed=hit is not None)
            if hit is not None and census.recovered:
                recovered_after.setdefault(point, []).append(tally.recover[-1])
            self.fault.clear()
            self.check_scheduler(tally)
        tally.note("points armed but never reached", sum(unreached.values()), "points", "== 0")
        for point in faults.POINTS:
            if point in recovered_after:
                tally.note(
                    f"{point}: time to recover", statistics.median(recovered_after[point]), "s"
                )
        return tally

    def prepare_operation(self, operation: str, tally: Tally, label: str) -> list[str] | None:
        """The demos a round acts on: none for starts (the round starts its own), ready demos
        for pause, archive and delete, paused ones for resume. Made (unarmed) when missing."""
        if operation == "start":
            return []
        wanted = "paused" if operation == "resume" else "ready"
        have = self._db(lambda: self.demos_in(wanted, OPERATION_DEMOS, set()))
        if len(have) < OPERATION_DEMOS:
            fresh = self.start_batch(OPERATION_DEMOS - len(have), tally)
            if not wait_or_miss(
                lambda: not self.census(fresh).unsettled,
                self.scale.drill_recover_timeout,
                f"{label}: demos to act on to start",
                tally,
            ):
                return None
            if wanted == "paused":
                ready = [t for t in fresh if self._status(t) == "ready"]
                self.act_on(ready, "pause", tally)
                if not wait_or_miss(
                    lambda: not self.census(ready).unsettled,
                    self.scale.drill_recover_timeout,
                    f"{label}: demos to resume to pause",
                    tally,
                ):
                    return None
            have = self._db(lambda: self.demos_in(wanted, OPERATION_DEMOS, set()))
        if not have:
            tally.miss(f"{label}: no {wanted} demo to act on")
            return None
        return have

    def _status(self, token: str) -> str:
        from demos.models import Demo

        return self._db(
            lambda: (
                Demo.objects.filter(start_token=token).values_list("status", flat=True).first()
                or ""
            )
        )

    def wait_for_strike(self, timeout: float) -> Strike | None:
        """The strike, once a worker reached the armed point; None when none did in time (the
        point is disarmed then, unless a worker claimed it at that very moment)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = self.fault.struck()
            if hit is not None:
                return hit
            time.sleep(0.05)
        if self.fault.disarm():
            return None
        # Claimed at the last moment: give the striking process a moment to say where.
        with contextlib.suppress(st.BenchError):
            return st.wait_until(self.fault.struck, 5, "the struck point's record", 0.05)
        return None

    def record_strike(self, hit: Strike, before: list[st.Proc], tally: Tally) -> None:
        """What the strike killed: the point is meant to take the worker down with its work horse
        (as losing the pod would); if only the process running the job died, say so."""
        time.sleep(1.0)  # the kernel delivers SIGKILL at once; the exit is reaped by then
        died = [proc for proc in before if not proc.alive()]
        whole = any(proc.pid == hit.pid for proc in before) or bool(died)
        tally.count("strikes that killed the whole worker", "strikes", int(whole))
        tally.count(
            "strikes that killed only the process running the job",
            "strikes",
            int(not whole),
            "== 0",
        )
        log(
            f"  struck {hit.point} in pid {hit.pid}: "
            + ("the worker died" if whole else "only that process died; its worker lives on")
        )

    # Kills at a seeded moment --------------------------------------------------------------

    def kill_worker(self) -> Tally:
        tally = Tally("worker killed (SIGKILL)")
        rng = drill_rng(self.seed, "kill")
        for round_ in range(self.scale.drill_rounds):
            tokens = self.start_batch(self.scale.drill_demos, tally)
            time.sleep(rng.uniform(*KILL_WINDOW))
            busy = self.busy_workers_soon(BUSY_WAIT)
            victim = rng.choice(busy or self._live_workers())
            scheduler = self.scheduler_worker()
            if round_ == 0 and scheduler is not None:
                # Once on purpose: the worker whose child runs RQ's scheduler, which moves
                # follow-up steps, retries and expiry jobs to their queues when they are due.
                victim = scheduler
            struck = time.monotonic()
            self.stack.kill(victim)
            tally.faults += 1
            tally.count("kills that caught a job running", "kills", int(victim in busy))
            tally.count(
                "kills of the worker running RQ's scheduler", "kills", int(victim is scheduler)
            )
            self.wait_recovered(tokens, struck, tally, f"kill round {round_ + 1}")
            self.check_scheduler(tally)
        return tally

    def busy_workers_soon(self, timeout: float) -> list[st.Proc]:
        """The workers running a job, as soon as one is: steps are short, so at a random moment
        every worker may be between jobs, and a kill then loses nothing in flight."""
        deadline = time.monotonic() + timeout
        while True:
            busy = sorted(self.stack.busy_workers(), key=lambda proc: (proc.name, proc.pid))
            if busy or time.monotonic() >= deadline:
                return busy
            time.sleep(0.01)

    # Redis down ---------------------------------------------------------------------------

    def redis_down(self) -> Tally:
        down = self.scale.drill_redis_down
        tally = Tally(f"Redis down {down:g} s")
        rng = drill_rng(self.seed, "redis")
        answers: Counter[str] = Counter()
        pages: Counter[str] = Counter()
        for round_ in range(self.scale.drill_redis_rounds):
            tokens = self.start_batch(self.scale.drill_demos, tally)
            time.sleep(rng.uniform(*KILL_WINDOW))
            struck = time.monotonic()
            self.redis.crash()
            tally.faults += 1
            # Salespeople keep clicking "Start demo" while Redis is away: each start must still
            # be accepted (its row commits; the sweep enqueues its work once Redis is back).
            for index in range(STARTS_WHILE_REDIS_DOWN):
                at = struck + down * (index + 1) / (STARTS_WHILE_REDIS_DOWN + 1)
                time.sleep(max(0.0, at - time.monotonic()))
                token, answer = self.start_one(tally)
                answers[str(answer.status)] += 1
                if token in self.public_ids:
                    tokens.append(token)
                if answer.demo_page:
                    page = self._get(answer.demo_page)
                    pages[str(page)] += 1
            time.sleep(max(0.0, struck + down - time.monotonic()))
            self.redis.start()
            self.wait_recovered(tokens, struck, tally, f"redis round {round_ + 1}")
            self.check_scheduler(tally)
        sent = sum(answers.values())
        refused = sent - answers.get("302", 0)
        tally.note("starts sent while Redis was down", sent, "starts")
        tally.note("of those, not answered with the demo's page", refused, "starts", "== 0")
        tally.note(
            "demo pages that did not open while Redis was down",
            sum(n for status, n in pages.items() if status != "200"),
            "pages",
            "== 0",
        )
        log(f"  answers to starts while Redis was down: {dict(answers)}; pages: {dict(pages)}")
        return tally

    def _get(self, path: str) -> int:
        try:
            return self.browser.get(path).status
        except OSError:
            self.browser.close()
            return 0

    # Database connections dropped -----------------------------------------------------------

    def drop_connections(self) -> Tally:
        import psycopg

        tally = Tally("database connections dropped")
        rng = drill_rng(self.seed, "db")
        for round_ in range(self.scale.drill_rounds):
            tokens = self.start_batch(self.scale.drill_demos, tally)
            time.sleep(rng.uniform(*KILL_WINDOW))
            struck = time.monotonic()
            with psycopg.connect(st.require_loopback(st.PG_ADMIN_URL), autocommit=True) as admin:
                row = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [DRILL_DB],
                ).fetchone()
            tally.faults += 1
            tally.count("connections terminated", "connections", int(row[0]) if row else 0)
            # The next salesperson's request meets the web processes' dropped connections.
            tokens += self.start_batch(1, tally)
            self.wait_recovered(tokens, struck, tally, f"connections round {round_ + 1}")
            self.check_scheduler(tally)
        return tally

    # Injected backend errors ---------------------------------------------------------------

    def backend_errors(self) -> Tally:
        from demos.models import DemoEvent

        tally = Tally(f"backend errors at {ERROR_RATE:.0%}", failures_judged=False)
        log("  restarting the workers with DEMO_SIM_ERROR_RATE set")
        self.retire_workers()
        self.start_workers(tally, DEMO_SIM_ERROR_RATE=str(ERROR_RATE))
        for round_ in range(self.scale.drill_error_rounds):
            began = time.monotonic()
            tokens = self.start_batch(self.scale.drill_demos * 2, tally)
            wait_or_miss(
                lambda t=tokens: not self.census(t).unsettled,
                self.scale.drill_recover_timeout,
                f"errors round {round_ + 1}: the starts to settle",
                tally,
            )
            # Delete half of those that became ready: the delete path meets the errors too.
            ready = [t for t in tokens if self._status(t) == "ready"]
            self.act_on(ready[: len(ready) // 2], "delete", tally)
            tally.faults += 1
            self.wait_recovered(tokens, began, tally, f"errors round {round_ + 1}")
            # Each transient error a step met is on the demo's timeline as "retrying".
            retried = DemoEvent.objects.filter(demo__start_token__in=tokens, kind="retrying")
            tally.count("job attempts ended by an injected error", "attempts", retried.count())
            self.check_scheduler(tally, DEMO_SIM_ERROR_RATE=str(ERROR_RATE))
        self.retire_workers()
        self.start_workers(tally)
        return tally

    # RQ's scheduler -----------------------------------------------------------------------

    def scheduled_jobs_run(self) -> bool:
        """Whether RQ's scheduler still moves due jobs to their queues: follow-up steps,
        retries after a transient error and every demo's expiry job wait in RQ's scheduled
        registry until a worker's scheduler process enqueues them."""
        return self.time_until_a_scheduled_job_runs(30) is not None

    def time_until_a_scheduled_job_runs(self, timeout: float) -> float | None:
        """Seconds from enqueueing a harmless job (the cron heartbeat) due in one second until it
        finished, or None when it did not within `timeout`."""
        import django_rq
        from redis.exceptions import RedisError

        began = time.monotonic()
        job = None
        try:
            queue = django_rq.get_queue("maintenance", commit_mode="auto")
            job = queue.enqueue_in(
                timedelta(seconds=1), "portal.health.record_heartbeat", result_ttl=600
            )
            st.wait_until(
                lambda: job.get_status(refresh=True) == "finished", timeout, "the probe job", 0.2
            )
        except st.BenchError:
            with contextlib.suppress(RedisError):
                if job is not None:
                    job.delete()
            return None
        except RedisError:
            return None
        return time.monotonic() - began

    def kill_scheduler(self) -> list[Figure]:
        """The worker running RQ's scheduler killed (with the scheduler): how long until a job
        that falls due a second later runs."""
        name = "scheduler's worker killed"
        tally = Tally(name)
        ran: list[float] = []
        rounds = max(self.scale.drill_rounds, 1)
        for round_ in range(rounds):
            wait_or_miss(
                lambda: self.scheduler_worker() is not None,
                60,
                f"scheduler round {round_ + 1}: a worker running the scheduler",
                tally,
            )
            victim = self.scheduler_worker()
            if victim is None:
                continue
            self.stack.kill(victim)
            waited = self.time_until_a_scheduled_job_runs(120)
            if waited is None:
                tally.miss(f"scheduler round {round_ + 1}: the due job did not run within 120 s")
                self.check_scheduler(tally)  # restarts the workers for the next round
                continue
            log(f"  scheduler round {round_ + 1}: a job due in 1 s ran after {waited:.1f} s")
            ran.append(waited)
        return [
            Figure.of(f"{name}: faults injected", rounds, "faults"),
            Figure.of(f"{name}: due jobs not run in 120 s", rounds - len(ran), "jobs", "== 0"),
            Figure.of(
                f"{name}: job due 1 s after the kill ran after, median",
                statistics.median(ran) if ran else None,
                "s",
            ),
            Figure.of(
                f"{name}: job due 1 s after the kill ran after, max",
                max(ran) if len(ran) == rounds else None,
                "s",
                "<= 30",
            ),
            Figure.of(f"{name}: waits that timed out", len(tally.misses), "waits", "== 0"),
        ]

    def check_scheduler(self, tally: Tally, **worker_env: str) -> None:
        """After each round: do scheduled jobs still run? When not, count it against the drill
        and replace the workers (as a rollout would), so the next round is a round of its own."""
        if self.scheduled_jobs_run():
            return
        tally.scheduler_lost += 1
        log("  scheduled jobs no longer run (no RQ scheduler): restarting the workers")
        self.retire_workers()
        # A killed scheduler leaves its lock behind for another minute, and new workers would
        # find it taken: clear it, as an operator would, so the next round starts healthy.
        import django_rq

        with contextlib.suppress(Exception):
            redis = django_rq.get_connection("maintenance")
            for key in redis.scan_iter("rq:scheduler-lock:*"):
                redis.delete(key)
        self.start_workers(tally, **worker_env)

    def scheduler_worker(self) -> st.Proc | None:
        """The worker whose child process is RQ's scheduler (the one holding its lock)."""
        for proc in self._live_workers():
            if any(not st.is_work_horse(pid) for pid in st.children_of({proc.pid})):
                return proc
        return None

    def final_check(self) -> list[Figure]:
        """One more reconcile period after everything, over every demo the drills started."""
        time.sleep(self.reconcile_seconds + 1)
        census = self.census(self.accepted)
        return [
            Figure.of("after all drills: demos stuck", census.unsettled, "demos", "== 0"),
            Figure.of("after all drills: orphaned clusters", census.orphans, "clusters", "== 0"),
            Figure.of(
                "after all drills: demos lost",
                census.missing + census.unexpected_deletes,
                "demos",
                "== 0",
            ),
        ]

    @staticmethod
    def _describe(census: Census, tally: Tally, timed: bool) -> str:
        if not census.recovered:
            took = "NOT recovered"
        else:
            took = f"recovered in {tally.recover[-1]:.1f} s" if timed else "settled"
        failed = f", failed {census.failed}" if census.failed else ""
        return (
            f"{took}; unsettled {census.unsettled}, orphans {census.orphans}, "
            f"missing {census.missing}{failed}"
        )


def chosen_drills(environ: dict[str, str] | None = None) -> list[str]:
    raw = (environ if environ is not None else os.environ).get("BENCH_DRILLS", "")
    wanted = [part.strip() for part in raw.split(",") if part.strip()] or list(DRILLS)
    unknown = set(wanted) - set(DRILLS)
    if unknown:
        raise SystemExit(f"BENCH_DRILLS: unknown {', '.join(sorted(unknown))}; use {DRILLS}")
    return [drill for drill in DRILLS if drill in wanted]


def main() -> int:
    scale = from_env()
    seed = seed_from_env()
    drills = chosen_drills()
    log(f"scale {scale.name}; seed {seed} (BENCH_DRILL_SEED={seed} repeats this run)")
    stamp = st.run_stamp(scale.name, drills, 1)
    stamp["seed"] = seed
    log(f"drills {', '.join(drills)}; {stamp}")
    began = time.monotonic()
    try:
        return _run(scale, seed, drills, began, stamp)
    except st.BenchError as exc:
        print(f"drills: {exc}", file=sys.stderr)
        return 1


def _run(scale: Scale, seed: int, chosen: list[str], began: float, stamp: dict[str, Any]) -> int:
    results: list[Figure] = [Figure.of("drill seed", seed, "seed")]
    notes: list[str] = []
    with st.scratch_dir("portal-drills-") as logs:
        redis = PrivateRedis(logs)
        drills: Drills | None = None
        try:
            redis.start()
            st.recreate_database(DRILL_DB)
            drills = Drills(scale, logs, redis, seed)
            drills.prepare()
            drills.start_workers()
            drills.stack.start_cron()
            drills.supervise()
            for key, name, run in (
                ("strike", "workers killed at named code points", drills.strike_points),
                ("kill", "a worker killed with SIGKILL while demos start", drills.kill_worker),
                ("scheduler", "the worker running RQ's scheduler killed", drills.kill_scheduler),
                ("redis", f"Redis down for {scale.drill_redis_down:g} s", drills.redis_down),
                ("db", "every database connection terminated", drills.drop_connections),
                ("errors", f"backend errors on {ERROR_RATE:.0%} of calls", drills.backend_errors),
            ):
                if key not in chosen:
                    continue
                log(f"drill: {name}")
                restarts = drills.restarts
                drill_began = time.monotonic()
                outcome = run()
                if isinstance(outcome, Tally):
                    outcome.restarts = drills.restarts - restarts
                    notes += [f"{outcome.drill}: {miss}" for miss in outcome.misses]
                    notes += [
                        f"{outcome.drill}: failed {count}x: {message}"
                        for message, count in outcome.failure_messages.most_common(5)
                    ]
                    outcome = outcome.figures()
                results += outcome
                results.append(
                    Figure.of(f"drill {key}: time taken", time.monotonic() - drill_began, "s")
                )
            results += drills.final_check()
        finally:
            if drills is not None:
                drills.stop_supervising()
                drills.browser.close()
                drills.stack.stop()
            st.close_django_connections()
            st.drop_database(DRILL_DB)
            redis.stop()
    latest, kept = fig.report(
        [results],
        {**stamp, "seconds": round(time.monotonic() - began)},
        f"Demo portal fault drills ({scale.name} scale)",
        "drills",
        complete=chosen == list(DRILLS),
    )
    for note in notes:
        print(f"note: {note}")
    wrote = f"{latest.name} and " if latest != kept else "(only some ran) "
    log(f"done in {time.monotonic() - began:.0f} s; wrote {wrote}runs/{kept.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
