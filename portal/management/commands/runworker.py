import sys

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django_rq.utils import reset_db_connections
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.logutils import setup_loghandlers

from portal.worker import WORKER_TTL, PortalWorker


class Command(BaseCommand):
    help = "Run an RQ worker on the portal's queues, with the scheduler on (for expiry jobs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--burst", action="store_true", help="Stop when the queues are empty.")
        parser.add_argument("--name", default=None, help="Worker name (default: RQ's own).")

    def handle(self, *args: object, **options: object) -> None:
        setup_loghandlers("INFO")
        worker = django_rq.get_worker(
            *settings.RQ_QUEUE_NAMES,
            name=options["name"],
            # Heartbeats this often while a job runs; the reconcile sweep treats a job whose
            # heartbeat is three intervals old as lost (its worker was killed) and re-enqueues it.
            job_monitoring_interval=settings.RQ_JOB_MONITORING_INTERVAL,
            # How often a worker cleans RQ's registries (RQ's default: ten minutes). Taking over
            # a dead scheduler happens more often: see portal/worker.py.
            maintenance_interval=60,
            worker_class=PortalWorker,
            worker_ttl=WORKER_TTL,
        )
        # Imported once here rather than in every forked work horse.
        import demos.engine.jobs  # noqa: F401

        reset_db_connections()  # never share a database connection with the forked work horse
        try:
            worker.work(burst=bool(options["burst"]), with_scheduler=True, logging_level="INFO")
        except RedisConnectionError as exc:
            sys.exit(f"Cannot reach Redis at REDIS_URL: {exc}")
