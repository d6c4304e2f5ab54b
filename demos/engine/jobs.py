"""Background job entry points, and the one registry that names them.

Thin on purpose: each takes its arguments and calls one function of the engine. `dispatch`
enqueues them by their name in `REGISTRY`; the cron schedule in `portal/cron.py` runs
`reconcile_job`.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rq.exceptions import AbandonedJobError
from rq.job import Job

from demos.backends.base import BackendError
from demos.engine import lifecycle, operations, pools, reconcile
from demos.gate import engagement
from demos.models import DemoTemplate

log = logging.getLogger(__name__)


def provision_job(public_id: str, seq: int) -> None:
    operations.provision(public_id, seq)


def pause_job(public_id: str, seq: int) -> None:
    operations.pause(public_id, seq)


def resume_job(public_id: str, seq: int) -> None:
    operations.resume(public_id, seq)


def archive_job(public_id: str, seq: int) -> None:
    operations.archive(public_id, seq)


def delete_job(public_id: str, seq: int) -> None:
    operations.delete(public_id, seq)


def cleanup_job(public_id: str, seq: int) -> None:
    operations.cleanup(public_id, seq)


def expire_job(public_id: str) -> None:
    demo = operations.load(public_id)
    if demo is not None:
        lifecycle.expire_demo(demo=demo)


def admit_job() -> int:
    return len(lifecycle.admit_queued())


def refill_pool_job(template_id: int) -> int:
    template = DemoTemplate.objects.filter(pk=template_id).first()
    return pools.refill(template).started if template else 0


def reconcile_job() -> dict[str, Any]:
    return reconcile.sweep().as_dict()


def flush_engagement_job() -> int:
    return engagement.flush()


def on_step_failure(
    job: Job,
    connection: Any,
    exc_type: type[BaseException],
    exc_value: BaseException,
    tb: TracebackType | None,
) -> None:
    """After a step's last retry, fail the demo with a readable message instead of leaving it
    stuck.

    RQ calls this after every failed attempt, before it schedules the next; `retries_left` tells
    whether another attempt is coming.
    """
    if job.retries_left or isinstance(exc_value, AbandonedJobError):
        # Another attempt is coming, or the worker died under the job: the reconcile sweep
        # enqueues the step again. Neither is the demo's fault.
        return
    if len(job.args) != 2:
        return  # a job queued by an older release: the sweep re-drives its demo
    public_id, seq = job.args
    demo = operations.load(public_id)
    if demo is None or demo.steps != seq:
        return  # the demo moved on meanwhile: this step's failure no longer matters
    detail = "".join(traceback.format_exception(exc_type, exc_value, tb))
    if not isinstance(exc_value, BackendError):
        log.error("Job %s failed for demo %s", job.id, demo.public_id, exc_info=exc_value)
    lifecycle.fail_after_retries(demo, exc_value, detail)


# Every job the portal enqueues, by the name `dispatch` uses.
REGISTRY: dict[str, Callable[..., Any]] = {
    "provision": provision_job,
    "pause": pause_job,
    "resume": resume_job,
    "archive": archive_job,
    "delete": delete_job,
    "cleanup": cleanup_job,
    "expire": expire_job,
    "admit": admit_job,
    "refill_pool": refill_pool_job,
    "reconcile": reconcile_job,
    "flush_engagement": flush_engagement_job,
    "on_failure": on_step_failure,
}
