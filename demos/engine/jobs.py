"""Background job entry points. Thin on purpose: take an id, call the step, nothing else.

Enqueued by `demos.engine.dispatch` under deterministic ids; the cron schedule in
`portal/cron.py` runs `reconcile_job`.
"""

from __future__ import annotations

import logging
import traceback
from types import TracebackType
from typing import Any

from rq.exceptions import AbandonedJobError
from rq.job import Job

from demos.backends.base import BackendError
from demos.engine import dispatch, lifecycle, operations, pools, reconcile
from demos.models import DemoTemplate, Status

log = logging.getLogger(__name__)


def provision_job(public_id: str) -> None:
    operations.provision(public_id)


def pause_job(public_id: str) -> None:
    operations.pause(public_id)


def resume_job(public_id: str) -> None:
    operations.resume(public_id)


def archive_job(public_id: str) -> None:
    operations.archive(public_id)


def delete_job(public_id: str) -> None:
    operations.delete(public_id)


def cleanup_job(public_id: str) -> None:
    operations.cleanup(public_id)


def expire_job(public_id: str) -> None:
    demo = operations.load(public_id)
    if demo is None:
        return
    if lifecycle.expire_demo(demo=demo) is None and demo.status == Status.READY and demo.expires_at:
        # Ran early (clock skew between hosts): come back at the real time.
        dispatch.schedule_expiry(demo.public_id, demo.expires_at)


def admit_job() -> int:
    return len(lifecycle.admit_queued())


def refill_pool_job(template_id: int) -> int:
    template = DemoTemplate.objects.filter(pk=template_id).first()
    return pools.refill(template).started if template else 0


def reconcile_job() -> dict[str, Any]:
    return reconcile.sweep().as_dict()


def on_job_failure(
    job: Job,
    connection: Any,
    exc_type: type[BaseException],
    exc_value: BaseException,
    tb: TracebackType | None,
) -> None:
    """After the last retry, fail the demo with a readable message instead of leaving it stuck.

    RQ calls this after every failed attempt, before it schedules the next; `retries_left` tells
    whether another attempt is coming.
    """
    if job.retries_left or isinstance(exc_value, AbandonedJobError):
        # Another attempt is coming, or the worker died under the job: the reconcile sweep
        # re-enqueues it. Neither is the demo's fault.
        return
    demo = operations.load(job.args[0]) if job.args else None
    if demo is None:
        return
    detail = "".join(traceback.format_exception(exc_type, exc_value, tb))
    if isinstance(exc_value, BackendError):
        message = (
            f"{exc_value.message} This kept failing after several attempts; try again later, "
            "or delete the demo."
        )
    else:
        log.error("Job %s failed for demo %s", job.id, demo.public_id, exc_info=exc_value)
        message = (
            "Something went wrong in the portal while working on this demo. The details are in "
            "the event log; try again, or ask an admin if it keeps happening."
        )
    lifecycle.fail_demo(demo, message, detail)
