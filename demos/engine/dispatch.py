"""Handing work to the background workers.

Every job is enqueued after the surrounding transaction commits (a worker must never look for a
row that is not there yet) and under a deterministic id. A demo's steps are numbered
(`Demo.steps`): step `n` of a pause is `pause-<public id>-<n>`, so a double click, a retried request
and the reconcile sweep all end up with one job per step, and a job that finds the demo already
past its number knows it is stale and does nothing.

Jobs are found in one registry (`demos.engine.jobs.REGISTRY`) by name; RQ is handed the function
itself, never a dotted path built from strings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq import Callback, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from portal.redis_connection import connection_for

# Per-demo steps. Workers take `maintenance` first (portal/settings.py), so the sweep, expiry
# and heartbeat never wait behind a flood of steps.
QUEUE = "demos"
MAINTENANCE = "maintenance"
# One step is short (one backend call and one observation); a restore through the vcluster CLI
# is the longest. A worker killed mid-step is noticed by its missing heartbeat, not this.
STEP_TIMEOUT = 900


class Work(StrEnum):
    """The kinds of background step, named as their jobs are."""

    PROVISION = "provision"
    PAUSE = "pause"
    RESUME = "resume"
    ARCHIVE = "archive"
    DELETE = "delete"
    CLEANUP = "cleanup"


_LIVE_STATES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def _job(name: str) -> Callable[..., Any]:
    # Imported here: the jobs call the lifecycle, which calls this module.
    from demos.engine.jobs import REGISTRY

    return REGISTRY[name]


def step_id(work: Work | str, public_id: UUID | str, seq: int) -> str:
    return f"{work}-{public_id}-{seq}"


def _queue(name: str = QUEUE) -> django_rq.queues.DjangoRQ:
    # Enqueue immediately when called: every call here already runs after commit. The process's
    # one client for that Redis: django-rq's own would open a connection per step.
    return django_rq.get_queue(name, connection=connection_for(name), commit_mode="auto")


def is_job_alive(jid: str) -> bool:
    """True when a job with this id is waiting or running on a live worker."""
    try:
        job = Job.fetch(jid, connection=_queue().connection)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.SCHEDULED:
        # A follow-up, retry or delayed job is alive until it is overdue; one a minute late means
        # RQ's scheduler is not running (its worker was killed), so the job counts as lost.
        due = _scheduled_for(job)
        return due is None or timezone.now() - due < timedelta(minutes=1)
    if status in _LIVE_STATES:
        return True
    if status == JobStatus.STARTED:
        beat = job.last_heartbeat or job.started_at
        if beat is None:
            return True
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=timezone.UTC)
        # Workers beat every RQ_JOB_MONITORING_INTERVAL while a job runs; three missed beats
        # means the worker was killed and the job will never finish.
        stale_after = 3 * settings.RQ_JOB_MONITORING_INTERVAL + 5
        return (timezone.now() - beat).total_seconds() < stale_after
    return False


def _scheduled_for(job: Job) -> datetime | None:
    registry = ScheduledJobRegistry(job.origin, connection=job.connection)
    score = job.connection.zscore(registry.key, job.id)
    return datetime.fromtimestamp(score, tz=timezone.UTC) if score is not None else None


def enqueue_lost_step(work: Work, public_id: UUID | str, seq: int) -> bool:
    """Enqueue step `seq` again unless a live job for it exists. True when one was enqueued."""
    if is_job_alive(step_id(work, public_id, seq)):
        return False
    enqueue_step_now(work, public_id, seq)
    return True


def enqueue_step_now(work: Work, public_id: UUID | str, seq: int, *, after: float = 0) -> None:
    """Enqueue step `seq` of `work`, `after` seconds from now when given (the next look at a
    cluster that is still on its way). Each step's number is new, so no job with its id exists;
    only the sweep, re-driving a step, asks first (`enqueue_lost_step`)."""
    jid = step_id(work, public_id, seq)
    retries = settings.DEMO_JOB_RETRIES
    options: dict[str, Any] = {
        "job_id": jid,
        "retry": Retry(max=retries, interval=[2, 10, 30][:retries] or 0) if retries else None,
        "on_failure": Callback(_job("on_failure")),
        "job_timeout": STEP_TIMEOUT,
        # Steps leave nothing worth keeping when they succeed; failures stay a week to read.
        "result_ttl": 0,
        "failure_ttl": 7 * 24 * 3600,
    }
    function = _job(str(work))
    if after > 0:
        _queue().enqueue_in(timedelta(seconds=after), function, str(public_id), seq, **options)
    else:
        _queue().enqueue(function, str(public_id), seq, **options)


def enqueue_step(work: Work, public_id: UUID | str, seq: int, *, after: float = 0) -> None:
    """Enqueue a step once the current transaction commits.

    Robust: if Redis is down, the row still says what is wanted and the reconcile sweep enqueues
    it later, so the person's request succeeds instead of showing an error page.
    """
    transaction.on_commit(lambda: enqueue_step_now(work, public_id, seq, after=after), robust=True)


def enqueue_maintenance(name: str, jid: str, *args: object) -> bool:
    """Enqueue a sweep-like job once: a second request while one waits is a no-op."""
    if is_job_alive(jid):
        return False
    _queue(MAINTENANCE).enqueue(_job(name), *args, job_id=jid, result_ttl=60, job_timeout=300)
    return True


def request_pool_refill(template_id: int) -> None:
    """Top up a template's warm pool in the background after a spare was claimed."""
    enqueue_maintenance("refill_pool", f"refill-pool-{template_id}", template_id)


def expiry_id(public_id: UUID | str) -> str:
    return f"expire-{public_id}"


def schedule_expiry(public_id: UUID | str, at: datetime) -> None:
    """(Re)schedule the demo's expiry job. Same id, so an extension moves the one job."""

    # RQ's scheduler keeps whole seconds and may run a job up to a second early: round up, so
    # the job never finds the demo "not due yet".
    at = at.replace(microsecond=0) + timedelta(seconds=1)

    def schedule() -> None:
        _queue(MAINTENANCE).enqueue_at(
            at, _job("expire"), str(public_id), job_id=expiry_id(public_id), result_ttl=600
        )

    transaction.on_commit(schedule, robust=True)  # the sweep expires it on time regardless


def cancel_expiry(public_id: UUID | str) -> None:
    def cancel() -> None:
        try:
            job = Job.fetch(expiry_id(public_id), connection=_queue().connection)
        except NoSuchJobError:
            return
        if job.get_status(refresh=False) in _LIVE_STATES:
            job.cancel()

    transaction.on_commit(cancel, robust=True)  # a stale expiry job finds nothing due
