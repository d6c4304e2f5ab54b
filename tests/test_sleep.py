"""Sleep and wake: idle demos pause in place with their time left and their slot, and wake when
opened; the sweep ends those asleep too long; the studio edits when a template's demos sleep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import django_rq
import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from demos.engine import capacity, dispatch, lifecycle, operations, reconcile, sleep
from demos.engine.lifecycle import Actor
from demos.errors import LifecycleError
from demos.fleet import selectors
from demos.gate import activity
from demos.gate import state as gate_state
from demos.models import Demo, DemoTemplate, SimulatedCluster, Status
from demos.sales.panel import sleep_note
from demos.studio import documents
from demos.studio.forms import problems_of, validate_document
from demos.studio.import_export import export_template, import_template
from demos.studio.versions import Actor as StudioActor
from demos.studio.versions import default_content, working_content
from portal.redis_connection import shared
from tests.conftest import (
    WorkerProcess,
    backdate,
    change_url,
    form_data,
    make_demo,
    make_template,
    wait_for_status,
)

SLEEP_AFTER = timedelta(minutes=30)


@pytest.fixture
def sleepy(db: None) -> DemoTemplate:
    """A template whose demos sleep after 30 minutes without use."""
    return make_template("sleepy", sleep_after=SLEEP_AFTER)


def _idle_demo(template: DemoTemplate, owner: User, idle: timedelta) -> Demo:
    """A running demo that became ready `idle` ago and has had no visitor since."""
    return make_demo(template, owner, at=timezone.now() - idle)


def _set_last_visit(demo: Demo, ago: timedelta) -> None:
    # As the gate writes it on each counted request: epoch seconds as text.
    moment = timezone.now() - ago
    shared().set(activity.last_key(demo.pk), str(moment.timestamp()), ex=86400)


def _scheduled_at(jid: str) -> float | None:
    queue = django_rq.get_queue(dispatch.MAINTENANCE)
    return queue.connection.zscore(ScheduledJobRegistry(queue=queue).key, jid)


class TestSleepAndWake:
    def test_it_keeps_the_time_left_and_gives_it_back_on_waking(
        self,
        sleepy: DemoTemplate,
        alice: User,
        rq_redis: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        demo = make_demo(sleepy, alice)
        left = timedelta(hours=1, minutes=20)
        Demo.objects.filter(pk=demo.pk).update(expires_at=timezone.now() + left)
        demo.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.schedule_expiry(demo.public_id, demo.expires_at)
        assert _scheduled_at(dispatch.expiry_id(demo.public_id)) is not None

        with django_capture_on_commit_callbacks(execute=True):
            demo = lifecycle.sleep_demo(demo=demo, actor=lifecycle.SCHEDULER)
        assert demo.status == Status.SLEEPING
        assert demo.expires_at is None
        assert abs(demo.sleep_remaining - left) < timedelta(seconds=5)
        assert demo.asleep_since is not None
        expiry = Job.fetch(dispatch.expiry_id(demo.public_id), connection=rq_redis)
        assert expiry.get_status() == JobStatus.CANCELED, "no expiry while it sleeps"
        assert shared().get(gate_state.demo_key(demo.cluster_name)) == b"asleep"

        with django_capture_on_commit_callbacks(execute=True):
            operations.pause(str(demo.public_id), demo.steps)
        demo.refresh_from_db()
        assert demo.status == Status.ASLEEP
        assert SimulatedCluster.objects.get(name=demo.cluster_name).paused
        assert not demo.snapshots.exists(), "asleep is not kept for later"
        remaining = demo.sleep_remaining

        with time_machine.travel(timezone.now() + timedelta(hours=3), tick=False):
            woken_at = timezone.now()
            with django_capture_on_commit_callbacks(execute=True):
                demo = lifecycle.wake_demo(demo=demo, actor=Actor.of(alice))
                assert demo.status == Status.WAKING
                operations.resume(str(demo.public_id), demo.steps)
        demo.refresh_from_db()
        assert demo.status == Status.READY
        assert demo.expires_at == woken_at + remaining
        assert demo.slept >= timedelta(hours=3)
        assert (demo.asleep_since, demo.sleep_remaining) == (None, None)
        assert not SimulatedCluster.objects.get(name=demo.cluster_name).paused
        due = _scheduled_at(dispatch.expiry_id(demo.public_id))
        assert due == pytest.approx(demo.expires_at.timestamp(), abs=2), "expiry at the new end"
        kinds = list(demo.events.values_list("kind", flat=True))
        assert kinds[-4:] == ["sleeping", "asleep", "waking", "ready"]

    def test_a_sleeping_demo_keeps_its_slot_and_wakes_without_asking_for_room(
        self, sleepy: DemoTemplate, alice: User, settings: Any, rq_redis: Any
    ) -> None:
        asleep = make_demo(sleepy, alice, Status.ASLEEP)
        settings.DEMO_MAX_ACTIVE_TOTAL = 1
        assert not capacity.has_room_for(Demo(template=sleepy, owner=alice))
        queued = lifecycle.start_demo(template=sleepy, owner=alice)
        assert queued.status == Status.QUEUED

        woken = lifecycle.wake_demo(demo=asleep, actor=Actor.of(alice))
        assert woken.status == Status.WAKING

    def test_two_wakes_at_once_make_one(
        self,
        sleepy: DemoTemplate,
        alice: User,
        rq_redis: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        demo = make_demo(sleepy, alice, Status.ASLEEP)
        # Two visitors, each holding the demo as it was when they opened the link.
        first, second = Demo.objects.get(pk=demo.pk), Demo.objects.get(pk=demo.pk)
        with django_capture_on_commit_callbacks(execute=True):
            one = lifecycle.wake_demo(demo=first, actor=Actor.of(alice))
            other = lifecycle.wake_demo(demo=second, actor=lifecycle.Actor(label="prospect"))
        assert one.status == other.status == Status.WAKING
        assert one.steps == other.steps
        assert demo.events.filter(kind="waking").count() == 1
        resumes = [jid for jid in django_rq.get_queue("demos").job_ids if "resume" in jid]
        assert resumes == [dispatch.step_id("resume", demo.public_id, one.steps)]

    @pytest.mark.parametrize("status", [Status.PAUSED, Status.DELETED, Status.SLEEPING])
    def test_it_refuses_to_wake_what_is_not_asleep(
        self, sleepy: DemoTemplate, alice: User, status: Status
    ) -> None:
        demo = make_demo(sleepy, alice, status)
        with pytest.raises(LifecycleError) as refused:
            lifecycle.wake_demo(demo=demo, actor=Actor.of(alice))
        assert "wake" in str(refused.value)
        demo.refresh_from_db()
        assert demo.status == status

    def test_a_failed_wake_is_retried_as_a_wake(self, sleepy: DemoTemplate, alice: User) -> None:
        demo = make_demo(sleepy, alice, Status.WAKING)
        demo = lifecycle.fail_demo(demo, "The cluster did not come back.")
        assert (demo.status, demo.failed_from) == (Status.FAILED, Status.WAKING)
        demo = lifecycle.retry_demo(demo=demo, actor=Actor.of(alice))
        assert demo.status == Status.WAKING
        assert demo.sleep_remaining is not None, "it still has its time left to give back"

    def test_the_sweep_drives_a_lost_sleep_step_again(
        self, sleepy: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        demo = make_demo(sleepy, alice, Status.SLEEPING)
        later = timezone.now() + reconcile.REENQUEUE_GRACE + timedelta(seconds=1)
        assert reconcile.reenqueue_lost_work(later) == 1
        assert dispatch.step_id("pause", demo.public_id, demo.steps) in (
            django_rq.get_queue("demos").job_ids
        )
        assert lifecycle.is_overdue(demo, demo.status_changed_at + lifecycle.OPERATION_TIMEOUT)


class TestIdleDemos:
    def test_it_puts_a_demo_nobody_used_to_sleep(
        self, sleepy: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        idle = _idle_demo(sleepy, alice, timedelta(minutes=40))
        fresh = _idle_demo(sleepy, alice, timedelta(minutes=10))
        never = _idle_demo(make_template("awake"), alice, timedelta(hours=1))

        asleep = sleep.put_idle_demos_to_sleep(timezone.now())

        assert [demo.pk for demo in asleep] == [idle.pk]
        statuses = dict(Demo.objects.values_list("pk", "status"))
        assert statuses == {idle.pk: Status.SLEEPING, fresh.pk: Status.READY, never.pk: "ready"}
        event = idle.events.latest("pk")
        assert event.message.startswith("Nobody used it for 40 min")

    def test_a_recent_visit_keeps_it_awake_and_an_old_one_does_not(
        self, sleepy: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        visited = _idle_demo(sleepy, alice, timedelta(hours=1))
        _set_last_visit(visited, timedelta(minutes=5))
        forgotten = _idle_demo(sleepy, alice, timedelta(hours=1))
        _set_last_visit(forgotten, timedelta(minutes=35))

        asleep = sleep.put_idle_demos_to_sleep(timezone.now())

        assert [demo.pk for demo in asleep] == [forgotten.pk]
        visited.refresh_from_db()
        assert visited.status == Status.READY

    def test_a_woken_demo_gets_the_whole_idle_time_again(
        self, sleepy: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        demo = make_demo(sleepy, alice, Status.WAKING, at=timezone.now() - timedelta(hours=2))
        operations.resume(str(demo.public_id), demo.steps)
        demo.refresh_from_db()
        assert demo.status == Status.READY
        assert sleep.put_idle_demos_to_sleep(timezone.now() + timedelta(minutes=20)) == []
        later = sleep.put_idle_demos_to_sleep(timezone.now() + timedelta(minutes=31))
        assert [d.pk for d in later] == [demo.pk]

    def test_spares_and_demos_about_to_end_stay_awake(
        self, sleepy: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        ending = _idle_demo(sleepy, alice, timedelta(hours=1))
        Demo.objects.filter(pk=ending.pk).update(expires_at=timezone.now() + timedelta(minutes=5))
        spare = make_demo(sleepy, None, is_spare=True)  # after: a start would claim it
        backdate(spare, hours=1)

        assert sleep.put_idle_demos_to_sleep(timezone.now()) == []
        assert set(Demo.objects.values_list("status", flat=True)) == {Status.READY}
        assert spare.is_spare

    def test_the_sweep_puts_demos_to_sleep(
        self, sleepy: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        _idle_demo(sleepy, alice, timedelta(hours=1))
        summary = reconcile.sweep()
        assert summary.slept == 1
        assert "put to sleep 1" in str(summary)


class TestLongSleep:
    def test_a_demo_asleep_longer_than_the_retention_is_deleted(
        self, sleepy: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        demo = make_demo(sleepy, alice, Status.ASLEEP)
        retention = sleepy.retention

        assert sleep.end_long_sleeps(timezone.now() + retention - timedelta(minutes=1)) == []
        ended = sleep.end_long_sleeps(timezone.now() + retention + timedelta(minutes=1))

        assert [d.pk for d in ended] == [demo.pk]
        demo.refresh_from_db()
        assert demo.status == Status.DELETING
        event = demo.events.latest("pk")
        assert event.kind == "retention"
        assert "Asleep for 14 d" in event.message

    def test_the_owner_may_delete_a_sleeping_demo(self, sleepy: DemoTemplate, alice: User) -> None:
        demo = make_demo(sleepy, alice, Status.ASLEEP)
        assert lifecycle.delete_demo(demo=demo, actor=Actor.of(alice)).status == Status.DELETING


class TestPages:
    def test_the_owner_wakes_it_with_a_button(
        self, sleepy: DemoTemplate, alice: User, client: Client
    ) -> None:
        demo = make_demo(sleepy, alice, Status.ASLEEP)
        client.force_login(alice)
        page = client.get(reverse("demos:detail", args=[demo.public_id])).content.decode()
        assert "Wake now" in page

        client.post(reverse("demos:action", args=[demo.public_id, "wake"]))

        demo.refresh_from_db()
        assert demo.status == Status.WAKING

    def test_the_note_says_since_when_why_and_what_is_left(
        self, sleepy: DemoTemplate, alice: User
    ) -> None:
        demo = make_demo(sleepy, alice, Status.ASLEEP)
        Demo.objects.filter(pk=demo.pk).update(
            sleep_remaining=timedelta(hours=1, minutes=20), asleep_since=timezone.now()
        )
        demo.refresh_from_db()
        since = timezone.localtime(demo.asleep_since)
        assert sleep_note(demo) == (
            f"Asleep since {since:%H:%M} because nobody used it for 30 min; it wakes when your "
            "prospect opens the link, with the 1 h 20 min it had left."
        )
        assert sleep_note(make_demo(sleepy, alice)) == ""

    def test_the_fleet_shows_hours_saved_by_sleep(
        self, sleepy: DemoTemplate, alice: User, manager: User, client: Client
    ) -> None:
        now = timezone.now()
        woken = make_demo(sleepy, alice)
        Demo.objects.filter(pk=woken.pk).update(slept=timedelta(hours=2))
        asleep = make_demo(sleepy, alice, Status.ASLEEP)
        Demo.objects.filter(pk=asleep.pk).update(asleep_since=now - timedelta(hours=3))
        ended = make_demo(sleepy, alice, Status.DELETED)
        Demo.objects.filter(pk=ended.pk).update(
            asleep_since=now - timedelta(hours=5), ended_at=now - timedelta(hours=4)
        )
        # Ended before the window: not counted.
        old = make_demo(sleepy, alice, Status.DELETED)
        Demo.objects.filter(pk=old.pk).update(
            slept=timedelta(hours=50), ended_at=now - timedelta(days=40)
        )

        savings = selectors.sleep_savings(now)

        assert (savings.hours, savings.asleep_now) == (6.0, 1)
        client.force_login(manager)
        page = client.get(reverse("demos:fleet")).content.decode()
        assert "<strong>6.0 hours</strong>" in page
        assert "1 demo asleep now" in page


class TestTemplateSettings:
    @pytest.fixture(autouse=True)
    def _database(self, db: None) -> None:
        """The checks read the template table (the slug must be free)."""

    def _check(self, **changes: Any) -> list[str]:
        document = {**default_content(), "slug": "shop", "name": "Shop", **changes}
        editor = validate_document(
            document, template=None, current=default_content(), allow_unsafe=False
        )
        return problems_of(editor)

    @pytest.mark.parametrize(
        ("value", "ok"),
        [("30m", True), ("2h", True), (None, True), ("5m", True), ("4m", False), ("0s", False)],
    )
    def test_sleep_after_is_at_least_five_minutes_or_never(self, value: Any, ok: bool) -> None:
        problems = self._check(sleep_after=value)
        if ok:
            assert not problems
        else:
            assert any("at least 5 min" in text for text in problems), problems

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ("", ""),
            ("default/shop:80", ""),
            ("shop/shop-web:http", ""),
            ("shop-web:80", "namespace/name:port"),
            ("default/shop", "namespace/name:port"),
            ("Default/shop:80", "namespace “Default”"),
            ("default/1shop:80", "Service name “1shop”"),
            ("default/shop:0", "between 1 and 65535"),
            ("default/shop:70000", "between 1 and 65535"),
            ("default/shop:http--alt", "port name"),
        ],
    )
    def test_the_entry_service_names_a_service_and_its_port(self, value: str, problem: str) -> None:
        problems = self._check(entry_service=value)
        if problem:
            assert any(problem in text for text in problems), problems
        else:
            assert not problems

    def test_the_yaml_carries_both_settings_there_and_back(self, template_admin: User) -> None:
        actor = StudioActor(template_admin)
        template = make_template("shop", sleep_after=SLEEP_AFTER, entry_service="shop/web:80")
        text = export_template(template)
        assert "sleep_after: 30m\n" in text
        assert "entry_service: shop/web:80\n" in text

        copy = import_template(text.replace("slug: shop", "slug: shop-copy"), actor=actor)
        assert copy.ok, copy.problems
        draft = working_content(copy.template)
        assert (draft["sleep_after"], draft["entry_service"]) == ("30m", "shop/web:80")

        never = import_template(
            text.replace("sleep_after: 30m", "sleep_after: null"), actor=actor, publish=True
        )
        assert never.ok, never.problems
        template.refresh_from_db()
        assert template.sleep_after is None
        assert "sleep_after: null" in export_template(template)

    def test_the_admin_edits_them_with_the_same_checks(self, admin_client: Client) -> None:
        template = make_template("shop")
        refused = admin_client.post(
            change_url(template),
            form_data(template, sleep_after_0="2", sleep_after_1="m", entry_service="shop"),
        )
        assert refused.status_code == 200
        assert "at least 5 min" in refused.content.decode()
        assert "is not namespace/name:port" in refused.content.decode()

        admin_client.post(
            change_url(template),
            form_data(template, sleep_after_0="30", sleep_after_1="m", entry_service="shop/web:80"),
        )
        template.refresh_from_db()
        assert (template.sleep_after, template.entry_service) == (SLEEP_AFTER, "shop/web:80")

    def test_older_documents_read_as_never_sleeping(self) -> None:
        document = default_content()
        del document["sleep_after"], document["entry_service"]
        values = documents.setting_values({**document, "slug": "old", "name": "Old"})
        assert (values["sleep_after"], values["entry_service"]) == (None, "")

    def test_the_frozen_spec_holds_them(self, alice: User) -> None:
        template = make_template("shop", sleep_after=SLEEP_AFTER, entry_service="shop/web:80")
        demo = make_demo(template, alice)
        assert demo.spec["sleep_after_seconds"] == 1800
        assert demo.spec["entry_service"] == "shop/web:80"
        assert make_demo(make_template("plain"), alice).spec["sleep_after_seconds"] is None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
class TestWithAWorker:
    def test_an_idle_demo_sleeps_and_wakes_on_the_simulated_backend(
        self, worker: WorkerProcess, alice: User
    ) -> None:
        template = make_template("sleepy", sleep_after=SLEEP_AFTER)
        demo = lifecycle.start_demo(template=template, owner=alice, prospect_company="Acme")
        demo = wait_for_status(demo, Status.READY)
        backdate(demo, minutes=45)
        left = demo.expires_at - timezone.now()

        assert [d.pk for d in sleep.put_idle_demos_to_sleep(timezone.now())] == [demo.pk]
        demo = wait_for_status(demo, Status.ASLEEP, Status.FAILED)
        assert demo.status == Status.ASLEEP, demo.error_message
        assert SimulatedCluster.objects.get(name=demo.cluster_name).paused
        assert shared().get(gate_state.demo_key(demo.cluster_name)) == b"asleep"

        demo = lifecycle.wake_demo(demo=demo, actor=Actor.of(alice))
        demo = wait_for_status(demo, Status.READY, Status.FAILED)
        assert demo.status == Status.READY, demo.error_message
        assert not SimulatedCluster.objects.get(name=demo.cluster_name).paused
        assert abs((demo.expires_at - timezone.now()) - left) < timedelta(seconds=30)
        assert demo.slept > timedelta(0)
        published = shared().get(gate_state.demo_key(demo.cluster_name))
        assert published == f"open:{int(demo.expires_at.timestamp())}".encode()
