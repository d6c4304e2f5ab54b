"""The background steps: each drives one demo toward the state its status asks for.

Each function takes a public id, re-reads the row, talks to the cluster backend, and records the
outcome through `demos.engine.lifecycle`. All are safe to run twice or concurrently: backend
calls are idempotent and every state change is a compare-and-swap. A transient `BackendError`
propagates so RQ retries the job with backoff; a definite one fails the demo with its readable
message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from demos.backends import get_backend
from demos.backends.base import (
    BackendError,
    ClusterBackend,
    Observation,
    Phase,
    SnapshotPhase,
    Spec,
)
from demos.engine import lifecycle
from demos.engine.lifecycle import record_event
from demos.models import STARTING, Demo, Status

log = logging.getLogger(__name__)

# Pause, resume, snapshot and delete get this long before the demo is marked failed.
OPERATION_TIMEOUT = timedelta(minutes=15)


def load(public_id: str) -> Demo | None:
    return (
        Demo.objects.select_related("template", "restored_from").filter(public_id=public_id).first()
    )


def _wait_for[T](
    demo: Demo, status: Status, check: Callable[[], T | None], timeout: timedelta, what: str
) -> T | None:
    """Call `check` until it returns a value, the demo leaves `status`, or time runs out."""
    deadline = timezone.now() + timeout
    while True:
        result = check()
        if result:
            return result
        if not Demo.objects.filter(pk=demo.pk, status=status).exists():
            return None
        if timezone.now() >= deadline:
            raise BackendError(
                f"{what} did not finish within {int(timeout.total_seconds() // 60)} minutes. "
                "Try again; if it keeps happening, ask an admin to look at the host cluster.",
                transient=False,
            )
        time.sleep(settings.DEMO_OBSERVE_INTERVAL)


def _guarded(demo: Demo, step: Callable[[], None], *, cleanup: bool | None = None) -> None:
    """Run a step; turn a definite backend failure into a failed demo, let transient ones retry."""
    try:
        step()
    except BackendError as exc:
        if exc.transient:
            record_event(
                demo,
                "retrying",
                f"Temporary problem: {exc.message} Retrying.",
                data={"detail": exc.detail[-4000:]},
            )
            raise
        demo.refresh_from_db()
        lifecycle.fail_demo(demo, exc.message, exc.detail, cleanup=cleanup)


def provision(public_id: str) -> None:
    demo = load(public_id)
    if demo is None or demo.status not in STARTING:
        return
    demo = lifecycle.begin_provisioning(demo)
    backend = get_backend()

    def step() -> None:
        nonlocal demo
        if demo.restored_from is not None:
            backend.restore(demo.spec, demo.restored_from.location)
        else:
            backend.apply(demo.spec)
        timeout = timedelta(seconds=demo.spec.get("provisioning_timeout_seconds", 900))
        deadline = (demo.started_at or demo.requested_at) + timeout
        while True:
            observation = _observe(backend, demo.spec)
            demo = lifecycle.record_observation(demo, observation)
            if demo.status not in STARTING:
                return  # deleted or failed meanwhile: nothing more to do here
            if observation.phase == Phase.READY:
                lifecycle.finish_provisioning(demo, observation)
                return
            if observation.phase == Phase.FAILED:
                lifecycle.fail_demo(demo, observation.message, observation.detail)
                return
            if timezone.now() >= deadline:
                lifecycle.fail_demo(
                    demo, _timeout_message(timeout, observation), observation.detail
                )
                return
            time.sleep(settings.DEMO_OBSERVE_INTERVAL)

    _guarded(demo, step)


def _observe(backend: ClusterBackend, spec: Spec, attempts: int = 3) -> Observation:
    """Observe, riding out a brief API hiccup: a blip should not restart the whole attempt."""
    for attempt in range(1, attempts):
        try:
            return backend.observe(spec)
        except BackendError as exc:
            if not exc.transient:
                raise
            time.sleep(max(settings.DEMO_OBSERVE_INTERVAL, 0.2) * attempt)
    return backend.observe(spec)  # the last try: its error goes to the job's own retries


def _timeout_message(timeout: timedelta, observation: Observation) -> str:
    minutes = int(timeout.total_seconds() // 60)
    last = f" Last known state: {observation.message}" if observation.message else ""
    return (
        f"The demo was not ready within {minutes} minutes, so it was stopped and cleaned up.{last} "
        "Retry it; if it happens again, ask an admin to check the template."
    )


def _run_until_done(
    public_id: str,
    status: Status,
    what: str,
    call: Callable[[Demo], bool],
    finish: Callable[[Demo], object],
) -> None:
    """Repeat an idempotent backend call until it reports done, then record the outcome."""
    demo = load(public_id)
    if demo is None or demo.status != status:
        return

    def step() -> None:
        if _wait_for(demo, status, lambda: call(demo), OPERATION_TIMEOUT, what):
            finish(demo)

    _guarded(demo, step, cleanup=False)


def pause(public_id: str) -> None:
    _run_until_done(
        public_id,
        Status.PAUSING,
        "Pausing",
        lambda demo: get_backend().pause(demo.cluster_name),
        lifecycle.finish_pause,
    )


def resume(public_id: str) -> None:
    demo = load(public_id)
    if demo is None or demo.status != Status.RESUMING:
        return
    backend = get_backend()

    def ready() -> Observation | None:
        observation = backend.observe(demo.spec)
        if observation.phase == Phase.FAILED:
            raise BackendError(observation.message, observation.detail)
        return observation if observation.phase == Phase.READY else None

    def step() -> None:
        if not _wait_for(
            demo,
            Status.RESUMING,
            lambda: backend.resume(demo.cluster_name),
            OPERATION_TIMEOUT,
            "Resuming",
        ):
            return
        observation = _wait_for(demo, Status.RESUMING, ready, OPERATION_TIMEOUT, "Resuming")
        if observation:
            lifecycle.finish_resume(demo, observation)

    _guarded(demo, step, cleanup=False)


def archive(public_id: str) -> None:
    demo = load(public_id)
    if demo is None or demo.status != Status.ARCHIVING:
        return
    backend = get_backend()
    location = demo.progress.get("archive_location") or backend.snapshot_location(demo.cluster_name)
    if demo.progress.get("archive_location") != location:
        # Remember where this archive goes, so a retried job follows the same snapshot.
        Demo.objects.filter(pk=demo.pk).update(
            progress={**demo.progress, "archive_location": location}
        )

    def snapshot_done() -> bool:
        result = backend.snapshot(demo.cluster_name, location)
        if result.phase == SnapshotPhase.FAILED:
            raise BackendError(f"The snapshot failed: {result.message}", transient=False)
        return result.phase == SnapshotPhase.COMPLETED

    def step() -> None:
        if not _wait_for(demo, Status.ARCHIVING, snapshot_done, OPERATION_TIMEOUT, "The snapshot"):
            return
        record_event(
            demo, "snapshot", f"Snapshot saved to {location}.", data={"location": location}
        )
        if _wait_for(
            demo,
            Status.ARCHIVING,
            lambda: backend.delete(demo.cluster_name),
            OPERATION_TIMEOUT,
            "Deleting the archived cluster",
        ):
            lifecycle.finish_archive(demo, location, backend.can_restore)

    _guarded(demo, step, cleanup=False)


def delete(public_id: str) -> None:
    _run_until_done(
        public_id,
        Status.DELETING,
        "Deleting",
        lambda demo: get_backend().delete(demo.cluster_name),
        lifecycle.finish_delete,
    )


def cleanup(public_id: str) -> None:
    """Remove what a failed start left behind; the demo stays `failed` so its owner sees why."""
    _run_until_done(
        public_id,
        Status.FAILED,
        "Cleaning up",
        lambda demo: get_backend().delete(demo.cluster_name),
        lambda demo: record_event(demo, "cleaned-up", "Removed the half-created cluster."),
    )
