"""Configuration: bad values stop start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 60 + "-production-like-secret-key-for-the-deploy-check",
    "ALLOWED_HOSTS": "demos.example.com",
    "SITE_URL": "https://demos.example.com",
    # A Fernet key (32 bytes, URL-safe base64); without one, check --deploy warns (portal.W001).
    "SEALING_KEYS": "ZGVwbG95LWNoZWNrLW9ubHktc2VhbGluZy1rZXktMzI=",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG"))}
    clean.pop("SECRET_KEY", None)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestConfiguration:
    @pytest.mark.parametrize(
        ("env", "named"),
        [
            ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
            ({"DEBUG": "false"}, "SECRET_KEY is required"),
            ({"DEBUG": "true", "DEMO_MAX_ACTIVE_TOTAL": "lots"}, "DEMO_MAX_ACTIVE_TOTAL='lots'"),
            ({"DEBUG": "true", "DEMO_EXPIRY_WARNING_MINUTES": "60,soon"}, "DEMO_EXPIRY_WARNING"),
            ({"DEBUG": "true", "DEMO_BACKEND": "kind"}, "DEMO_BACKEND='kind'"),
            (
                {"DEBUG": "true", "TRUSTED_PROXY_NETWORKS": "10.0.0.0/8,10.0.0.0/33"},
                "TRUSTED_PROXY_NETWORKS: '10.0.0.0/33' is not an IP address or network",
            ),
            (
                {"DEBUG": "true", "TRUST_X_FORWARDED_FOR": "true"},
                "TRUST_X_FORWARDED_FOR is replaced by TRUSTED_PROXY_NETWORKS",
            ),
            (
                {"DEBUG": "true", "DEMO_CHART_REPOSITORIES": "http://charts.example.com"},
                "DEMO_CHART_REPOSITORIES='http://charts.example.com': each prefix must start",
            ),
            ({"DEBUG": "true", "LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT=0 must be at"),
            (
                {"DEBUG": "true", "DEMO_BACKEND": "vcluster", "VCLUSTER_API_SERVER": "https://{x}"},
                "VCLUSTER_API_SERVER='https://{x}' uses unknown placeholder",
            ),
            (
                {"DEBUG": "true", "VCLUSTER_HELM_TIMEOUT": "soon"},
                "VCLUSTER_HELM_TIMEOUT='soon' is not a whole number",
            ),
        ],
    )
    def test_a_bad_value_stops_with_a_message_naming_it(
        self, env: dict[str, str], named: str
    ) -> None:
        result = _manage("check", **env)
        assert result.returncode != 0
        assert named in result.stderr
        assert "Traceback" not in result.stderr

    def test_production_settings_pass_the_deploy_check(self) -> None:
        result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
        assert result.returncode == 0, result.stderr + result.stdout
        assert "no issues" in result.stdout

    def test_secret_key_can_come_from_a_file(self, tmp_path: object) -> None:
        secret = tmp_path / "secret"  # type: ignore[operator]
        secret.write_text(PRODUCTION["SECRET_KEY"])
        env = {**PRODUCTION, "SECRET_KEY_FILE": str(secret)}
        env.pop("SECRET_KEY")
        result = _manage("check", "--deploy", "--fail-level", "WARNING", **env)
        assert result.returncode == 0, result.stderr
