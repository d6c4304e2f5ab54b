"""Issue 14, the web tier: what each role could abuse, each shown refused.

Chart repositories, variables in credentials and the entry URL, login throttling, the job
dashboard, admission under the lock, the poll's `since`, and caching of pages with credentials.
(Bounded YAML: tests/test_bounded_yaml.py; logs: tests/test_gunicorn_logs.py; the prospect
rate limit: tests/test_prospect.py.)
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import django_rq
import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from demos.catalog.validation import repository_problems
from demos.engine import capacity, lifecycle
from demos.engine.lifecycle import Actor, requests
from demos.engine.specs import SpecError, render_spec
from demos.errors import LifecycleError
from demos.models import Demo, DemoTemplate, Status, TemplateChart
from demos.sharing.links import create_share_link
from tests.conftest import PASSWORD, change_url, form_data, make_demo, snapshot


def cache_directives(response: Any) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",")}


# --- Chart repositories ----------------------------------------------------------------------

INTERNAL_REPOSITORIES = [
    "https://localhost/charts",
    "https://charts.localhost/",
    "https://127.0.0.1/charts",
    "https://[::1]/charts",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/charts",
    "https://192.168.1.10/charts",
    "https://172.16.0.1/charts",
    "https://100.64.0.1/charts",
    "https://0.0.0.0/charts",
    "https://224.0.0.1/charts",
    "https://[fe80::1]/charts",
    "https://[fd00::1]/charts",
    "https://[::ffff:169.254.169.254]/charts",
    "https://[64:ff9b::a9fe:a9fe]/charts",
    "https://[2002:a9fe:a9fe::1]/charts",
    "https://2130706433/charts",
    "https://0x7f000001/charts",
    "https://0177.0.0.1/charts",
    "https://127.1/charts",
    "oci://registry.kube-system.svc/charts",
    "oci://registry.kube-system.svc.cluster.local:5000/charts",
    "oci://postgres.demo-portal.svc.cluster.local./charts",
    "https://metadata.google.internal/computeMetadata/",
    "oci://registry/charts",
    "oci://registry:5000/charts",
]


class TestChartRepositories:
    @pytest.mark.parametrize("url", INTERNAL_REPOSITORIES)
    def test_internal_addresses_are_refused(self, url: str) -> None:
        problems = repository_problems(url)
        assert len(problems) == 1
        assert problems[0].startswith(f"Chart repository “{url}”:")
        assert "DEMO_CHART_REPOSITORIES" in problems[0]

    @pytest.mark.parametrize(
        "url",
        [
            "https://charts.example.com/stable",
            "oci://ghcr.io/acme/charts",
            "oci://registry.example.com:5000/charts",
            "https://8.8.8.8/charts",
            "https://[2001:4860:4860::8888]/charts",
        ],
    )
    def test_public_repositories_are_accepted(self, url: str) -> None:
        assert repository_problems(url) == []

    def test_with_an_allow_list_only_its_prefixes_are_accepted(self, settings: Any) -> None:
        settings.DEMO_CHART_REPOSITORIES = [
            "oci://registry.example.com/charts/",
            "oci://registry.kube-system.svc:5000/mirror",
        ]
        assert repository_problems("oci://registry.example.com/charts/shop") == []
        # The operator's own in-cluster mirror, listed on purpose.
        assert repository_problems("oci://registry.kube-system.svc:5000/mirror/x") == []
        for url in (
            "oci://registry.example.com/chartsevil",
            "oci://registry.example.com.evil.test/charts/shop",
            "oci://ghcr.io/acme/charts",
        ):
            [problem] = repository_problems(url)
            assert "is not one this portal installs from" in problem
            assert "oci://registry.example.com/charts/" in problem

    def test_the_admin_form_refuses_it_on_the_field(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        before = snapshot(template)
        url = "https://169.254.169.254/latest/"
        response = admin_client.post(
            change_url(template), form_data(template, **{"charts-1-repository": url})
        )
        assert response.status_code == 200
        errors = response.context["inline_admin_formsets"][0].formset.forms[1].errors
        assert "169.254.169.254 is not a public address" in errors["repository"][0]
        assert snapshot(template) == before

    def test_a_template_saved_before_cannot_start_a_demo(
        self, template: DemoTemplate, alice: User, rq_redis: Any
    ) -> None:
        TemplateChart.objects.filter(template=template, position=0).update(
            repository="oci://registry.kube-system.svc.cluster.local/charts"
        )
        with pytest.raises(LifecycleError, match="cluster-internal or local name"):
            lifecycle.start_demo(template=template, owner=alice)


# --- Variables --------------------------------------------------------------------------------


def sample_demo(template: DemoTemplate, owner: User, **fields: Any) -> Demo:
    return Demo(template=template, owner=owner, cluster_name="demo-0123456789abcdef", **fields)


class TestVariables:
    def test_a_prospect_name_cannot_add_credentials(
        self, template: DemoTemplate, alice: User
    ) -> None:
        template.credentials = "Username: admin\nWelcome: Hello ${PROSPECT_NAME}"
        template.save()
        demo = sample_demo(template, alice, prospect_name="Pat\nAdmin password: hunter2")
        credentials = render_spec(demo)["credentials"]
        assert credentials == {
            "Username": "admin",
            "Welcome": "Hello Pat Admin password: hunter2",
        }

    def test_a_value_with_yaml_syntax_stays_a_value(
        self, template: DemoTemplate, alice: User
    ) -> None:
        template.credentials = "Company: ${PROSPECT_COMPANY}"
        template.save()
        demo = sample_demo(template, alice, prospect_company='Acme: "Inc" # {x: [1]}')
        assert render_spec(demo)["credentials"] == {"Company": 'Acme: "Inc" # {x: [1]}'}

    def test_a_value_cannot_start_a_block_in_the_instructions(
        self, template: DemoTemplate, alice: User
    ) -> None:
        template.instructions = "Welcome, ${PROSPECT_NAME}.\n\nLog in as **admin**."
        template.save()
        name = "Pat\n\n# Urgent\n\n[Reset your password](https://evil.example/)"
        instructions = render_spec(sample_demo(template, alice, prospect_name=name))["instructions"]
        first_line = instructions.split("\n")[0]
        assert first_line == ("Welcome, Pat # Urgent [Reset your password](https://evil.example/).")
        assert instructions.endswith("\n\nLog in as **admin**.")

    @pytest.mark.parametrize(
        "url",
        [
            "https://${PROSPECT_COMPANY}/",
            "https://${DEMO_HOST}.${PROSPECT_COMPANY}.example/",
            "https://${OWNER_NAME}@${DEMO_HOST}/",
            "https://${DEMO_HOST}:${DEMO_ID}/",
            "${PROSPECT_NAME}://${DEMO_HOST}/",
        ],
    )
    def test_only_the_demo_host_may_be_in_the_entry_urls_host(
        self, admin_client: Client, template: DemoTemplate, url: str
    ) -> None:
        before = snapshot(template)
        response = admin_client.post(change_url(template), form_data(template, entry_url=url))
        assert response.status_code == 200
        [error] = response.context["adminform"].form.errors["entry_url"]
        assert "cannot be part of the address's scheme or host" in error
        assert "only ${DEMO_HOST} may be there" in error
        assert snapshot(template) == before

    def test_other_variables_may_be_in_the_path_and_query(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        url = "https://${DEMO_HOST}/welcome/${DEMO_ID}?company=${PROSPECT_COMPANY}"
        response = admin_client.post(change_url(template), form_data(template, entry_url=url))
        assert response.status_code == 302
        template.refresh_from_db()
        assert template.entry_url == url

    def test_a_template_saved_before_cannot_render(
        self, template: DemoTemplate, alice: User
    ) -> None:
        DemoTemplate.objects.filter(pk=template.pk).update(entry_url="https://${PROSPECT_COMPANY}/")
        template.refresh_from_db()
        with pytest.raises(SpecError, match="Entry URL: \\$\\{PROSPECT_COMPANY\\} cannot be"):
            render_spec(sample_demo(template, alice, prospect_company="evil.example"))


# --- Login throttling -------------------------------------------------------------------------


def log_in(client: Client, username: str, password: str, address: str = "192.0.2.10") -> Any:
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def logged_in(response: Any) -> bool:
    return response.status_code == 302 and response.client.session.get("_auth_user_id")


class TestLoginThrottling:
    def test_wrong_passwords_lock_the_user_and_address_then_cool_off(
        self, settings: Any, alice: User, bob: User
    ) -> None:
        limit = settings.LOGIN_FAILURE_LIMIT
        assert limit == settings.AXES_FAILURE_LIMIT
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            for _ in range(limit - 1):
                response = log_in(Client(), "alice", "wrong")
                assert response.status_code == 200
                assert "Please enter a correct username and password" in response.text
            assert log_in(Client(), "alice", "wrong").status_code == 429

            refused = log_in(Client(), "alice", PASSWORD)
            assert refused.status_code == 429
            assert not refused.client.session.get("_auth_user_id")
            assert "Too many failed log-ins" in refused.text
            assert "try again in 15 minutes" in refused.text
            assert "ask a portal admin" in refused.text
            assert '<link rel="stylesheet" href="/static/css/portal.css">' in refused.text
            assert "no-store" in cache_directives(refused)

            # Someone else, and the same person from elsewhere, are not affected.
            assert logged_in(log_in(Client(), "bob", PASSWORD))
            assert logged_in(log_in(Client(), "alice", PASSWORD, address="198.51.100.20"))

        with time_machine.travel(start + timedelta(minutes=14), tick=False):
            assert log_in(Client(), "alice", PASSWORD).status_code == 429
        with time_machine.travel(start + timedelta(minutes=16), tick=False):
            assert logged_in(log_in(Client(), "alice", PASSWORD))

    def test_an_admin_can_unlock_at_once(self, settings: Any, alice: User) -> None:
        for _ in range(settings.LOGIN_FAILURE_LIMIT):
            log_in(Client(), "alice", "wrong")
        assert log_in(Client(), "alice", PASSWORD).status_code == 429
        call_command("axes_reset_username", "alice", verbosity=0)
        assert logged_in(log_in(Client(), "alice", PASSWORD))

    def test_the_admin_login_is_throttled_too(self, settings: Any, template_admin: User) -> None:
        for _ in range(settings.LOGIN_FAILURE_LIMIT):
            Client().post(
                reverse("admin:login"),
                {"username": "tara", "password": "wrong"},
                REMOTE_ADDR="192.0.2.10",
            )
        response = Client().post(
            reverse("admin:login"),
            {"username": "tara", "password": PASSWORD},
            REMOTE_ADDR="192.0.2.10",
        )
        assert response.status_code == 429

    def test_it_works_while_redis_is_down(self, settings: Any, alice: User) -> None:
        settings.CACHES = {
            alias: {**config, "LOCATION": "redis://127.0.0.1:1/0"}  # nothing listens there
            for alias, config in settings.CACHES.items()
        }
        for _ in range(settings.LOGIN_FAILURE_LIMIT):
            log_in(Client(), "alice", "wrong")
        assert log_in(Client(), "alice", PASSWORD).status_code == 429

    def test_the_address_comes_from_trusted_proxies_only(self, settings: Any, alice: User) -> None:
        # Rotating X-Forwarded-For from an unknown peer is one client, and gets locked.
        for number in range(settings.LOGIN_FAILURE_LIMIT):
            Client().post(
                reverse("login"),
                {"username": "alice", "password": "wrong"},
                REMOTE_ADDR="203.0.113.9",
                HTTP_X_FORWARDED_FOR=f"198.51.100.{number}",
            )
        response = Client().post(
            reverse("login"),
            {"username": "alice", "password": PASSWORD},
            REMOTE_ADDR="203.0.113.9",
            HTTP_X_FORWARDED_FOR="198.51.100.99",
        )
        assert response.status_code == 429


# --- The job dashboard ------------------------------------------------------------------------


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


class TestJobDashboard:
    def test_a_template_admin_cannot_empty_a_queue(
        self, client: Client, template_admin: User, rq_redis: Any
    ) -> None:
        queue = django_rq.get_queue("maintenance")
        queue.enqueue("demos.engine.jobs.admit_job")
        client.force_login(template_admin)
        assert client.get("/admin/rq/").status_code == 403
        response = client.post("/admin/rq/queues/actions/1/", {"action": "delete"})
        assert response.status_code == 403
        response = client.post("/admin/rq/queues/1/empty/")
        assert response.status_code == 403
        assert queue.count == 1

    def test_a_superuser_can(self, client: Client, superuser: User, rq_redis: Any) -> None:
        queue = django_rq.get_queue("maintenance")
        queue.enqueue("demos.engine.jobs.admit_job")
        client.force_login(superuser)
        for page in ("/admin/rq/", "/admin/rq/queues/1/", "/admin/rq/workers/1/"):
            assert client.get(page).status_code == 200, page
        assert client.get("/admin/rq/stats.json").status_code == 200
        assert client.post("/admin/rq/queues/1/empty/").status_code == 302
        assert queue.count == 0

    def test_the_dashboard_is_not_mounted_in_the_admin_too(
        self, client: Client, superuser: User
    ) -> None:
        client.force_login(superuser)
        assert client.get("/admin/django_rq/dashboard/").status_code == 404


# --- Admission --------------------------------------------------------------------------------


class TestAdmission:
    def test_the_spec_is_rendered_before_the_lock_and_the_queue_checked_under_it(
        self, template: DemoTemplate, alice: User, monkeypatch: Any, rq_redis: Any
    ) -> None:
        steps: list[str] = []

        def spy(name: str, original: Any) -> Any:
            def recorded(*args: Any, **kwargs: Any) -> Any:
                steps.append(name)
                return original(*args, **kwargs)

            return recorded

        monkeypatch.setattr(requests, "render_spec", spy("render", requests.render_spec))
        monkeypatch.setattr(capacity, "lock_admission", spy("lock", capacity.lock_admission))
        monkeypatch.setattr(capacity, "check_user_limit", spy("check", capacity.check_user_limit))
        lifecycle.start_demo(template=template, owner=alice)
        assert steps == ["render", "lock", "check"]

        steps.clear()
        lifecycle.start_spare(template=template)
        assert steps == ["render", "lock"]

    @pytest.mark.django_db(transaction=True)
    def test_parallel_starts_queue_no_more_than_the_limit(
        self, settings: Any, template: DemoTemplate, alice: User, bob: User, rq_redis: Any
    ) -> None:
        """Real concurrent transactions: PostgreSQL's advisory lock, or SQLite's write lock."""
        settings.DEMO_MAX_ACTIVE_TOTAL = 1
        settings.DEMO_MAX_ACTIVE_PER_USER = 3
        make_demo(template, bob)  # the one running demo: every start below queues
        starts = 11
        barrier = threading.Barrier(starts)
        outcomes: list[str] = []

        def start() -> None:
            try:
                barrier.wait(10)
                lifecycle.start_demo(template=template, owner=alice)
                outcomes.append("queued")
            except capacity.CapacityError:
                outcomes.append("refused")
            finally:
                connection.close()

        threads = [threading.Thread(target=start) for _ in range(starts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(outcomes) == ["queued"] * 3 + ["refused"] * 8
        assert Demo.objects.filter(owner=alice, status=Status.QUEUED).count() == 3


# --- The status poll and caching ----------------------------------------------------------------


class TestPagesWithCredentials:
    @pytest.fixture
    def demo(self, template: DemoTemplate, alice: User) -> Demo:
        return make_demo(template, alice)

    @pytest.mark.parametrize("since", ["²", "abc", "-1", "1.5", "1e3", "0x10", "9" * 40, "١٢"])
    def test_junk_since_is_a_bad_request(
        self, client: Client, alice: User, demo: Demo, since: str
    ) -> None:
        client.force_login(alice)
        client.raise_request_exception = False
        response = client.get(reverse("demos:status", args=[demo.public_id]), {"since": since})
        assert response.status_code == 400

    def test_a_real_event_id_is_fine(self, client: Client, alice: User, demo: Demo) -> None:
        client.force_login(alice)
        url = reverse("demos:status", args=[demo.public_id])
        assert client.get(url, {"since": "0"}).status_code == 286
        assert client.get(url, {"since": ""}).status_code == 286

    def test_the_salesperson_pages_are_never_cached(
        self, client: Client, alice: User, demo: Demo
    ) -> None:
        client.force_login(alice)
        pages = [
            client.get(reverse("demos:detail", args=[demo.public_id])),
            client.get(reverse("demos:status", args=[demo.public_id])),
            client.get(reverse("demos:share_panel", args=[demo.public_id])),
            client.post(
                reverse("demos:action", args=[demo.public_id, "extend"]),
                headers={"HX-Request": "true"},
            ),
        ]
        assert "Username" in pages[0].text  # the credentials are on it
        for response in pages:
            assert {"no-store", "private"} <= cache_directives(response), response

    def test_the_prospect_pages_are_never_cached(
        self, client: Client, alice: User, demo: Demo
    ) -> None:
        token = create_share_link(demo=demo, actor=Actor.of(alice), recipient="Pat").token
        for name in ("prospect:landing", "prospect:status"):
            response = client.get(reverse(name, args=[token]))
            assert response.status_code == 200
            assert {"no-store", "private"} <= cache_directives(response)
