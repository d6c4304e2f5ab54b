"""`manage.py runcron`: the portal's cron schedule (portal/cron.py). Run exactly one.

RQ's CronScheduler (what `manage.py rqcron` runs) ends with an exception when Redis goes away,
which on Kubernetes means a crash loop for as long as Redis is away and a growing back-off after
it. This process waits for Redis instead, with the workers' capped, jittered backoff
(portal/worker.py), and resumes the same schedule: what fell due meanwhile is enqueued as soon as
Redis answers.
"""

import logging
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand
from django_rq.cron import DjangoCronScheduler
from redis.client import Pipeline
from rq.exceptions import StopRequested

from portal.worker import REDIS_LOST, RedisOutage

# Without a socket timeout, a command to a Redis behind a network partition would hang for good;
# with one it fails, counts as Redis lost and is waited for.
SOCKET_TIMEOUT = 15


class PortalCronScheduler(DjangoCronScheduler):
    """django-rq's CronScheduler, telling a stop signal apart from a lost Redis."""

    stop_requested = False

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super()._request_stop(signum, frame)

    def register_death(self, pipeline: Pipeline | None = None) -> None:
        # It runs whenever the loop ends: when Redis is what ended it, that first error is the
        # one to handle, not this second one.
        try:
            super().register_death(pipeline)
        except REDIS_LOST as exc:
            self.log.debug("CronScheduler %s: death not registered: %s", self.name, exc)


class Command(BaseCommand):
    help = "Run the portal's cron schedule (portal/cron.py). Run exactly one of these."

    def handle(self, *args: Any, **options: Any) -> None:
        scheduler = PortalCronScheduler(logging_level=logging.INFO)
        scheduler.load_config_from_file("portal.cron")
        scheduler.connection.connection_pool.connection_kwargs.update(
            socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
        )
        self.stdout.write(f"Starting the cron schedule with {len(scheduler.get_jobs())} jobs")
        outage = RedisOutage(scheduler.connection, f"CronScheduler {scheduler.name}")
        try:
            while True:
                try:
                    scheduler.start()
                    return
                except REDIS_LOST as exc:
                    if scheduler.stop_requested:
                        return
                    outage.wait(exc)
                    outage.over()
        except StopRequested:  # a stop signal while waiting for Redis
            return
