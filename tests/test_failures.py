"""Failures handled: plain words for the salesperson, the cause for the people who fix it, emails
to the owner and the template's admins, a template taken out of the catalog after failing start
after start (and put back by an admin), and no sharing of a broken demo."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from redis.exceptions import RedisError

from demos.engine import notifications
from demos.models import Demo, DemoTemplate, ShareLink, Status
from demos.sales.forms import new_start_token
from tests.conftest import make_demo, make_template, run_jobs

PLAIN_WORDS = "This demo is broken right now; the template\u2019s admins have been told."
CAUSE = "Chart “app0” failed: image pull error for registry.example.com/x:1."
DETAIL = "pod app0-0: ErrImagePull"
FLAG_NOTE = "Taken out of the catalog after 3 failed starts in a row"


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def failed(template: DemoTemplate, owner: User | None, **start: Any) -> Demo:
    """A demo whose first chart failed to install."""
    return make_demo(
        template,
        owner,
        Status.FAILED,
        error_message=CAUSE,
        error_detail=DETAIL,
        is_spare=owner is None,
        **start,
    )


def detail_url(demo: Demo) -> str:
    return reverse("demos:detail", args=[demo.public_id])


def emails_to(address: str) -> list[Any]:
    return [message for message in mail.outbox if message.to == [address]]


@pytest.fixture
def told(rq_redis: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Run what a failure does after its commit (the emails), as a worker's commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


class TestWhatPeopleSee:
    def test_it_tells_the_salesperson_in_plain_words_what_to_do(
        self, alice: User, template: DemoTemplate
    ) -> None:
        demo = failed(template, alice)
        html = logged_in(alice).get(detail_url(demo)).content.decode()
        assert PLAIN_WORDS in html
        assert ">Retry<" in html
        assert ">Delete<" in html
        assert "<summary>Details</summary>" not in html
        assert DETAIL not in html

    @pytest.mark.parametrize("who", ["manager", "template_admin"])
    def test_managers_and_template_admins_see_the_cause_in_details(
        self, request: Any, alice: User, template: DemoTemplate, who: str
    ) -> None:
        demo = failed(template, alice)
        html = logged_in(request.getfixturevalue(who)).get(detail_url(demo)).content.decode()
        assert PLAIN_WORDS in html
        details = html[html.index("<summary>Details</summary>") :]
        assert "image pull error" in details
        assert DETAIL in details

    def test_the_event_log_keeps_the_cause(self, alice: User, template: DemoTemplate) -> None:
        demo = failed(template, alice)
        event = demo.events.get(kind="failed")
        assert event.message == CAUSE
        assert event.data["detail"] == DETAIL

    def test_my_demos_says_it_plainly_in_the_row(self, alice: User, template: DemoTemplate) -> None:
        failed(template, alice)
        html = logged_in(alice).get(reverse("demos:my_demos")).content.decode()
        row = html[html.index('class="demo-row-error"') :]
        row = row[: row.index("</span>")]
        assert "Broken right now; the template\u2019s admins have been told." in row
        assert "image pull error" not in row

    def test_a_broken_demo_offers_no_new_link_and_says_why(
        self, alice: User, template: DemoTemplate
    ) -> None:
        demo = failed(template, alice)
        client = logged_in(alice)
        html = client.get(detail_url(demo)).content.decode()
        assert reverse("demos:create_link", args=[demo.public_id]) not in html
        assert "A broken demo cannot be shared." in html

        response = client.post(
            reverse("demos:create_link", args=[demo.public_id]),
            {"recipient": "Pat", "ends": "demo"},
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 200
        assert "A broken demo cannot be shared." in response.content.decode()
        assert not ShareLink.objects.exists()


class TestEmails:
    def test_the_owner_gets_plain_words_and_the_admins_the_cause(
        self, told: Any, alice: User, template_admin: User, template: DemoTemplate
    ) -> None:
        with told():
            demo = failed(template, alice)
        [owner_mail] = emails_to(alice.email)
        assert "broken right now" in owner_mail.body
        assert "admins have been told" in owner_mail.body
        assert detail_url(demo) in owner_mail.body
        assert "image pull error" not in owner_mail.body
        [admin_mail] = emails_to(template_admin.email)
        assert CAUSE in admin_mail.body
        assert DETAIL in admin_mail.body
        assert reverse("demos:studio_template", args=[template.slug]) in admin_mail.body

    def test_admins_hear_once_per_template_in_ten_minutes(
        self, told: Any, alice: User, bob: User, template_admin: User, template: DemoTemplate
    ) -> None:
        other = make_template("crm", name="CRM")
        with told():
            failed(template, alice)
            failed(template, bob)
            failed(other, bob)
        assert len(emails_to(alice.email)) == 1
        assert len(emails_to(bob.email)) == 2
        subjects = [message.subject for message in emails_to(template_admin.email)]
        assert subjects == ["A Webshop demo failed", "A CRM demo failed"]

    def test_without_redis_admins_are_still_told(self) -> None:
        with mock.patch.object(cache, "add", side_effect=RedisError("down")):
            assert notifications._admins_not_told_recently(1)

    def test_a_test_launch_tells_only_the_admin_who_launched_it(
        self, told: Any, template_admin: User, manager: User, template: DemoTemplate
    ) -> None:
        other_admin = User.objects.create_superuser("root", "root@example.com", "x")
        with told():
            demo = failed(template, template_admin, test_launch=True)
        [launch_mail] = mail.outbox
        assert launch_mail.to == [template_admin.email]
        assert "Your test launch" in launch_mail.body
        assert reverse("demos:studio_launch", args=[template.slug, demo.public_id]) in (
            launch_mail.body
        )
        assert not emails_to(other_admin.email)

    def test_a_spare_tells_the_admins_only(
        self, told: Any, template_admin: User, template: DemoTemplate
    ) -> None:
        with told():
            failed(template, None)
        [spare_mail] = mail.outbox
        assert spare_mail.to == [template_admin.email]
        assert "A warm-pool spare" in spare_mail.body


class TestFlag:
    def test_three_failed_starts_in_a_row_take_it_out_of_the_catalog(
        self, told: Any, alice: User, template_admin: User, template: DemoTemplate
    ) -> None:
        with told():
            for _ in range(3):
                demo = failed(template, alice)
        template.refresh_from_db()
        assert template.flagged_at is not None
        assert template.flag_reason == CAUSE
        assert demo.events.filter(kind="template-flagged").exists()
        # The flag is news even inside the cooldown: the admins hear of the first failure and
        # of the flag.
        admin_mails = emails_to(template_admin.email)
        assert len(admin_mails) == 2
        assert "taken out of the catalog" in admin_mails[-1].body

        client = logged_in(alice)
        catalog = client.get(reverse("demos:catalog")).content.decode()
        assert f"template-{template.slug}" not in catalog
        start_url = reverse("demos:start", args=[template.slug])
        assert "is not available right now" in client.get(start_url).content.decode()
        response = client.post(start_url, {"start_token": new_start_token(), "lifetime": 7200})
        assert response.status_code == 409
        assert "is not available right now" in response.content.decode()
        assert Demo.objects.filter(template=template).count() == 3

    def test_a_demo_that_starts_counts_from_zero_again(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        failed(template, alice)
        failed(template, alice)
        make_demo(template, alice, Status.READY)
        failed(template, alice)
        template.refresh_from_db()
        assert (template.consecutive_failures, template.flagged_at) == (1, None)

    def test_test_launches_do_not_count(
        self, template_admin: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        for _ in range(3):
            failed(template, template_admin, test_launch=True)
        template.refresh_from_db()
        assert (template.consecutive_failures, template.flagged_at) == (0, None)

    def test_the_number_is_a_setting(
        self, settings: Any, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        settings.DEMO_TEMPLATE_FLAG_AFTER = 2
        failed(template, alice)
        failed(template, alice)
        template.refresh_from_db()
        assert template.flagged_at is not None

    def test_the_studio_shows_the_flag_and_an_admin_puts_it_back(
        self, admin_client: Client, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        for _ in range(3):
            failed(template, alice)
        listing = admin_client.get(reverse("demos:studio")).content.decode()
        assert FLAG_NOTE in listing
        page = admin_client.get(reverse("demos:studio_template", args=[template.slug]))
        assert f"{FLAG_NOTE}: {CAUSE}" in page.content.decode()
        assert "Put back in the catalog" in page.content.decode()

        response = admin_client.post(reverse("demos:studio_put_back", args=[template.slug]))

        assert response.status_code == 302
        template.refresh_from_db()
        assert (template.flagged_at, template.flag_reason, template.consecutive_failures) == (
            None,
            "",
            0,
        )
        entry = LogEntry.objects.get(object_id=str(template.pk))
        assert entry.change_message.startswith("Put back in the catalog")
        assert CAUSE in entry.change_message
        page = admin_client.get(reverse("demos:studio_template", args=[template.slug]))
        assert FLAG_NOTE not in page.content.decode()
        catalog = logged_in(alice).get(reverse("demos:catalog")).content.decode()
        assert f"template-{template.slug}" in catalog

    def test_salespeople_cannot_put_it_back(
        self, alice: User, template: DemoTemplate, rq_redis: Any
    ) -> None:
        for _ in range(3):
            failed(template, alice)
        response = logged_in(alice).post(reverse("demos:studio_put_back", args=[template.slug]))
        assert response.status_code == 403
        template.refresh_from_db()
        assert template.flagged_at is not None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
class TestEndToEnd:
    def test_a_broken_template_fails_tells_people_and_leaves_the_catalog_until_put_back(
        self, settings: Any, rq_redis: Any, alice: User, template_admin: User
    ) -> None:
        settings.DEMO_SIM_FAIL_TEMPLATES = ["broken"]
        template = make_template("broken", name="Broken app")
        sales, admin = logged_in(alice), logged_in(template_admin)
        start_url = reverse("demos:start", args=[template.slug])

        for attempt in range(3):
            assert "template-broken" in sales.get(reverse("demos:catalog")).content.decode()
            response = sales.post(start_url, {"start_token": new_start_token(), "lifetime": 7200})
            assert response.status_code == 302, attempt
            run_jobs()
        demos = list(Demo.objects.filter(template=template))
        assert [demo.status for demo in demos] == [Status.FAILED] * 3
        assert PLAIN_WORDS in sales.get(detail_url(demos[0])).content.decode()

        assert len(emails_to(alice.email)) == 3
        admin_mails = emails_to(template_admin.email)
        assert len(admin_mails) == 2  # the first failure, then the flag
        assert "simulated" in admin_mails[0].body
        assert "taken out of the catalog" in admin_mails[1].body

        assert "template-broken" not in sales.get(reverse("demos:catalog")).content.decode()
        refused = sales.post(start_url, {"start_token": new_start_token(), "lifetime": 7200})
        assert refused.status_code == 409
        assert FLAG_NOTE in admin.get(reverse("demos:studio")).content.decode()

        admin.post(reverse("demos:studio_put_back", args=[template.slug]))
        assert "template-broken" in sales.get(reverse("demos:catalog")).content.decode()
