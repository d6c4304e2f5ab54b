"""The portal as it runs in production, on this machine: gunicorn, RQ workers and one cron.

Everything here talks to loopback only. The benchmark creates its own PostgreSQL database (and
drops it afterwards) and uses one Redis database number of its own, emptied before and after, so
a developer's `make run` and the test suite on the same servers are never touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# Every database a run creates is named with this prefix, so two runs on one server (two
# checkouts, two people) can keep apart: BENCH_DB_PREFIX=alice_ gives alice_bench, alice_drills.
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "portal_")

# A crashed worker or cron is restarted after a back-off that doubles while it keeps exiting
# soon after starting (as Kubernetes' CrashLoopBackOff does, with a cap of seconds instead of
# minutes, so a drill measures the portal's recovery rather than the back-off).
RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 10.0
STABLE_AFTER = 30.0  # a process that ran this long before exiting starts the back-off afresh

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The run cannot go on; the message says what to look at."""


def require_loopback(url: str) -> str:
    """Refuse any server but this machine's: a benchmark drops databases and floods servers."""
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if not local:
        raise BenchError(f"{url!r} is not on this machine; benchmarks only run against loopback.")
    return url


def db_name(purpose: str) -> str:
    """The name of the database a run uses for `purpose` (bench, drills...)."""
    name = f"{DB_PREFIX}{purpose}"
    if not _DB_NAME.match(name):
        raise BenchError(f"BENCH_DB_PREFIX={DB_PREFIX!r} does not make a plain database name")
    return name


def restart_delay(crashes: int) -> float:
    """Seconds to wait before restarting a process that has exited `crashes` times in a row
    soon after starting (1 for a process that had been running a while)."""
    return min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2 ** max(crashes - 1, 0))


def database_url(name: str) -> str:
    if not _DB_NAME.match(name):
        raise BenchError(f"{name!r} is not a plain database name")
    parts = urllib.parse.urlparse(require_loopback(PG_ADMIN_URL))
    return urllib.parse.urlunparse(parts._replace(path=f"/{name}"))


def recreate_database(name: str) -> str:
    """Drop `name` if a crashed run left it, create it empty, and return its URL."""
    import psycopg
    from psycopg import sql

    url = database_url(name)
    with psycopg.connect(require_loopback(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url


def drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    database_url(name)  # validates the name
    with psycopg.connect(require_loopback(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(require_loopback(url), socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def close_django_connections() -> None:
    """Close this process's database connections (if Django was set up), so the database can
    be dropped."""
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until[T](check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Return `check()`'s first truthy value; raise BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def portal_env(database: str, redis_url: str, site_port: int, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off, a fresh secret key) on plain HTTP over loopback."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        SITE_URL=f"http://127.0.0.1:{site_port}",
        DATABASE_URL=database_url(database),
        REDIS_URL=require_loopback(redis_url),
        DEMO_BACKEND="simulated",
        DEMO_SIM_STEP_SECONDS="0",
        # The benchmark measures the portal, not the capacity limits: with the defaults (3 per
        # salesperson, 50 in total) most of 200 concurrent starts would wait in the queue.
        DEMO_MAX_ACTIVE_PER_USER="100000",
        DEMO_MAX_ACTIVE_TOTAL="100000",
        # Expiry warnings would otherwise try an SMTP server.
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _read_status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of a process, in kB (empty when it has gone)."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0])
    return values


def _stat(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/<pid>/stat (after the command name); empty when it has gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()
    except OSError:
        return []


def cpu_seconds(pid: int, *, reaped: bool = False) -> tuple[int, float]:
    """When a process started (in clock ticks since boot, which tells a reused pid apart) and
    the user plus system CPU time it has used so far, with `reaped` that of its exited
    children too; (0, 0.0) when it has gone."""
    fields = _stat(pid)
    if not fields:
        return 0, 0.0
    # stat(5) numbers fields from 1: utime, stime, cutime, cstime are 14 to 17, starttime 22.
    ticks = sum(int(value) for value in fields[11 : 15 if reaped else 13])
    return int(fields[19]), ticks / _CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """Seconds of CPU time the whole machine has been busy and has existed, over all cores."""
    with open("/proc/stat") as stat:
        # user nice system idle iowait irq softirq steal; guest time is already in user.
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / _CLOCK_TICKS, sum(ticks) / _CLOCK_TICKS


def children_of(pids: set[int]) -> dict[int, int]:
    """Each live child process of `pids`, mapped to its parent."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if len(fields) > 1 and int(fields[1]) in pids:
            found[int(entry.name)] = int(fields[1])
    return found


def is_work_horse(pid: int) -> bool:
    """RQ's work horse puts itself in a process group of its own (os.setpgrp); the worker's
    other child, the scheduler, stays in the worker's group."""
    fields = _stat(pid)
    return len(fields) > 2 and int(fields[2]) == pid


@dataclass
class Proc:
    role: str  # web, worker, cron
    name: str
    popen: subprocess.Popen[bytes]
    args: list[str]
    env: dict[str, str]
    replaced: bool = False
    started: float = field(default_factory=time.monotonic)
    crashes: int = 0  # exits in a row, each soon after starting (see restart_delay)
    restart_at: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class MemoryPeaks:
    """Highest VmHWM seen per process role, in kB. Work horses live for one job each, so they
    are sampled while they run; a horse that starts and ends between two samples is missed."""

    peaks: dict[str, int] = field(default_factory=dict)
    horses_seen: int = 0

    def note(self, role: str, kb: int) -> None:
        self.peaks[role] = max(self.peaks.get(role, 0), kb)


class Stack:
    """Starts, watches and stops the portal's processes for one run."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[Proc] = []
        self.memory = MemoryPeaks()
        self._sampler: threading.Thread | None = None
        self._stop_sampling = threading.Event()
        self._seen_horses: set[int] = set()

    # Starting ------------------------------------------------------------------------------

    def _spawn(
        self, role: str, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> Proc:
        log = (self.logs / f"{name}.log").open("ab")
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group, so a stop or a SIGKILL drill reaches the work horse too.
            start_new_session=True,
        )
        log.close()
        proc = Proc(role, name, popen, args, env or self.env)
        self.procs.append(proc)
        return proc

    def restart_exited(self) -> int:
        """Start a replacement for every worker or cron that has exited, as Kubernetes restarts
        a crashed container, after its back-off (`restart_delay`). Returns how many were
        restarted."""
        restarted = 0
        now = time.monotonic()
        for proc in list(self.procs):
            if proc.role not in ("worker", "cron") or proc.replaced or proc.alive():
                continue
            if proc.restart_at is None:
                quick = now - proc.started < STABLE_AFTER
                proc.crashes = proc.crashes + 1 if quick else 1
                proc.restart_at = now + restart_delay(proc.crashes)
            if now < proc.restart_at:
                continue
            proc.replaced = True
            if proc.role == "worker":
                # A new name, as a new pod would have: RQ refuses to register a worker under
                # a name whose dead predecessor is still registered.
                successor = self.start_worker(int(proc.name.rpartition("-")[2]), proc.env)
            else:
                successor = self._spawn(proc.role, proc.name, proc.args, proc.env)
            successor.crashes = proc.crashes
            restarted += 1
        return restarted

    def retire(self, proc: Proc) -> None:
        """Stop a process for good (no restart), gracefully."""
        proc.replaced = True
        if proc.alive():
            self.signal(proc, signal.SIGTERM)
            try:
                proc.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.kill(proc)

    def manage(self, *args: str, timeout: float = 300) -> None:
        """Run a one-shot management command (migrate, collectstatic) and fail loudly."""
        name = f"manage-{args[0]}"
        with (self.logs / f"{name}.log").open("ab") as log:
            result = subprocess.run(
                [PYTHON, "manage.py", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode:
            raise BenchError(f"manage.py {' '.join(args)} failed; see {self.logs / name}.log")

    def start_web(self, port: int, workers: int, threads: int) -> Proc:
        # The flags of the production image's entrypoint (docker-entrypoint.sh), bound to loopback.
        args = [
            PYTHON, "-m", "gunicorn", "portal.wsgi:application",
            "--config", "python:portal.gunicorn_conf",
            "--bind", f"127.0.0.1:{port}",
            "--worker-class", "gthread",
            "--workers", str(workers),
            "--threads", str(threads),
            "--timeout", "30",
            "--graceful-timeout", "25",
            "--keep-alive", "5",
            "--max-requests", "2000",
            "--max-requests-jitter", "200",
            "--worker-tmp-dir", "/dev/shm",  # noqa: S108 - heartbeat files, as in the image
            "--no-control-socket",
            "--access-logfile", str(self.logs / "access.log"),
            # Which worker answered and in how many microseconds: a slow tail can be told apart
            # from a worker just started by --max-requests (BENCH_KEEP_LOGS=1 keeps the log).
            "--access-logformat", '%(p)s %(D)s %(s)s "%(r)s"',
        ]  # fmt: skip
        return self._spawn("web", "web", args)

    def start_worker(self, index: int, env: dict[str, str] | None = None) -> Proc:
        name = f"worker-{index}"
        args = [PYTHON, "manage.py", "runworker", "--name", f"bench-{name}-{secrets.token_hex(3)}"]
        return self._spawn("worker", name, args, env)

    def start_cron(self, env: dict[str, str] | None = None) -> Proc:
        return self._spawn("cron", "cron", [PYTHON, "manage.py", "runcron"], env)

    def start_portal(self, port: int, web_workers: int, web_threads: int, rq_workers: int) -> None:
        """gunicorn, `rq_workers` workers and one cron, returning once the web answers /healthz
        and every worker has registered."""
        from bench.client import Browser, answers_health

        self.start_web(port, web_workers, web_threads)
        for index in range(rq_workers):
            self.start_worker(index)
        self.start_cron()
        probe = Browser(port)
        wait_until(lambda: answers_health(probe), 60, "gunicorn to answer /healthz", 0.2)
        probe.close()
        redis_url = self.env["REDIS_URL"]
        wait_until(lambda: worker_count(redis_url) >= rq_workers, 60, "the workers", 0.2)

    def workers(self) -> list[Proc]:
        return [proc for proc in self.procs if proc.role == "worker" and proc.alive()]

    def horses_of(self, proc: Proc) -> list[int]:
        return [pid for pid in children_of({proc.pid}) if is_work_horse(pid)]

    def busy_workers(self) -> list[Proc]:
        """Workers running a job right now, as they tell RQ (jobs run in the worker's own
        process, so there is no work horse to look for)."""
        import redis
        from rq import Worker

        client = redis.Redis.from_url(require_loopback(self.env["REDIS_URL"]), socket_timeout=5)
        try:
            busy = {w.pid for w in Worker.all(connection=client) if w.get_state() == "busy"}
        except redis.RedisError:
            return []
        finally:
            client.close()
        return [proc for proc in self.workers() if proc.pid in busy]

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.role in ("web", "cron") and not proc.alive():
                raise BenchError(f"the {proc.name} process exited; see {self.logs}/{proc.name}.log")

    # Stopping ------------------------------------------------------------------------------

    def signal(self, proc: Proc, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def kill(self, proc: Proc) -> None:
        """SIGKILL a process and its children, as an out-of-memory kill or a lost node would.

        The work horse sits in a process group of its own, so it is killed by its id."""
        horses = self.horses_of(proc)
        self.signal(proc, signal.SIGKILL)
        for pid in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.popen.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            proc.replaced = True  # nothing restarts from here on
        self._stop_sampling.set()
        if self._sampler:
            self._sampler.join(5)
        live = [proc for proc in self.procs if proc.alive()]
        # Children first noted by id and start time: once their parent exits they can no longer
        # be found by parent, and the start time tells them from a later process with that id.
        children = {pid: cpu_seconds(pid)[0] for pid in children_of({p.pid for p in live})}
        for proc in live:
            self.signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in live:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(proc)
        for pid, started in children.items():
            # A work horse outlives a stopped worker only while it finishes its job; by now it
            # has had its grace period.
            if started and cpu_seconds(pid)[0] == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # Memory -------------------------------------------------------------------------------

    def start_memory_sampler(self, interval: float = 0.1) -> None:
        self._sampler = threading.Thread(
            target=self._sample_memory, args=(interval,), name="memory", daemon=True
        )
        self._sampler.start()

    def _sample_memory(self, interval: float) -> None:
        while not self._stop_sampling.wait(interval):
            self.sample_memory_once()

    def sample_memory_once(self) -> None:
        roles = {proc.pid: proc.role for proc in self.procs if proc.alive()}
        for pid, role in roles.items():
            hwm = _read_status(pid).get("VmHWM")
            if hwm:
                self.memory.note("web master" if role == "web" else role, hwm)
        for child, parent in children_of(set(roles)).items():
            hwm = _read_status(child).get("VmHWM")
            if not hwm:
                continue
            role = roles[parent]
            if role == "web":
                self.memory.note("web worker", hwm)
            elif role == "worker" and is_work_horse(child):
                if child not in self._seen_horses:
                    self._seen_horses.add(child)
                    self.memory.horses_seen += 1
                self.memory.note("work horse", hwm)
            elif role == "worker":
                self.memory.note("RQ scheduler", hwm)
            else:
                self.memory.note(f"{role} child", hwm)

    def cpu_seconds(self, role: str) -> float:
        """CPU time the live processes of `role` and all their children have used so far.

        Children that have exited count too: the kernel adds a reaped child's time to its
        parent (cutime, cstime), so a work horse's job or a gunicorn worker recycled by
        --max-requests is not lost."""
        live = {proc.pid for proc in self.procs if proc.role == role and proc.alive()}
        return sum(cpu_seconds(pid, reaped=True)[1] for pid in [*live, *children_of(live)])


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A directory for logs and collected static files; kept when the run fails, for reading."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    failed = False
    try:
        yield path
    except BaseException:
        failed = True
        raise
    finally:
        if failed or os.environ.get("BENCH_KEEP_LOGS"):
            print(f"Logs kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def worker_count(redis_url: str) -> int:
    import redis
    from rq import Worker

    client = redis.Redis.from_url(require_loopback(redis_url), socket_timeout=5)
    try:
        return Worker.count(connection=client)
    finally:
        client.close()


@dataclass(frozen=True)
class WorkerTotals:
    """What RQ counts per worker in its Redis hash: seconds spent inside jobs (from each job's
    start to its end in the work horse) and jobs ended, successful or not."""

    working_seconds: float = 0.0
    jobs: int = 0


def worker_totals(redis_url: str) -> dict[str, WorkerTotals]:
    """RQ's running totals for every registered worker, by worker name."""
    import redis
    from rq import Worker

    client = redis.Redis.from_url(require_loopback(redis_url), socket_timeout=5)
    try:
        totals = {}
        for worker in Worker.all(connection=client):
            worker.refresh()
            totals[worker.name] = WorkerTotals(
                float(worker.total_working_time or 0),
                int(worker.successful_job_count or 0) + int(worker.failed_job_count or 0),
            )
        return totals
    finally:
        client.close()


def source_commit() -> tuple[str, bool]:
    """The checkout's commit and whether it has changes not in it (untracked files included).
    Read-only: `--no-optional-locks` keeps git from refreshing its index."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit, bool(git("status", "--porcelain"))


def run_stamp(scale: str, phases: list[str], repeats: int) -> dict[str, Any]:
    """Where and when a run's figures were taken, as every results file records it: the
    commit, the versions, the machine, how quickly its processes wake, and how loaded it was
    when the run began."""
    from datetime import UTC, datetime

    from bench.floor import wake_up_round_trips

    machine = describe_machine()
    commit, dirty = source_commit()
    return {
        "commit": commit,
        "dirty": dirty,
        "python": machine["python"],
        "postgresql": machine["postgresql"],
        "redis": machine["redis"],
        "cpus": machine["cores"],
        "memory_gib": machine["memory_gib"],
        "arch": machine["arch"],
        "load_average": [round(value, 2) for value in os.getloadavg()],
        # Microseconds a process takes to answer another after waiting (bench.floor).
        "wake_up_round_trip_us": wake_up_round_trips(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "phases": phases,
        "repeats": repeats,
    }


def describe_machine() -> dict[str, Any]:
    """Cores, memory and versions, described generically (no host names or paths)."""
    import platform

    import psycopg
    import redis

    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    with psycopg.connect(require_loopback(PG_ADMIN_URL)) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    client = redis.Redis.from_url(require_loopback(REDIS_URL), socket_timeout=5)
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "postgresql": pg_version.split()[0],
        "redis": redis_version,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
