"""The lifecycle's rules: transitions, extension bounds, capacity and queueing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import django_rq
import pytest
import time_machine
from django.utils import timezone

from demos.engine import dispatch, lifecycle
from demos.engine.capacity import CapacityError, queue_position
from demos.engine.lifecycle import Actor
from demos.errors import InvalidTransition, LifecycleError
from demos.models import WORKING, Demo, Status
from tests.conftest import finish_delete, make_demo, make_template

ACTIONS = {
    "extend": lifecycle.extend_demo,
    "delete": lifecycle.delete_demo,
    "pause": lifecycle.pause_demo,
    "resume": lifecycle.resume_demo,
    "archive": lifecycle.archive_demo,
    "retry": lifecycle.retry_demo,
    "wake": lifecycle.wake_demo,
}
# Asked of a demo already there, these change nothing (many visitors wake a demo at once).
_ALREADY_DONE = {("wake", Status.WAKING), ("wake", Status.READY)}


class TestStateMachine:
    @pytest.mark.parametrize("action", sorted(ACTIONS))
    @pytest.mark.parametrize("status", list(Status))
    def test_each_action_is_allowed_exactly_where_the_table_says(
        self,
        action: str,
        status: Status,
        template: Any,
        alice: Any,
        rq_redis: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        demo = make_demo(template, alice, status)
        if status in lifecycle.states_for(action):
            with django_capture_on_commit_callbacks(execute=True):
                result = ACTIONS[action](demo=demo, actor=Actor.of(alice))
            assert result.status != status or action == "extend"
            event = result.events.latest("created_at", "pk")
            rules = [t for t in lifecycle.TRANSITIONS.values() if t.action == action]
            rule = next(t for t in rules if t.to == result.status and t.kind == event.kind)
            # The job the table names is enqueued under the demo's current step.
            if rule.work:
                job = dispatch.step_id(rule.work, demo.public_id, result.steps)
                assert job in django_rq.get_queue("demos").job_ids
        elif (action, status) in _ALREADY_DONE:
            events = demo.events.count()
            result = ACTIONS[action](demo=demo, actor=Actor.of(alice))
            result.refresh_from_db()
            assert (result.status, result.events.count()) == (status, events)
        else:
            with pytest.raises(LifecycleError) as excinfo:
                ACTIONS[action](demo=demo, actor=Actor.of(alice))
            assert str(excinfo.value).startswith("This demo")
            demo.refresh_from_db()
            assert demo.status == status

    def test_the_table_names_every_state_and_no_action_is_unreachable(self) -> None:
        reached = {rule.to for rule in lifecycle.TRANSITIONS.values()}
        left = set().union(*(rule.allowed for rule in lifecycle.TRANSITIONS.values()))
        assert reached | left == set(Status)
        assert all(lifecycle.states_for(action) for action in ACTIONS)
        # Every working state has the job that drives it out.
        assert set(lifecycle.WORK_FOR_STATUS) == set(WORKING)

    def test_it_explains_a_lost_race_in_words(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice)
        stale = Demo.objects.get(pk=demo.pk)
        lifecycle.delete_demo(demo=demo, actor=Actor.of(alice))
        with pytest.raises(InvalidTransition, match="already being deleted"):
            lifecycle.pause_demo(demo=stale, actor=Actor.of(alice))

    def test_every_transition_writes_an_event(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice)
        lifecycle.pause_demo(demo=demo, actor=Actor.of(alice))
        event = demo.events.latest("created_at", "pk")
        assert (event.kind, event.actor) == ("pausing", alice)


class TestStart:
    def test_it_freezes_the_rendered_spec(self, template: Any, alice: Any, rq_redis: Any) -> None:
        demo = lifecycle.start_demo(template=template, owner=alice, prospect_company="Acme")
        template.charts.update(values="changed: true")
        demo.refresh_from_db()
        assert demo.status == Status.REQUESTED
        assert "Hello Acme" in demo.spec["charts"][0]["values"]
        assert demo.spec["host"] == f"{demo.cluster_name}.demos.localhost"

    def test_a_double_submit_makes_one_demo(self, template: Any, alice: Any, rq_redis: Any) -> None:
        first = lifecycle.start_demo(template=template, owner=alice, start_token="tok-1")
        second = lifecycle.start_demo(template=template, owner=alice, start_token="tok-1")
        assert first.pk == second.pk
        assert Demo.objects.count() == 1

    def test_it_refuses_a_lifetime_beyond_the_maximum(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        with pytest.raises(LifecycleError, match="at most 8 h"):
            lifecycle.start_demo(template=template, owner=alice, lifetime=timedelta(hours=9))

    def test_a_disabled_template_cannot_start(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        template.enabled = False
        template.save()
        with pytest.raises(LifecycleError, match="not available"):
            lifecycle.start_demo(template=template, owner=alice)

    def test_a_template_error_is_a_readable_error(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        template.charts.update(values="host: ${NOPE}")
        with pytest.raises(LifecycleError, match=r"unknown variable \$\{NOPE\}"):
            lifecycle.start_demo(template=template, owner=alice)
        assert not Demo.objects.exists()


class TestCapacity:
    def test_over_the_personal_limit_it_queues_with_a_position(
        self, template: Any, alice: Any, settings: Any, rq_redis: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_PER_USER = 1
        running = lifecycle.start_demo(template=template, owner=alice)
        queued = lifecycle.start_demo(template=template, owner=alice)
        assert running.status == Status.REQUESTED
        assert queued.status == Status.QUEUED
        assert queue_position(queued) == 1
        with pytest.raises(CapacityError, match="waiting for capacity"):
            lifecycle.start_demo(template=template, owner=alice)

    def test_the_template_and_global_limits_queue_too(
        self, alice: Any, bob: Any, settings: Any, rq_redis: Any
    ) -> None:
        limited = make_template("limited", max_concurrent=1)
        other = make_template("other")
        assert lifecycle.start_demo(template=limited, owner=alice).status == Status.REQUESTED
        assert lifecycle.start_demo(template=limited, owner=bob).status == Status.QUEUED
        settings.DEMO_MAX_ACTIVE_TOTAL = 1
        assert lifecycle.start_demo(template=other, owner=bob).status == Status.QUEUED

    def test_queued_demos_start_in_order_when_room_frees_up(
        self, template: Any, alice: Any, bob: Any, settings: Any, rq_redis: Any
    ) -> None:
        settings.DEMO_MAX_ACTIVE_TOTAL = 1
        first = lifecycle.start_demo(template=template, owner=alice)
        waiting_bob = lifecycle.start_demo(template=template, owner=bob)
        waiting_alice = lifecycle.start_demo(template=template, owner=alice)
        assert lifecycle.admit_queued() == []
        finish_delete(lifecycle.delete_demo(demo=first, actor=Actor.of(alice)))
        admitted = lifecycle.admit_queued()
        assert [d.pk for d in admitted] == [waiting_bob.pk]
        waiting_alice.refresh_from_db()
        assert waiting_alice.status == Status.QUEUED
        assert queue_position(waiting_alice) == 1


class TestExtend:
    def test_it_moves_the_expiry_by_one_step(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        demo = make_demo(template, alice)
        before = demo.expires_at
        lifecycle.extend_demo(demo=demo, actor=Actor.of(alice))
        assert demo.expires_at == before + template.extension_step
        assert demo.extension_count == 1

    def test_it_stops_at_the_maximum_lifetime(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        template.max_lifetime = timedelta(hours=2, minutes=30)
        template.save()
        demo = make_demo(template, alice)
        lifecycle.extend_demo(demo=demo, actor=Actor.of(alice))
        assert demo.expires_at == demo.ready_at + timedelta(hours=2, minutes=30)
        with pytest.raises(LifecycleError, match="longest time allowed"):
            lifecycle.extend_demo(demo=demo, actor=Actor.of(alice))

    def test_it_stops_at_the_maximum_number_of_extensions(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        template.max_extensions = 1
        template.max_lifetime = timedelta(hours=24)
        template.save()
        demo = make_demo(template, alice)
        lifecycle.extend_demo(demo=demo, actor=Actor.of(alice))
        with pytest.raises(LifecycleError, match="extended 1 times"):
            lifecycle.extend_demo(demo=demo, actor=Actor.of(alice))


class TestExpire:
    @pytest.mark.parametrize(
        ("action", "status"),
        [("delete", Status.DELETING), ("pause", Status.PAUSING), ("archive", Status.ARCHIVING)],
    )
    def test_it_follows_the_templates_expiry_action(
        self, action: str, status: Status, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        template.expiry_action = action
        template.save()
        demo = make_demo(template, alice)
        assert lifecycle.expire_demo(demo=demo) is None  # not due yet
        with time_machine.travel(demo.expires_at + timedelta(seconds=1)):
            lifecycle.expire_demo(demo=demo)
        assert demo.status == status
        assert demo.events.filter(kind="expired", actor_label="scheduler").exists()

    def test_retention_deletes_a_paused_demo_after_its_time(
        self, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        # Paused 13 days ago: 14 days of retention leave one more day.
        demo = make_demo(template, alice, Status.PAUSED, at=timezone.now() - timedelta(days=13))
        assert lifecycle.discard_kept(demo) is None
        with time_machine.travel(timezone.now() + timedelta(days=2)):
            lifecycle.discard_kept(demo)
        assert demo.status == Status.DELETING


class TestExpiryWarnings:
    def test_owners_are_warned_once_per_lead_time(
        self, template: Any, alice: Any, rq_redis: Any, mailoutbox: list[Any]
    ) -> None:
        from demos.engine import reconcile

        demo = make_demo(template, alice, prospect_company="Acme")
        Demo.objects.filter(pk=demo.pk).update(expires_at=timezone.now() + timedelta(minutes=50))
        assert reconcile.warn_before_expiry(timezone.now()) == 1
        assert reconcile.warn_before_expiry(timezone.now()) == 0
        assert mailoutbox[0].subject == "Your Webshop demo ends in 49 min"
        assert f"/demos/{demo.public_id}/" in mailoutbox[0].body
        with time_machine.travel(timezone.now() + timedelta(minutes=41)):
            assert reconcile.warn_before_expiry(timezone.now()) == 1
        assert "ends in 8 min" in mailoutbox[1].subject
        assert demo.events.filter(kind="warned").count() == 2

    def test_an_extension_rearms_the_warnings(
        self, template: Any, alice: Any, rq_redis: Any, mailoutbox: list[Any]
    ) -> None:
        from demos.engine import reconcile

        template.extension_step = timedelta(minutes=30)
        template.save()
        demo = make_demo(template, alice)
        Demo.objects.filter(pk=demo.pk).update(expires_at=timezone.now() + timedelta(minutes=5))
        demo.refresh_from_db()
        assert reconcile.warn_before_expiry(timezone.now()) == 1
        lifecycle.extend_demo(demo=demo, actor=Actor.of(alice))
        assert demo.warnings_sent == []
        # 35 minutes left: the one-hour warning is due again.
        assert reconcile.warn_before_expiry(timezone.now()) == 1


class TestReconcileCommand:
    def test_it_prints_a_summary(self, rq_redis: Any, db: None) -> None:
        from io import StringIO

        from django.core.management import call_command

        out = StringIO()
        call_command("reconcile", stdout=out)
        assert out.getvalue().startswith("Reconcile: expired 0, warned 0, timed out 0")


class TestArchiveWithoutRestore:
    """A backend that cannot restore archives (vCluster without its CLI) must not archive."""

    @pytest.fixture
    def no_restore(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from demos.backends.simulated import SimulatedBackend

        monkeypatch.setattr(SimulatedBackend, "can_restore", property(lambda self: False))

    def test_archiving_is_refused_with_the_alternative(
        self, no_restore: None, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        from demos.sales.buttons import ARCHIVE, is_allowed

        demo = make_demo(template, alice)
        assert not is_allowed(ARCHIVE, demo)
        with pytest.raises(LifecycleError, match="Keep it for later instead"):
            lifecycle.archive_demo(demo=demo, actor=Actor.of(alice))

    def test_an_archive_expiry_action_pauses_instead(
        self, no_restore: None, template: Any, alice: Any, rq_redis: Any
    ) -> None:
        template.expiry_action = "archive"
        template.save()
        demo = make_demo(template, alice)
        with time_machine.travel(demo.expires_at + timedelta(seconds=1)):
            lifecycle.expire_demo(demo=demo)
        assert demo.status == Status.PAUSING

    def test_admins_cannot_choose_archive_as_the_expiry_action(self, no_restore: None) -> None:
        from demos.catalog.validation import lifetime_problems

        problems = lifetime_problems({"expiry_action": "archive"})
        assert "Keep it for later instead" in problems["expiry_action"][0]
        assert "expiry_action" not in lifetime_problems({"expiry_action": "pause"})
