"""The lifecycle end to end, with a real `manage.py runworker` process, Redis and the database."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import django_rq
import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from demos.engine import dispatch, lifecycle, reconcile
from demos.engine.lifecycle import Actor
from demos.models import Demo, DemoEvent, SimulatedCluster, Snapshot, SnapshotKind, Status
from tests.conftest import WorkerProcess, make_demo, make_template, wait_for, wait_for_status

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _start(template: Any, owner: Any, **kwargs: Any) -> Demo:
    return lifecycle.start_demo(template=template, owner=owner, prospect_company="Acme", **kwargs)


class TestHappyPath:
    def test_start_ready_extend_and_expiry_at_the_new_time(
        self, worker: WorkerProcess, alice: Any
    ) -> None:
        template = make_template(extension_step=timedelta(seconds=4))
        demo = wait_for_status(_start(template, alice), Status.READY)
        # On the demo's own host, behind the gate.
        assert demo.live_url.startswith(f"http://{demo.cluster_name}.demos.localhost")
        assert demo.time_to_ready is not None
        assert [s["state"] for s in demo.progress["steps"]] == ["done"] * 6

        # Shorten the lifetime so the test need not wait two hours, then extend it.
        soon = timezone.now() + timedelta(seconds=1)
        Demo.objects.filter(pk=demo.pk).update(expires_at=soon)
        dispatch.schedule_expiry(demo.public_id, soon)
        demo.refresh_from_db()
        lifecycle.extend_demo(demo=demo, actor=Actor.of(alice))

        wait_for(lambda: timezone.now() > soon + timedelta(seconds=1.5))
        demo.refresh_from_db()
        assert demo.status == Status.READY, "the expiry ran at the old time"
        demo = wait_for_status(demo, Status.DELETED, timeout=15)
        assert not SimulatedCluster.objects.filter(name=demo.cluster_name).exists()
        kinds = list(demo.events.values_list("kind", flat=True))
        assert kinds.index("extended") < kinds.index("expired") < kinds.index("deleted")

    @pytest.mark.parametrize(
        ("action", "kept"), [("pause", Status.PAUSED), ("archive", Status.ARCHIVED)]
    )
    def test_expiry_keeps_for_later_and_it_comes_back(
        self, worker: WorkerProcess, alice: Any, action: str, kept: Status
    ) -> None:
        template = make_template(expiry_action=action)
        demo = wait_for_status(_start(template, alice), Status.READY)
        Demo.objects.filter(pk=demo.pk).update(expires_at=timezone.now())
        demo.refresh_from_db()
        assert lifecycle.expire_demo(demo=demo) is not None
        demo = wait_for_status(demo, kept, Status.FAILED)
        assert demo.status == kept, demo.error_message
        snapshot = Snapshot.objects.get(demo=demo)
        assert snapshot.kind == (
            SnapshotKind.PAUSED if action == "pause" else SnapshotKind.ARCHIVED
        )
        assert snapshot.expires_at == demo.keep_until

        if action == "pause":
            assert SimulatedCluster.objects.get(name=demo.cluster_name).paused
            lifecycle.resume_demo(demo=demo, actor=Actor.of(alice))
            demo = wait_for_status(demo, Status.READY)
            assert demo.expires_at > timezone.now()
        else:
            assert not SimulatedCluster.objects.filter(name=demo.cluster_name).exists()
            restored = lifecycle.restore_snapshot(snapshot=snapshot, owner=alice)
            restored = wait_for_status(restored, Status.READY)
            assert restored.restored_from == snapshot
            assert restored.cluster_name != demo.cluster_name

    def test_delete_now_removes_the_cluster(self, worker: WorkerProcess, alice: Any) -> None:
        demo = wait_for_status(_start(make_template(), alice), Status.READY)
        lifecycle.delete_demo(demo=demo, actor=Actor.of(alice))
        wait_for_status(demo, Status.DELETED)
        assert not SimulatedCluster.objects.exists()


class TestFailures:
    @pytest.fixture
    def failing_worker(self, worker_env: dict[str, str]) -> Any:
        process = WorkerProcess({**worker_env, "DEMO_SIM_FAIL_STEP": "chart"})
        process.start()
        yield process
        process.stop()

    def test_an_injected_failure_fails_with_a_message_and_cleans_up(
        self, failing_worker: WorkerProcess, alice: Any
    ) -> None:
        demo = wait_for_status(_start(make_template(), alice), Status.FAILED)
        assert demo.error_message.startswith("Chart “app0” failed: image pull error")
        assert "ErrImagePull" in demo.error_detail
        assert demo.failed_from in {Status.PROVISIONING, Status.INSTALLING}
        # The cluster goes first and the event is written after it, so wait for both.
        wait_for(lambda: demo.events.filter(kind="cleaned-up").exists(), message="no event")
        assert not SimulatedCluster.objects.exists()
        failed_step = [s for s in demo.progress["steps"] if s["state"] == "failed"]
        assert [s["key"] for s in failed_step] == ["chart:app0"]

    def test_a_worker_killed_mid_provision_is_recovered_by_reconcile(
        self, worker_env: dict[str, str], alice: Any
    ) -> None:
        first = WorkerProcess({**worker_env, "DEMO_SIM_STEP_SECONDS": "1"})
        first.start()
        demo = wait_for_status(_start(make_template(), alice), Status.INSTALLING)
        first.kill()
        demo.refresh_from_db()
        assert demo.status == Status.INSTALLING

        second = WorkerProcess(worker_env)
        second.start()
        try:
            # Later, the sweep sees the job's heartbeat is long gone and enqueues it again.
            with time_machine.travel(timezone.now() + timedelta(minutes=2)):
                summary = reconcile.sweep()
            assert summary.requeued == 1
            demo = wait_for_status(demo, Status.READY, Status.FAILED)
        finally:
            second.stop()
        assert demo.status == Status.READY
        assert SimulatedCluster.objects.filter(name=demo.cluster_name).count() == 1

    @pytest.mark.parametrize("point", ["provision:after-apply", "ready:before-commit"])
    def test_a_worker_killed_at_a_named_point_loses_one_step_that_the_sweep_redrives(
        self, worker_env: dict[str, str], alice: Any, tmp_path: Any, point: str
    ) -> None:
        armed = tmp_path / "fault"
        armed.write_text(point)
        first = WorkerProcess({**worker_env, "DEMO_FAULT_FILE": str(armed)})
        first.start()
        demo = _start(make_template(), alice)
        assert first.process is not None
        first.process.wait(20)  # the whole worker died there, not only the job's process
        assert (tmp_path / "fault.struck").read_text().startswith(point)
        demo.refresh_from_db()
        assert demo.status in (Status.PROVISIONING, Status.INSTALLING)

        second = WorkerProcess(worker_env)
        second.start()
        try:
            with time_machine.travel(timezone.now() + timedelta(minutes=2)):
                assert reconcile.sweep().requeued == 1
            demo = wait_for_status(demo, Status.READY, Status.FAILED)
        finally:
            second.stop()
        assert demo.status == Status.READY
        assert demo.events.filter(kind="ready").count() == 1

    def test_work_lost_with_redis_is_recovered_by_reconcile(
        self, worker_env: dict[str, str], rq_redis: Any, alice: Any
    ) -> None:
        demo = _start(make_template(), alice)
        rq_redis.flushdb()  # no worker ran yet: the provision job is gone
        process = WorkerProcess(worker_env)
        process.start()
        try:
            with time_machine.travel(timezone.now() + timedelta(minutes=1)):
                assert reconcile.sweep().requeued == 1
            demo = wait_for_status(demo, Status.READY)
            # The scheduled expiry job goes too: the sweep still expires the demo on time.
            rq_redis.flushdb()
            with time_machine.travel(demo.expires_at + timedelta(seconds=1)):
                assert reconcile.sweep().expired == 1
            wait_for_status(demo, Status.DELETED)
        finally:
            process.stop()


class TestSweep:
    def test_two_overlapping_sweeps_expire_each_demo_once(self, rq_redis: Any, alice: Any) -> None:
        template = make_template()
        # Ready a whole lifetime (and a second) ago: due now.
        due = timezone.now() - template.default_lifetime - timedelta(seconds=1)
        demos = [make_demo(template, alice, at=due) for _ in range(12)]
        barrier = threading.Barrier(2)
        results: list[int] = []

        def run() -> None:
            barrier.wait()
            try:
                results.append(reconcile.expire_due(timezone.now()))
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(results) == len(demos)
        assert DemoEvent.objects.filter(kind="expired").count() == len(demos)
        assert set(Demo.objects.values_list("status", flat=True)) == {Status.DELETING}
        queued = django_rq.get_queue("demos").job_ids
        assert len(queued) == len(demos)

    def test_an_orphaned_cluster_is_deleted_and_owned_ones_are_kept(
        self, rq_redis: Any, alice: Any
    ) -> None:
        demo = make_demo(make_template(), alice)
        SimulatedCluster.objects.create(name="demo-orphan0001", spec={})
        ended = make_demo(demo.template, alice, Status.DELETED)
        # Odd on purpose: a cluster its delete left behind (the backend lost track of it).
        SimulatedCluster.objects.create(name=ended.cluster_name, spec={})

        summary = reconcile.sweep()
        assert sorted(summary.orphans_deleted) == sorted(["demo-orphan0001", ended.cluster_name])
        assert list(SimulatedCluster.objects.values_list("name", flat=True)) == [demo.cluster_name]

    def test_a_demo_stuck_past_its_timeout_fails_and_is_cleaned_up(
        self, rq_redis: Any, alice: Any
    ) -> None:
        # The worker creating its cluster died: no job is left to finish or fail it.
        demo = make_demo(make_template(), alice, Status.PROVISIONING)
        with time_machine.travel(timezone.now() + timedelta(minutes=30)):
            assert reconcile.sweep().timed_out == 1
        demo.refresh_from_db()
        assert demo.status == Status.FAILED
        assert "not ready within 15 min," in demo.error_message
        cleanup = dispatch.step_id("cleanup", demo.public_id, demo.steps)
        assert cleanup in django_rq.get_queue("demos").job_ids


class TestTransientErrors:
    def test_a_brief_api_hiccup_while_observing_does_not_fail_the_start(
        self, rq_redis: Any, alice: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from demos.backends.base import BackendError
        from demos.backends.simulated import SimulatedBackend
        from tests.conftest import run_jobs

        real_observe = SimulatedBackend.observe
        calls = {"n": 0}

        def flaky_observe(self: SimulatedBackend, spec: dict[str, Any]) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise BackendError("The cluster API did not answer.", transient=True)
            return real_observe(self, spec)

        monkeypatch.setattr(SimulatedBackend, "observe", flaky_observe)
        demo = _start(make_template(), alice)
        run_jobs()
        demo.refresh_from_db()
        assert demo.status == Status.READY
        assert calls["n"] >= 2

    def test_an_overdue_scheduled_job_counts_as_lost(self, rq_redis: Any) -> None:
        queue = django_rq.get_queue("demos", commit_mode="auto")
        queue.enqueue_at(timezone.now() + timedelta(minutes=5), print, job_id="soon")
        queue.enqueue_at(timezone.now() - timedelta(minutes=5), print, job_id="overdue")
        assert dispatch.is_job_alive("soon")
        assert not dispatch.is_job_alive("overdue")
