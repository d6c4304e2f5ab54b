"""The background steps: each makes one short move on a demo's cluster and reports what it saw.

A step never waits for a cluster. It makes its backend call (apply, one observation, pause,
delete…), hands the outcome to `demos.engine.lifecycle`, and the lifecycle decides: done, failed,
overdue, or look again in DEMO_OBSERVE_INTERVAL seconds as a new job. So a handful of workers
drives hundreds of demos in flight, and a worker killed mid-step loses one short step, which the
reconcile sweep enqueues again.

Each step takes the demo's public id and the step's number. A step whose number is not the
demo's current one is stale (a person acted meanwhile, or another copy ran first) and does
nothing. Backend calls are idempotent and every state change is a compare-and-swap, so running a
step twice does no harm. A transient `BackendError` propagates so RQ retries the job with
backoff; a definite one fails the demo with its readable message.

`faults.strike` marks the points where the fault drills kill a worker; it does nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from demos.backends import get_backend
from demos.backends.base import BackendError, ClusterBackend, Observation, Phase, SnapshotPhase
from demos.engine import lifecycle
from demos.engine.dispatch import Work
from demos.engine.faults import strike
from demos.models import Demo, Status


def load(public_id: str) -> Demo | None:
    return (
        Demo.objects.select_related("template", "restored_from").filter(public_id=public_id).first()
    )


def _current(public_id: str, seq: int, work: Work) -> Demo | None:
    """The demo, if step `seq` of `work` is still the one to take."""
    demo = load(public_id)
    if demo is None or demo.steps != seq:
        return None
    if work == Work.CLEANUP:
        return demo if demo.status == Status.FAILED else None
    return demo if lifecycle.WORK_FOR_STATUS.get(demo.status) == work else None


def _guarded(demo: Demo, step: Callable[[], object], *, cleanup: bool | None = None) -> None:
    """Run a step; turn a definite backend failure into a failed demo, let transient ones retry."""
    try:
        step()
    except BackendError as exc:
        if exc.transient:
            lifecycle.record_transient(demo, exc.message, exc.detail)
            raise
        demo.refresh_from_db()
        lifecycle.fail_demo(demo, exc.message, exc.detail, cleanup=cleanup)


def _create(backend: ClusterBackend, demo: Demo) -> None:
    if demo.restored_from is not None:
        backend.restore(demo.spec, demo.restored_from.location)
    else:
        backend.apply(demo.spec)


def _kubeconfig(backend: ClusterBackend, demo: Demo, observation: Observation) -> str | None:
    """The external kubeconfig, captured here in the worker once the cluster is ready, so the
    web tier never has to ask the cluster for it."""
    if observation.phase != Phase.READY or not demo.spec.get("allow_kubeconfig_download"):
        return None
    return backend.kubeconfig(demo.cluster_name)


def provision(public_id: str, seq: int) -> None:
    demo = _current(public_id, seq, Work.PROVISION)
    if demo is None:
        return
    backend = get_backend()

    def step() -> None:
        nonlocal demo
        if demo.status == Status.REQUESTED:
            demo = lifecycle.begin_provisioning(demo)
            strike("provision:after-begin")
            _create(backend, demo)
            strike("provision:after-apply")
        observation = backend.observe(demo.spec)
        if observation.phase == Phase.ABSENT:
            # Nothing there although the start began: the step that applied it was lost before
            # its call went through. Applying is idempotent, so apply again.
            _create(backend, demo)
            observation = backend.observe(demo.spec)
        kubeconfig = _kubeconfig(backend, demo, observation)
        strike("observe:before-record")
        if observation.phase == Phase.READY:
            strike("ready:before-commit")
        lifecycle.record_start(demo, seq, observation, kubeconfig=kubeconfig)

    _guarded(demo, step)


def pause(public_id: str, seq: int) -> None:
    """Pause the cluster: for a pause (kept for later) or a sleep; the lifecycle tells which."""
    demo = _current(public_id, seq, Work.PAUSE)
    if demo is None:
        return

    def step() -> None:
        paused = get_backend().pause(demo.cluster_name)
        strike("pause:after-call")
        lifecycle.record_pause(demo, seq, paused=paused)

    _guarded(demo, step, cleanup=False)


def resume(public_id: str, seq: int) -> None:
    """Start the cluster again: for a resume or a wake; the lifecycle tells which."""
    demo = _current(public_id, seq, Work.RESUME)
    if demo is None:
        return
    backend = get_backend()

    def step() -> None:
        observation = backend.observe(demo.spec) if backend.resume(demo.cluster_name) else None
        strike("resume:after-call")
        kubeconfig = _kubeconfig(backend, demo, observation) if observation else None
        lifecycle.record_resume(demo, seq, observation, kubeconfig=kubeconfig)

    _guarded(demo, step, cleanup=False)


def archive(public_id: str, seq: int) -> None:
    """Snapshot the cluster (one look at the snapshot per step), then delete it."""
    demo = _current(public_id, seq, Work.ARCHIVE)
    if demo is None:
        return
    backend = get_backend()

    def step() -> None:
        location = lifecycle.archive_location(
            demo, lambda: backend.snapshot_location(demo.cluster_name)
        )
        if lifecycle.archived_snapshot(demo) is None:
            result = backend.snapshot(demo.cluster_name, location)
            if result.phase == SnapshotPhase.FAILED:
                raise BackendError(f"The snapshot failed: {result.message}", transient=False)
            if result.phase != SnapshotPhase.COMPLETED:
                lifecycle.next_step(demo, seq)
                return
            strike("archive:after-snapshot")
            lifecycle.record_snapshot(demo, restorable=backend.can_restore)
        deleted = backend.delete(demo.cluster_name)
        strike("delete:after-call")
        lifecycle.record_archive_delete(demo, seq, deleted=deleted)

    _guarded(demo, step, cleanup=False)


def delete(public_id: str, seq: int) -> None:
    demo = _current(public_id, seq, Work.DELETE)
    if demo is None:
        return

    def step() -> None:
        deleted = get_backend().delete(demo.cluster_name)
        strike("delete:after-call")
        lifecycle.record_delete(demo, seq, deleted=deleted)

    _guarded(demo, step, cleanup=False)


def cleanup(public_id: str, seq: int) -> None:
    """Remove what a failed start left behind; the demo stays `failed` so its owner sees why."""
    demo = _current(public_id, seq, Work.CLEANUP)
    if demo is None:
        return

    def step() -> None:
        deleted = get_backend().delete(demo.cluster_name)
        lifecycle.record_cleanup(demo, seq, deleted=deleted)

    _guarded(demo, step, cleanup=False)
