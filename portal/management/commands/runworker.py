"""`manage.py runworker`: an RQ worker on the portal's queues, with the scheduler on.

The process outlives Redis. A running worker waits for Redis itself (portal/worker.py); when Redis
is gone at start-up, or goes in a way the worker cannot ride out, this command waits with the same
backoff and starts a fresh worker. Exiting instead would, on Kubernetes, restart the pod with a
growing back-off (CrashLoopBackOff) for as long as Redis is away, and for minutes after.
"""

import signal
import sys
from importlib import import_module

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django_rq.utils import reset_db_connections
from rq.logutils import setup_loghandlers

from portal.worker import REDIS_LOST, WORKER_TTL, PortalWorker, RedisOutage


class Command(BaseCommand):
    help = "Run an RQ worker on the portal's queues, with the scheduler on (for expiry jobs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--burst", action="store_true", help="Stop when the queues are empty.")
        parser.add_argument("--name", default=None, help="Worker name (default: RQ's own).")
        parser.add_argument(
            "--queues",
            nargs="+",
            choices=settings.RQ_QUEUE_NAMES,
            metavar="QUEUE",
            help=(
                "Only these queues (default: all). They are still taken in the order of "
                "RQ_QUEUE_NAMES. `--queues maintenance` makes a worker that only runs the "
                "sweep, expiry and heartbeat jobs."
            ),
        )

    def handle(self, *args: object, **options: object) -> None:
        setup_loghandlers("INFO")
        wanted = options["queues"] or settings.RQ_QUEUE_NAMES
        # RQ takes the first non-empty queue in the order given: keep the portal's priority.
        queues = [name for name in settings.RQ_QUEUE_NAMES if name in wanted]
        burst = bool(options["burst"])
        # Imported before the first job, so none pays for the imports.
        import demos.engine.jobs  # noqa: F401
        import portal.sealing  # noqa: F401
        from demos.backends import BACKENDS

        import_module(BACKENDS[settings.DEMO_BACKEND].rsplit(".", 1)[0])

        outage = RedisOutage(django_rq.get_connection(queues[0]), "runworker")
        previous: PortalWorker | None = None
        while True:
            worker: PortalWorker | None = None
            try:
                if previous is not None:
                    # It can no longer say so itself; a worker reusing its --name needs it.
                    previous.register_death()
                    previous = None
                worker = self._worker(queues, options["name"])
                reset_db_connections()  # the job thread opens its own
                worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
                return
            except REDIS_LOST as exc:
                if burst:
                    sys.exit(f"Cannot reach Redis at REDIS_URL: {exc}")
                if worker is not None:
                    if worker.stop_requested:
                        return
                    # That worker's signal handlers would write to Redis: plain ones until the
                    # next worker installs its own.
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    worker.let_go()
                    previous = worker
                outage.wait(exc)
                outage.over()

    def _worker(self, queues: list[str], name: object) -> PortalWorker:
        return django_rq.get_worker(
            *queues,
            name=name,
            # Heartbeats this often while a job runs; the reconcile sweep treats a job whose
            # heartbeat is three intervals old as lost (its worker was killed) and re-enqueues it.
            job_monitoring_interval=settings.RQ_JOB_MONITORING_INTERVAL,
            # How often a worker cleans RQ's registries (RQ's default: ten minutes). Taking over
            # a dead scheduler happens more often: see portal/worker.py.
            maintenance_interval=60,
            worker_class=PortalWorker,
            worker_ttl=WORKER_TTL,
        )
