"""Sealing: kubeconfigs encrypted at rest, key rotation, the reseal command and the deploy check."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.checks import Tags, run_checks
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from demos.models import Demo
from portal.checks import check_sealing_keys
from portal.management.commands import reseal as reseal_command
from portal.sealing import SealingError, reseal, seal, unseal
from tests.conftest import make_demo
from tests.test_settings import PRODUCTION, _manage

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
LOST_KEY = Fernet.generate_key().decode()
KUBECONFIG = "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user: {token: s3cret-é}\n"


def keys(*keys: str) -> override_settings:
    return override_settings(SEALING_KEYS=list(keys))


class TestSealing:
    def test_it_round_trips(self) -> None:
        with keys(OLD_KEY):
            token = seal(KUBECONFIG)
            assert unseal(token) == KUBECONFIG
        assert token.isascii()
        assert "s3cret" not in token
        with keys(OLD_KEY):
            assert seal(KUBECONFIG) != token  # a fresh IV every time

    def test_without_keys_it_uses_one_derived_from_secret_key(self) -> None:
        with keys():
            token = seal(KUBECONFIG)
            assert unseal(token) == KUBECONFIG
        with (
            keys(),
            override_settings(SECRET_KEY="another-secret-key"),
            pytest.raises(SealingError),
        ):
            unseal(token)
        with keys(OLD_KEY), pytest.raises(SealingError):
            unseal(token)

    def test_a_rotated_key_list_reads_values_sealed_with_the_old_key(self) -> None:
        with keys(OLD_KEY):
            token = seal(KUBECONFIG)
        with keys(NEW_KEY, OLD_KEY):
            assert unseal(token) == KUBECONFIG
            fresh = seal(KUBECONFIG)
        with keys(NEW_KEY):
            assert unseal(fresh) == KUBECONFIG  # new values use the first key

    def test_reseal_moves_a_value_to_the_new_key(self) -> None:
        with keys(OLD_KEY):
            token = seal(KUBECONFIG)
        with keys(NEW_KEY, OLD_KEY):
            resealed = reseal(token)
        assert resealed != token
        with keys(NEW_KEY):
            assert unseal(resealed) == KUBECONFIG
            with pytest.raises(SealingError, match="cannot be read with any key in SEALING_KEYS"):
                unseal(token)

    @pytest.mark.parametrize("spoil", ["flipped", "truncated", "garbage", "empty"])
    def test_a_tampered_value_is_refused(self, spoil: str) -> None:
        with keys(OLD_KEY):
            token = seal(KUBECONFIG)
            spoiled = {
                "flipped": token[:40] + ("A" if token[40] != "A" else "B") + token[41:],
                "truncated": token[:-8],
                "garbage": "not a sealed value ✗",
                "empty": "",
            }[spoil]
            with pytest.raises(SealingError):
                unseal(spoiled)
            with pytest.raises(SealingError):
                reseal(spoiled)

    def test_sealing_error_is_a_value_error(self) -> None:
        assert issubclass(SealingError, ValueError)


def sealed_demo(template: Any, owner: Any, key: str | None, text: str = KUBECONFIG) -> Demo:
    demo = make_demo(template, owner)
    value = ""
    if key is not None:
        with keys(key):
            value = seal(text)
    Demo.objects.filter(pk=demo.pk).update(kubeconfig_sealed=value)
    demo.refresh_from_db()
    return demo


class TestResealCommand:
    def test_it_reseals_every_row_and_reports_the_unreadable(
        self, template: Any, alice: Any
    ) -> None:
        first = sealed_demo(template, alice, OLD_KEY)
        second = sealed_demo(template, alice, OLD_KEY, "second")
        third = sealed_demo(template, alice, NEW_KEY, "third")
        empty = sealed_demo(template, alice, None)
        lost = sealed_demo(template, alice, LOST_KEY)
        out, err = StringIO(), StringIO()
        with keys(NEW_KEY, OLD_KEY):
            call_command("reseal", "--batch-size", "2", stdout=out, stderr=err)
        assert out.getvalue().strip() == "Resealed 3 kubeconfigs; 1 unreadable (left as they are)."
        assert lost.cluster_name in err.getvalue()
        assert "no key in SEALING_KEYS opens it" in err.getvalue()
        for demo in (first, second, third, empty):
            assert demo.cluster_name not in err.getvalue()

        # The old key can go now: every readable row opens with the new one alone.
        stored = dict(Demo.objects.values_list("pk", "kubeconfig_sealed"))
        with keys(NEW_KEY):
            assert unseal(stored[first.pk]) == KUBECONFIG
            assert unseal(stored[second.pk]) == "second"
            assert unseal(stored[third.pk]) == "third"
        assert stored[empty.pk] == ""
        assert stored[lost.pk] == lost.kubeconfig_sealed

    def test_a_row_a_worker_rewrote_meanwhile_keeps_the_workers_value(
        self, template: Any, alice: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        demo = sealed_demo(template, alice, OLD_KEY)
        with keys(NEW_KEY):
            captured = seal("captured by the worker")

        def reseal_while_a_worker_writes(token: str) -> str:
            Demo.objects.filter(pk=demo.pk).update(kubeconfig_sealed=captured)
            return reseal(token)

        monkeypatch.setattr(reseal_command, "reseal", reseal_while_a_worker_writes)
        with keys(NEW_KEY, OLD_KEY):
            summary = reseal_command.reseal_kubeconfigs()
        assert (summary.resealed, summary.changed_meanwhile, summary.unreadable) == (0, 1, [])
        demo.refresh_from_db()
        assert demo.kubeconfig_sealed == captured

    def test_with_nothing_sealed_it_says_so(self, db: None) -> None:
        out = StringIO()
        call_command("reseal", stdout=out)
        assert out.getvalue().strip() == "Resealed 0 kubeconfigs; 0 unreadable (left as they are)."


class TestDeployCheck:
    def test_it_warns_when_no_keys_are_set(self) -> None:
        with keys():
            (warning,) = check_sealing_keys(None)
            assert warning.id == "portal.W001"
            assert "SEALING_KEYS is not set" in warning.msg
            # Registered (portal/apps.py), and only among the deployment checks.
            deploy = run_checks(tags=[Tags.security], include_deployment_checks=True)
            assert "portal.W001" in {message.id for message in deploy}
            assert "portal.W001" not in {m.id for m in run_checks(tags=[Tags.security])}

    def test_it_is_quiet_with_keys(self) -> None:
        with keys(NEW_KEY, OLD_KEY):
            assert check_sealing_keys(None) == []

    def test_production_settings_without_keys_fail_the_deploy_check(self) -> None:
        env = {k: v for k, v in PRODUCTION.items() if k != "SEALING_KEYS"}
        result = _manage("check", "--deploy", "--fail-level", "WARNING", **env)
        assert result.returncode != 0
        assert "portal.W001" in result.stderr + result.stdout

    def test_keys_can_come_from_a_file_one_a_line(self, tmp_path: Any) -> None:
        path = tmp_path / "SEALING_KEYS"
        path.write_text(f"{NEW_KEY}\n{OLD_KEY}\n")
        env = {k: v for k, v in PRODUCTION.items() if k != "SEALING_KEYS"}
        result = _manage(
            "check", "--deploy", "--fail-level", "WARNING", SEALING_KEYS_FILE=str(path), **env
        )
        assert result.returncode == 0, result.stderr + result.stdout

    def test_a_bad_key_stops_start_up_without_repeating_it(self) -> None:
        result = _manage("check", **{**PRODUCTION, "SEALING_KEYS": f"{NEW_KEY},not-a-key"})
        assert result.returncode != 0
        assert "SEALING_KEYS: key 2 is not a Fernet key" in result.stderr
        assert "not-a-key" not in result.stderr
        assert "Traceback" not in result.stderr


class TestAdmin:
    def test_the_demo_page_never_shows_the_sealed_kubeconfig(
        self, client: Any, template: Any, alice: Any, django_user_model: Any
    ) -> None:
        demo = sealed_demo(template, alice, None)
        token = seal(KUBECONFIG)
        Demo.objects.filter(pk=demo.pk).update(kubeconfig_sealed=token)
        client.force_login(django_user_model.objects.create_superuser("root", "root@example.com"))
        response = client.get(reverse("admin:demos_demo_change", args=[demo.pk]))
        assert response.status_code == 200
        assert demo.cluster_name in response.text
        assert token not in response.text
        assert "kubeconfig_sealed" not in response.text
        assert "Kubeconfig sealed" not in response.text
