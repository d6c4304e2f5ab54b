"""Liveness and readiness endpoints, and the heartbeat job that proves the scheduler runs."""

import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError
from rq import Worker

from portal.redis_connection import connection_for

HEARTBEAT_KEY = "portal:cron-heartbeat"
# The cron process enqueues the heartbeat every HEARTBEAT_SECONDS; three missed beats is "down".
HEARTBEAT_SECONDS = 15
HEARTBEAT_STALE_AFTER = HEARTBEAT_SECONDS * 3


def record_heartbeat() -> float:
    """Job run by the cron schedule on a worker: its timestamp shows cron and workers both run."""
    now = time.time()
    connection_for("maintenance").set(HEARTBEAT_KEY, now, ex=3600)
    return now


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers and reaches its database. No authentication."""
    ok = _database_ok()
    return JsonResponse({"status": "ok" if ok else "down"}, status=200 if ok else 503)


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, Redis, live workers and a fresh cron heartbeat."""
    report: dict[str, object] = {"database": "ok" if _database_ok() else "down"}
    healthy = report["database"] == "ok"
    try:
        redis = connection_for("maintenance")
        redis.ping()
        report["redis"] = "ok"
        report["workers"] = Worker.count(connection=redis)
        beat = redis.get(HEARTBEAT_KEY)
        age = round(time.time() - float(beat), 1) if beat else None
        report["cron_heartbeat_age_seconds"] = age
        healthy = healthy and report["workers"] > 0 and age is not None
        healthy = healthy and age <= HEARTBEAT_STALE_AFTER
    except RedisError:
        report.update(redis="down", workers=0, cron_heartbeat_age_seconds=None)
        healthy = False
    report["backend"] = settings.DEMO_BACKEND
    report["status"] = "ok" if healthy else "degraded"
    return JsonResponse(report, status=200 if healthy else 503)
