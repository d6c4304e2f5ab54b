"""Engine steps: one short move per job, follow-ups under numbered ids, the sweep re-drives lost
ones, one deadline, and the policy frozen at start."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import django_rq
import pytest
import time_machine
from django.utils import timezone
from rq.job import Job

from demos.backends.base import Observation, Phase
from demos.backends.simulated import SimulatedBackend
from demos.engine import dispatch, jobs, lifecycle, operations, reconcile
from demos.engine.lifecycle import Actor
from demos.models import Demo, SimulatedCluster, Snapshot, SnapshotKind, Status
from portal.sealing import unseal
from tests.conftest import finish_delete, make_demo, make_template, run_jobs


@pytest.fixture
def slow_cluster(settings: Any) -> None:
    """Clusters that take several seconds per step, as real ones take a minute."""
    settings.DEMO_SIM_STEP_SECONDS = 2
    settings.DEMO_OBSERVE_INTERVAL = 1


def _scheduled(queue: str = "demos") -> list[str]:
    return django_rq.get_queue(queue).scheduled_job_registry.get_job_ids()


def _start(template: Any, owner: Any, capture: Any) -> Demo:
    with capture(execute=True):
        return lifecycle.start_demo(template=template, owner=owner)


class TestOneStepPerJob:
    def test_a_start_step_never_waits_and_schedules_its_follow_up(
        self,
        slow_cluster: None,
        template: Any,
        alice: Any,
        rq_redis: Any,
        django_capture_on_commit_callbacks: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        demo = _start(template, alice, django_capture_on_commit_callbacks)
        first = dispatch.step_id("provision", demo.public_id, demo.steps)
        assert django_rq.get_queue("demos").job_ids == [first]

        def no_waiting(seconds: float) -> None:
            raise AssertionError(f"a step slept {seconds} s, holding its worker")

        monkeypatch.setattr(time, "sleep", no_waiting)
        with django_capture_on_commit_callbacks(execute=True):
            operations.provision(str(demo.public_id), demo.steps)
        before = timezone.now()

        demo.refresh_from_db()
        # The cluster needs seconds: the step applied it, looked once, and left the rest to a
        # follow-up one observe interval later.
        assert demo.status == Status.PROVISIONING
        assert demo.steps == 2
        assert _scheduled() == [dispatch.step_id("provision", demo.public_id, 2)]
        assert before - timedelta(seconds=1) < demo.next_step_at <= before + timedelta(seconds=1)

    @pytest.mark.django_db(transaction=True)
    def test_the_follow_ups_bring_it_to_ready(
        self, alice: Any, rq_redis: Any, settings: Any
    ) -> None:
        # Six steps of 0.3 s: far longer than one job, so it takes several.
        settings.DEMO_SIM_STEP_SECONDS = 0.3
        demo = lifecycle.start_demo(template=make_template(), owner=alice)
        run_jobs()
        demo.refresh_from_db()
        assert demo.status == Status.READY
        assert demo.steps > 2, "ready in one step: the cluster was not slow enough to test this"
        assert demo.events.filter(kind="ready").count() == 1

    def test_a_stale_step_does_nothing(
        self, template: Any, alice: Any, rq_redis: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        demo = make_demo(template, alice, Status.PROVISIONING)
        lifecycle.delete_demo(demo=demo, actor=Actor.of(alice))
        demo.refresh_from_db()

        def no_backend() -> None:
            raise AssertionError("a stale step called the backend")

        monkeypatch.setattr(operations, "get_backend", no_backend)
        operations.provision(str(demo.public_id), demo.steps - 1)
        operations.delete(str(demo.public_id), demo.steps - 1)
        assert Demo.objects.get(pk=demo.pk).status == Status.DELETING

    def test_jobs_are_the_registrys_own_functions(
        self,
        template: Any,
        alice: Any,
        rq_redis: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        demo = _start(template, alice, django_capture_on_commit_callbacks)
        job = Job.fetch(dispatch.step_id("provision", demo.public_id, demo.steps), rq_redis)
        assert job.func is jobs.REGISTRY["provision"]
        assert job.args == (str(demo.public_id), demo.steps)


class TestLostSteps:
    def test_the_sweep_enqueues_a_lost_step_again_once(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        # The worker died in the middle of the step: the row is provisioning, no job is left.
        demo = make_demo(template, alice, Status.PROVISIONING)
        assert not django_rq.get_queue("demos").job_ids
        with time_machine.travel(timezone.now() + timedelta(seconds=20)):
            assert reconcile.reenqueue_lost_work(timezone.now()) == 1
            assert reconcile.reenqueue_lost_work(timezone.now()) == 0
        expected = dispatch.step_id("provision", demo.public_id, demo.steps)
        assert django_rq.get_queue("demos").job_ids == [expected]

    def test_a_step_that_is_merely_waiting_is_left_alone(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        # Installing for ten minutes, its next look due in a second, and (as a scheduled job in
        # RQ's registry is all the same here) no job to be seen: the due time alone says "wait".
        demo = make_demo(template, alice, Status.INSTALLING)
        now = timezone.now()
        Demo.objects.filter(pk=demo.pk).update(
            status_changed_at=now - timedelta(minutes=10), next_step_at=now + timedelta(seconds=1)
        )
        assert reconcile.reenqueue_lost_work(now) == 0
        Demo.objects.filter(pk=demo.pk).update(next_step_at=now - timedelta(minutes=1))
        assert reconcile.reenqueue_lost_work(now) == 1

    def test_a_start_lost_before_it_applied_applies_again(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        # Killed between committing `provisioning` and the backend call.
        demo = lifecycle.start_demo(template=template, owner=alice)
        demo = lifecycle.begin_provisioning(demo)
        assert not SimulatedCluster.objects.filter(name=demo.cluster_name).exists()
        operations.provision(str(demo.public_id), demo.steps)
        demo.refresh_from_db()
        assert SimulatedCluster.objects.filter(name=demo.cluster_name).exists()
        assert demo.status == Status.READY


class TestOneDeadline:
    def test_a_step_past_the_deadline_fails_the_start_with_the_last_known_state(
        self, slow_cluster: None, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice, Status.INSTALLING)
        with time_machine.travel(lifecycle.deadline(demo) + timedelta(seconds=1)):
            lifecycle.record_start(demo, demo.steps, Observation(Phase.INSTALLING, "Pulling."))
        demo.refresh_from_db()
        assert demo.status == Status.FAILED
        assert demo.error_message == (
            "The demo was not ready within 15 min, so it was stopped and cleaned up. Last known "
            "state: Pulling. Retry it; if it happens again, ask an admin to check the template."
        )

    def test_the_sweep_fails_with_the_same_message_at_the_same_deadline(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice, Status.INSTALLING)
        deadline = lifecycle.deadline(demo)
        with time_machine.travel(deadline - timedelta(seconds=1)):
            assert reconcile.fail_stuck(timezone.now()) == 0
        with time_machine.travel(deadline + timedelta(seconds=1)):
            expected = lifecycle.overdue_message(Demo.objects.get(pk=demo.pk))
            assert reconcile.fail_stuck(timezone.now()) == 1
        demo.refresh_from_db()
        assert demo.error_message == expected

    def test_operations_share_one_timeout(self, template: Any, alice: Any, rq_redis: Any) -> None:
        demo = make_demo(template, alice, Status.DELETING)
        assert lifecycle.deadline(demo) == demo.status_changed_at + lifecycle.OPERATION_TIMEOUT
        with time_machine.travel(lifecycle.deadline(demo) + timedelta(seconds=1)):
            assert reconcile.fail_stuck(timezone.now()) == 1
        demo.refresh_from_db()
        assert demo.error_message.startswith("“Deleting” did not finish within 15 min.")


class TestFrozenPolicy:
    def test_editing_the_template_never_changes_a_running_demo(
        self, alice: Any, rq_redis: Any
    ) -> None:
        template = make_template(
            extension_step=timedelta(hours=1),
            max_extensions=3,
            max_lifetime=timedelta(hours=8),
            expiry_action="pause",
            retention=timedelta(days=14),
        )
        demo = make_demo(template, alice)
        template.extension_step = timedelta(minutes=10)
        template.max_extensions = 0
        template.max_lifetime = timedelta(hours=2)
        template.expiry_action = "delete"
        template.retention = timedelta(days=1)
        template.save()

        demo = lifecycle.extend_demo(demo=Demo.objects.get(pk=demo.pk), actor=Actor.of(alice))
        assert demo.expires_at - demo.ready_at == demo.lifetime + timedelta(hours=1)
        with time_machine.travel(demo.expires_at + timedelta(seconds=1), tick=False):
            demo = lifecycle.expire_demo(demo=demo)
            assert demo is not None
            assert demo.status == Status.PAUSING
            demo = lifecycle.record_pause(demo, demo.steps, paused=True)
            assert demo.keep_until == timezone.now() + timedelta(days=14)


class TestArchive:
    def test_the_location_is_chosen_once_and_the_snapshot_kept_before_the_delete(
        self, template: Any, alice: Any, rq_redis: Any, settings: Any
    ) -> None:
        demo = make_demo(template, alice)
        demo = lifecycle.archive_demo(demo=demo, actor=Actor.of(alice))
        location = lifecycle.archive_location(demo, lambda: "s3://bucket/first")
        assert lifecycle.archive_location(demo, lambda: "s3://bucket/second") == location
        assert "archive_location" not in demo.progress

        snapshot = lifecycle.record_snapshot(demo, restorable=True)
        # Until the cluster is gone the demo is archiving, and its snapshot cannot be restored.
        with pytest.raises(Exception, match="still being archived"):
            lifecycle.restore_snapshot(snapshot=snapshot, owner=alice)
        demo = lifecycle.record_archive_delete(demo, demo.steps, deleted=True)
        assert demo.status == Status.ARCHIVED
        snapshot.refresh_from_db()
        assert (snapshot.kind, snapshot.location) == (SnapshotKind.ARCHIVED, location)
        assert snapshot.expires_at == demo.keep_until
        assert Snapshot.objects.filter(demo=demo).count() == 1


class TestKubeconfigCapture:
    def test_the_worker_seals_the_kubeconfig_when_ready_and_drops_it_at_the_end(
        self, alice: Any, rq_redis: Any
    ) -> None:
        template = make_template(allow_kubeconfig_download=True)
        demo = make_demo(template, alice)
        expected = SimulatedBackend().kubeconfig(demo.cluster_name)
        assert expected
        assert demo.kubeconfig_sealed
        assert "current-context" not in demo.kubeconfig_sealed  # encrypted at rest
        assert unseal(demo.kubeconfig_sealed) == expected

        demo = finish_delete(lifecycle.delete_demo(demo=demo, actor=Actor.of(alice)))
        assert demo.status == Status.DELETED
        assert demo.kubeconfig_sealed == ""

    def test_nothing_is_captured_when_the_template_does_not_offer_downloads(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        assert make_demo(template, alice).kubeconfig_sealed == ""


class TestStepsThatKeepFailing:
    @pytest.mark.django_db(transaction=True)
    def test_after_the_last_retry_the_demo_fails_with_a_readable_message(
        self, alice: Any, rq_redis: Any, settings: Any
    ) -> None:
        settings.DEMO_JOB_RETRIES = 1
        settings.DEMO_SIM_ERROR_RATE = 1.0  # every backend call fails, transiently
        demo = lifecycle.start_demo(template=make_template(), owner=alice)
        run_jobs()
        demo.refresh_from_db()
        assert demo.status == Status.FAILED
        assert demo.error_message.startswith("The cluster API did not answer")
        assert "kept failing after several attempts" in demo.error_message
        # Each attempt left its trace; the traceback is in the event log, not the headline.
        assert demo.events.filter(kind="retrying").count() >= 2
        assert "Traceback" in demo.events.get(kind="failed").data["detail"]
