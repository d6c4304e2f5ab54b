"""Handing work to the background workers.

Every job is enqueued after the surrounding transaction commits (a worker must never look for a
row that is not there yet) and under a deterministic id such as `provision-<public id>`, so a
double click, a retried request and the reconcile sweep all end up with one job, not several.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq import Callback, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from demos.models import Status

QUEUE = "demos"


class Work(StrEnum):
    """The kinds of background step, named as their jobs are."""

    PROVISION = "provision"
    PAUSE = "pause"
    RESUME = "resume"
    ARCHIVE = "archive"
    DELETE = "delete"
    CLEANUP = "cleanup"


# Which job moves a demo out of each working state.
WORK_FOR_STATUS: dict[str, Work] = {
    Status.REQUESTED: Work.PROVISION,
    Status.PROVISIONING: Work.PROVISION,
    Status.INSTALLING: Work.PROVISION,
    Status.PAUSING: Work.PAUSE,
    Status.RESUMING: Work.RESUME,
    Status.ARCHIVING: Work.ARCHIVE,
    Status.DELETING: Work.DELETE,
}

_LIVE_STATES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def job_id(work: Work | str, public_id: UUID | str) -> str:
    return f"{work}-{public_id}"


def _queue() -> django_rq.queues.DjangoRQ:
    # Enqueue immediately when called: every call here already runs after commit.
    return django_rq.get_queue(QUEUE, commit_mode="auto")


def is_job_alive(jid: str) -> bool:
    """True when a job with this id is waiting or running on a live worker."""
    try:
        job = Job.fetch(jid, connection=_queue().connection)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.SCHEDULED:
        # A retry or delayed job is alive until it is overdue; one a minute late means RQ's
        # scheduler is not running (its worker was killed), so the job counts as lost.
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


def enqueue_now(work: Work, public_id: UUID | str) -> bool:
    """Enqueue unless a live job with the same id exists. True when a job was enqueued."""
    jid = job_id(work, public_id)
    if is_job_alive(jid):
        return False
    retries = settings.DEMO_JOB_RETRIES
    _queue().enqueue(
        f"demos.engine.jobs.{work}_job",
        str(public_id),
        job_id=jid,
        retry=Retry(max=retries, interval=[2, 10, 30][:retries] or 0) if retries else None,
        on_failure=Callback("demos.engine.jobs.on_job_failure"),
        job_timeout=3600,
        result_ttl=600,
        failure_ttl=7 * 24 * 3600,
    )
    return True


def enqueue(work: Work, public_id: UUID | str) -> None:
    """Enqueue `work` for a demo once the current transaction commits.

    Robust: if Redis is down, the row still says what is wanted and the reconcile sweep enqueues
    it later, so the person's request succeeds instead of showing an error page.
    """
    transaction.on_commit(lambda: enqueue_now(work, public_id), robust=True)


def enqueue_maintenance(func: str, jid: str, *args: object) -> bool:
    """Enqueue a sweep-like job once: a second request while one waits is a no-op."""
    if is_job_alive(jid):
        return False
    django_rq.get_queue("maintenance", commit_mode="auto").enqueue(
        func, *args, job_id=jid, result_ttl=60, job_timeout=300
    )
    return True


def request_pool_refill(template_id: int) -> None:
    """Top up a template's warm pool in the background after a spare was claimed."""
    enqueue_maintenance(
        "demos.engine.jobs.refill_pool_job",
        f"refill-pool-{template_id}",
        template_id,
    )


def schedule_expiry(public_id: UUID | str, at: datetime) -> None:
    """(Re)schedule the demo's expiry job. Same id, so an extension moves the one job."""

    # RQ's scheduler keeps whole seconds and may run a job up to a second early: round up, so
    # the job never finds the demo "not due yet".
    at = at.replace(microsecond=0) + timedelta(seconds=1)

    def schedule() -> None:
        _queue().enqueue_at(
            at,
            "demos.engine.jobs.expire_job",
            str(public_id),
            job_id=job_id("expire", public_id),
            result_ttl=600,
        )

    transaction.on_commit(schedule, robust=True)  # the sweep expires it on time regardless


def cancel_expiry(public_id: UUID | str) -> None:
    def cancel() -> None:
        queue = _queue()
        try:
            job = Job.fetch(job_id("expire", public_id), connection=queue.connection)
        except NoSuchJobError:
            return
        if job.get_status(refresh=False) in _LIVE_STATES:
            job.cancel()

    transaction.on_commit(cancel, robust=True)  # a stale expiry job finds nothing due
