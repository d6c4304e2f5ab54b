"""Exit 0 when the services this process needs answer, 1 when one does not.

Worker and cron pods serve no HTTP, so Kubernetes probes them by running this command (an exec
probe); the web pods use `/healthz` instead. It does no writes and enqueues nothing, so running it
every few seconds on every pod costs one round trip per check.
"""

from typing import Any

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection
from redis.exceptions import RedisError


class Command(BaseCommand):
    help = "Check the database and/or Redis; exit 1 with the reason when one does not answer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", action="store_true", help="Run one database query.")
        parser.add_argument("--redis", action="store_true", help="Ping the queues' Redis.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["database"] or options["redis"]):
            raise CommandError("Say what to check: --database, --redis or both.")
        checked: list[str] = []
        if options["database"]:
            self._check_database()
            checked.append("database")
        if options["redis"]:
            self._check_redis()
            checked.append("redis")
        if options["verbosity"] >= 1:
            self.stdout.write(f"ok: {', '.join(checked)}")

    def _check_database(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                row = cursor.fetchone()
        except DatabaseError as exc:
            raise CommandError(f"database: {exc}") from exc
        if row != (1,):
            raise CommandError(f"database: SELECT 1 returned {row!r}")

    def _check_redis(self) -> None:
        # Every queue may name its own Redis; the worker needs all of them, so ping each one.
        for queue in settings.RQ_QUEUE_NAMES:
            try:
                django_rq.get_connection(queue).ping()
            except RedisError as exc:
                raise CommandError(f"redis (queue {queue}): {exc}") from exc
