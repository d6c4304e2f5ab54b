"""`make drills`: break the portal's parts while demos start, and prove nothing is lost.

Runs real `manage.py runworker` processes and one `manage.py runcron` against a PostgreSQL
database of its own and a private `redis-server` (on a free port, no persistence, so a restart
loses every queued job, as a crash of an unpersisted Redis does). A supervisor restarts any worker
or cron process that exits, as Kubernetes restarts a crashed container. Demos are started through
`lifecycle.start_demo`, the service the start view calls.

Drills, each repeated (BENCH_SCALE / BENCH_DRILL_* set how often):
- a worker killed with SIGKILL (with its work horse) at a random moment while demos provision;
- Redis killed and restarted empty mid-flight, with starts arriving while it is down;
- every database connection of the portal terminated (`pg_terminate_backend`);
- backend errors injected on 30 % of calls (DEMO_SIM_ERROR_RATE=0.3), with deletes as well.

After each fault the drill waits until every demo it started has settled and no cluster is left
that no live demo owns, and reports the time that took; then counts demos stuck (not settled),
orphaned clusters and lost demos (accepted, then gone). All three must be zero. After each round
it also checks that a job scheduled one second ahead still runs: retries after a transient error
and every demo's expiry job wait for RQ's scheduler, which lives in one of the workers.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bench import figures as fig
from bench import stack as st
from bench.figures import Figure
from bench.scale import Scale, from_env

DRILL_DB = "portal_drills"
# The sweep runs this often during drills, so recovery is measured in reconcile periods of
# seconds, not the default thirty.
RECONCILE_SECONDS = 5
# A busy worker's heartbeat interval. The sweep treats a job silent for three intervals (plus
# five seconds) as lost, so this sets how soon a killed worker's job is started again.
MONITORING_INTERVAL = 2
# Simulated step time: control plane, two charts and the app check take about two seconds,
# which leaves a window to strike while a demo provisions.
STEP_SECONDS = 0.5
ERROR_RATE = 0.3
# BENCH_DRILLS=kill,db runs only those.
DRILLS = ("kill", "scheduler", "redis", "db", "errors")
# States in which a failed demo still owns its cluster (demos.engine.reconcile keeps these).
_FAILED_KEEPING = ("pausing", "resuming", "archiving", "paused")


def log(message: str) -> None:
    print(f"[drills {time.strftime('%H:%M:%S')}] {message}", flush=True)


class PrivateRedis:
    """A `redis-server` of the drill's own, so restarting it disturbs nobody else."""

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
    unexpected_deletes: int
    orphans: int

    @property
    def recovered(self) -> bool:
        return not (self.missing or self.unsettled or self.orphans or self.unexpected_deletes)


@dataclass
class Tally:
    drill: str
    faults: int = 0
    demos: int = 0
    stuck: int = 0
    orphaned: int = 0
    lost: int = 0
    failed: int = 0
    unrecovered: int = 0
    recover: list[float] = field(default_factory=list)
    start_errors: int = 0
    restarts: int = 0
    scheduler_lost: int = 0  # rounds after which scheduled jobs no longer ran
    # Drill-specific evidence that the fault really struck: name -> (value, unit).
    evidence: dict[str, tuple[float, str]] = field(default_factory=dict)

    def count(self, name: str, unit: str, by: float = 1) -> None:
        value, _unit = self.evidence.get(name, (0, unit))
        self.evidence[name] = (value + by, unit)

    def figures(self) -> list[Figure]:
        name = self.drill
        out = [
            Figure.of(f"{name}: faults injected", self.faults, "faults"),
            Figure.of(f"{name}: demos started", self.demos, "demos"),
            Figure.of(f"{name}: demos stuck", self.stuck, "demos", "== 0"),
            Figure.of(f"{name}: orphaned clusters", self.orphaned, "clusters", "== 0"),
            Figure.of(f"{name}: demos lost", self.lost, "demos", "== 0"),
            Figure.of(f"{name}: rounds not recovered in time", self.unrecovered, "rounds", "== 0"),
            Figure.of(f"{name}: demos failed with a message", self.failed, "demos"),
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
        for label, (value, unit) in self.evidence.items():
            out.append(Figure.of(f"{name}: {label}", value, unit))
        if self.start_errors:
            out.append(
                Figure.of(f"{name}: starts answered with an error", self.start_errors, "starts")
            )
        if self.restarts:
            out.append(Figure.of(f"{name}: worker/cron restarts", self.restarts, "restarts"))
        return out


class Drills:
    def __init__(self, scale: Scale, logs: Path, redis: PrivateRedis) -> None:
        self.scale = scale
        self.redis = redis
        self.env = st.portal_env(
            DRILL_DB,
            redis.url,
            8000,
            DEMO_SIM_STEP_SECONDS=str(STEP_SECONDS),
            DEMO_RECONCILE_SECONDS=str(RECONCILE_SECONDS),
            RQ_JOB_MONITORING_INTERVAL=str(MONITORING_INTERVAL),
        )
        self.stack = st.Stack(self.env, logs)
        self.accepted: list[str] = []
        self.deleted: set[str] = set()
        self.restarts = 0
        self._supervising = threading.Event()

    # Set-up -------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.stack.manage("migrate", "--noinput")
        os.environ.update(self.env)
        import django

        django.setup()
        from bench import portal_data

        self.owner = portal_data.salespeople(1, "driller")[0]
        self.template = portal_data.template("drill")

    def start_workers(self, **extra_env: str) -> None:
        env = {**self.env, **extra_env}
        for index in range(self.scale.drill_rq_workers):
            self.stack.start_worker(index, env)
        st.wait_until(
            lambda: st.worker_count(self.redis.url) >= self.scale.drill_rq_workers,
            60,
            "the drill's workers",
            0.2,
        )

    def stop_supervising(self) -> None:
        self._supervising.clear()

    def retire_workers(self) -> None:
        for proc in self.stack.workers():
            self.stack.retire(proc)

    def supervise(self) -> None:
        """Restart exited workers and cron every half second, as Kubernetes would."""
        self._supervising.set()

        def loop() -> None:
            while self._supervising.is_set():
                self.restarts += self.stack.restart_exited()
                time.sleep(0.5)

        threading.Thread(target=loop, name="supervisor", daemon=True).start()

    # Demos --------------------------------------------------------------------------------

    def start_batch(self, count: int, tally: Tally) -> list[str]:
        """Start `count` demos; the tokens of those the portal accepted (its row committed)."""
        from demos.engine import lifecycle
        from demos.models import Demo

        tokens = []
        for _ in range(count):
            token = secrets.token_urlsafe(16)
            try:
                lifecycle.start_demo(
                    template=self.template,
                    owner=self.owner,
                    prospect_company="Drill Corp",
                    start_token=token,
                )
            except Exception:  # whatever a salesperson would see as an error page
                tally.start_errors += 1
                self._reset_db()
            # Accepted once its row is committed, even when the answer was an error (the
            # enqueue after commit failed): the salesperson may reload and find it there.
            if self._db(lambda t=token: Demo.objects.filter(start_token=t).exists()):
                tokens.append(token)
        self.accepted += tokens
        tally.demos += len(tokens)
        return tokens

    def census(self, tokens: list[str]) -> Census:
        return self._db(lambda: self._census(tokens))

    def _census(self, tokens: list[str]) -> Census:
        from django.db.models import Q

        from demos.models import SETTLED, WORKING, Demo, SimulatedCluster, Status

        rows = dict(
            Demo.objects.filter(start_token__in=tokens).values_list("start_token", "status")
        )
        live = Demo.objects.filter(
            Q(status__in=WORKING | {Status.READY, Status.PAUSED})
            | Q(status=Status.FAILED, failed_from__in=_FAILED_KEEPING)
        ).values("cluster_name")
        return Census(
            missing=sum(1 for token in tokens if token not in rows),
            unsettled=sum(1 for status in rows.values() if status not in SETTLED),
            failed=sum(1 for status in rows.values() if status == Status.FAILED),
            unexpected_deletes=sum(
                1
                for token, status in rows.items()
                if status == Status.DELETED and token not in self.deleted
            ),
            orphans=SimulatedCluster.objects.exclude(name__in=live).count(),
        )

    def wait_recovered(self, tokens: list[str], since: float, tally: Tally) -> Census:
        deadline = since + self.scale.drill_recover_timeout
        while True:
            census = self.census(tokens)
            if census.recovered:
                tally.recover.append(time.monotonic() - since)
                break
            if time.monotonic() > deadline:
                tally.unrecovered += 1
                break
            time.sleep(0.2)
        tally.stuck += census.unsettled
        tally.orphaned += census.orphans
        tally.lost += census.missing + census.unexpected_deletes
        tally.failed += census.failed
        return census

    def _db[T](self, query: Callable[[], T]) -> T:
        """Run `query`, reconnecting once if the connection was dropped under it (drill 3)."""
        from django.db import DatabaseError

        try:
            return query()
        except DatabaseError:
            self._reset_db()
            return query()

    def _reset_db(self) -> None:
        from django.db import connections

        connections.close_all()

    # The drills ---------------------------------------------------------------------------

    def strike_window(self) -> float:
        """A random moment while the batch provisions (each demo takes about two seconds, and
        the workers take a batch a few at a time)."""
        return random.uniform(0.2, 2.5)

    def kill_worker(self) -> Tally:
        tally = Tally("worker killed (SIGKILL)")
        for round_ in range(self.scale.drill_rounds):
            tokens = self.start_batch(self.scale.drill_demos, tally)
            time.sleep(self.strike_window())
            busy = self.stack.busy_workers()
            victim = random.choice(busy or self.stack.workers())
            scheduler = self.scheduler_worker()
            if round_ == 0 and scheduler is not None:
                # Once on purpose: the worker whose child runs RQ's scheduler, which moves
                # retries and expiry jobs to their queues when they are due.
                victim = scheduler
            struck = time.monotonic()
            self.stack.kill(victim)
            tally.faults += 1
            tally.count("kills that caught a job running", "kills", int(victim in busy))
            tally.count(
                "kills of the worker running RQ's scheduler", "kills", int(victim is scheduler)
            )
            census = self.wait_recovered(tokens, struck, tally)
            log(f"  kill round {round_ + 1}: {self._describe(census, tally)}")
            self.check_scheduler(tally)
        return tally

    def restart_redis(self) -> Tally:
        tally = Tally("Redis restarted empty")
        for round_ in range(self.scale.drill_rounds):
            tokens = self.start_batch(self.scale.drill_demos, tally)
            time.sleep(self.strike_window())
            struck = time.monotonic()
            self.redis.crash()
            tally.faults += 1
            # Salespeople keep clicking "Start demo" while Redis is away.
            tokens += self.start_batch(2, tally)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - struck)))
            self.redis.start()
            census = self.wait_recovered(tokens, struck, tally)
            log(f"  redis round {round_ + 1}: {self._describe(census, tally)}")
            self.check_scheduler(tally)
        return tally

    def drop_connections(self) -> Tally:
        import psycopg

        tally = Tally("database connections dropped")
        for round_ in range(self.scale.drill_rounds):
            tokens = self.start_batch(self.scale.drill_demos, tally)
            time.sleep(self.strike_window())
            struck = time.monotonic()
            with psycopg.connect(st.require_loopback(st.PG_ADMIN_URL), autocommit=True) as admin:
                row = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [DRILL_DB],
                ).fetchone()
            tally.faults += 1
            tally.count("connections terminated", "connections", int(row[0]) if row else 0)
            census = self.wait_recovered(tokens, struck, tally)
            log(f"  connections round {round_ + 1}: {self._describe(census, tally)}")
            self.check_scheduler(tally)
        return tally

    def backend_errors(self) -> Tally:
        from demos.engine import lifecycle
        from demos.models import Demo, DemoEvent, Status

        tally = Tally(f"backend errors at {ERROR_RATE:.0%}")
        log("  restarting the workers with DEMO_SIM_ERROR_RATE set")
        self.retire_workers()
        self.start_workers(DEMO_SIM_ERROR_RATE=str(ERROR_RATE))
        for round_ in range(self.scale.drill_error_rounds):
            began = time.monotonic()
            tokens = self.start_batch(self.scale.drill_demos * 2, tally)
            st.wait_until(
                lambda t=tokens: not self.census(t).unsettled,
                self.scale.drill_recover_timeout,
                "the demos under injected errors to settle",
                0.2,
            )
            # Delete half of those that became ready: the delete path meets the errors too.
            ready = list(Demo.objects.filter(start_token__in=tokens, status=Status.READY))
            for demo in ready[: len(ready) // 2]:
                with contextlib.suppress(Exception):
                    lifecycle.delete_demo(demo=demo, actor=lifecycle.Actor(label="drill"))
                    self.deleted.add(demo.start_token)
            tally.faults += 1
            census = self.wait_recovered(tokens, began, tally)
            # Each transient error a job met is on the demo's timeline as "retrying".
            retried = DemoEvent.objects.filter(demo__start_token__in=tokens, kind="retrying")
            tally.count("job attempts ended by an injected error", "attempts", retried.count())
            log(f"  errors round {round_ + 1}: {self._describe(census, tally)}")
            self.check_scheduler(tally, DEMO_SIM_ERROR_RATE=str(ERROR_RATE))
        self.retire_workers()
        self.start_workers()
        return tally

    def scheduled_jobs_run(self) -> bool:
        """Whether RQ's scheduler still moves due jobs to their queues.

        Retries after a transient error and every demo's expiry job wait in RQ's scheduled
        registry until a worker's scheduler process enqueues them; if no scheduler runs, they
        wait."""
        return self.time_until_a_scheduled_job_runs(20) is not None

    def time_until_a_scheduled_job_runs(self, timeout: float) -> float | None:
        """Seconds from enqueueing a harmless job (the cron heartbeat) due in one second until it
        finished, or None when it did not within `timeout`."""
        import django_rq
        from redis.exceptions import RedisError

        began = time.monotonic()
        try:
            queue = django_rq.get_queue("maintenance", commit_mode="auto")
            job = queue.enqueue_in(timedelta(seconds=1), "portal.health.record_heartbeat")
            st.wait_until(
                lambda: job.get_status(refresh=True) == "finished", timeout, "the probe job", 0.2
            )
        except st.BenchError:
            with contextlib.suppress(RedisError):
                job.delete()
            return None
        except RedisError:
            return None
        return time.monotonic() - began

    def kill_scheduler(self) -> list[Figure]:
        """The worker running RQ's scheduler killed (with the scheduler): how long until a job
        that falls due a second later runs. RQ alone waits for the dead scheduler's lock to
        expire (61 s) and for another worker's maintenance."""
        name = "scheduler's worker killed"
        ran: list[float] = []
        rounds = max(self.scale.drill_rounds // 2, 1)
        for round_ in range(rounds):
            victim = st.wait_until(self.scheduler_worker, 30, "a worker running the scheduler")
            self.stack.kill(victim)
            waited = self.time_until_a_scheduled_job_runs(120)
            if waited is None:
                log(f"  scheduler round {round_ + 1}: the due job did not run within 120 s")
                self.check_scheduler(Tally(name))  # restarts the workers for the next round
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

        redis = django_rq.get_connection("maintenance")
        for key in redis.scan_iter("rq:scheduler-lock:*"):
            redis.delete(key)
        self.start_workers(**worker_env)

    def scheduler_worker(self) -> st.Proc | None:
        """The worker whose child process is RQ's scheduler (the one holding its lock)."""
        for proc in self.stack.workers():
            if any(not st.is_work_horse(pid) for pid in st.children_of({proc.pid})):
                return proc
        return None

    def final_check(self) -> list[Figure]:
        """One more reconcile period after everything, over every demo the drills started."""
        time.sleep(RECONCILE_SECONDS + 1)
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
    def _describe(census: Census, tally: Tally) -> str:
        took = f"recovered in {tally.recover[-1]:.1f} s" if census.recovered else "NOT recovered"
        return (
            f"{took}; unsettled {census.unsettled}, orphans {census.orphans}, "
            f"missing {census.missing}, failed {census.failed}"
        )


def main() -> int:
    scale = from_env()
    log(f"scale {scale.name}; machine {st.describe_machine()}")
    began = time.monotonic()
    results: list[Figure] = []
    try:
        return _run(scale, began, results)
    except st.BenchError as exc:
        print(f"drills: {exc}", file=sys.stderr)
        return 1


def _run(scale: Scale, began: float, results: list[Figure]) -> int:
    with st.scratch_dir("portal-drills-") as logs:
        redis = PrivateRedis(logs)
        drills: Drills | None = None
        try:
            redis.start()
            st.recreate_database(DRILL_DB)
            drills = Drills(scale, logs, redis)
            drills.prepare()
            drills.start_workers()
            drills.stack.start_cron()
            drills.supervise()
            chosen = os.environ.get("BENCH_DRILLS", ",".join(DRILLS)).split(",")
            for key, name, run in (
                ("kill", "worker killed with SIGKILL while demos provision", drills.kill_worker),
                ("scheduler", "the worker running RQ's scheduler killed", drills.kill_scheduler),
                ("redis", "Redis killed and restarted empty mid-flight", drills.restart_redis),
                ("db", "every database connection terminated", drills.drop_connections),
                ("errors", f"backend errors on {ERROR_RATE:.0%} of calls", drills.backend_errors),
            ):
                if key not in chosen:
                    continue
                log(f"drill: {name}")
                restarts = drills.restarts
                outcome = run()
                if isinstance(outcome, Tally):
                    outcome.restarts = drills.restarts - restarts
                    outcome = outcome.figures()
                results += outcome
            results += drills.final_check()
        finally:
            if drills is not None:
                drills.stop_supervising()
                drills.stack.stop()
            st.close_django_connections()
            st.drop_database(DRILL_DB)
            redis.stop()
    latest, kept = fig.report(results, f"Demo portal fault drills ({scale.name} scale)", "drills")
    log(f"done in {time.monotonic() - began:.0f} s; wrote {latest.name} and runs/{kept.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
