"""Share-link tokens never reach a log: a real gunicorn, real requests, the real log files.

gunicorn runs as in the image (docker-entrypoint.sh's config file) on a free loopback port,
against the test database, with its access log and its stderr (where Django's logging writes)
going to files that the test then reads.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demos.engine.lifecycle import Actor
from demos.models import DemoTemplate
from demos.sharing.links import create_share_link
from portal.redaction import REDACTED, RedactShareTokens, redact_share_tokens
from tests.conftest import ROOT, make_demo
from tests.gunicorn_server import CONFIG, Gunicorn, get, portal_env


@pytest.fixture
def gunicorn(tmp_path: Path, transactional_db: None, rq_redis: Any) -> Iterator[Gunicorn]:
    # Low, so a few wrong tokens reach the 429 answer.
    env = portal_env(PROSPECT_FAILURE_LIMIT="2")
    server = Gunicorn(tmp_path, env)
    yield server
    server.stop()


class TestRealGunicorn:
    def test_tokens_are_redacted_in_the_access_log_and_djangos_log(
        self, gunicorn: Gunicorn, template: DemoTemplate, alice: Any
    ) -> None:
        demo = make_demo(template, alice)
        token = create_share_link(demo=demo, actor=Actor.of(alice), recipient="Pat").token
        wrong = [secrets.token_urlsafe(32) for _ in range(3)]

        assert get(gunicorn.url(f"/p/{token}/")) == 200
        assert get(gunicorn.url(f"/p/{token}/status/")) == 200
        assert [get(gunicorn.url(f"/p/{guess}/")) for guess in wrong] == [404, 404, 429]
        gunicorn.stop()  # flushes and closes both logs

        access = gunicorn.access_log.read_text()
        django_log = gunicorn.error_log.read_text()
        for secret in (token, *wrong):
            assert secret not in access
            assert secret not in django_log
        assert access.count(f"/p/{REDACTED}/") == 5, access
        assert f"GET /p/{REDACTED}/status/ HTTP/1.1" in access
        assert f"Not Found: /p/{REDACTED}/" in django_log, django_log
        assert f"Too Many Requests: /p/{REDACTED}/" in django_log, django_log


class TestConfig:
    def test_forwarded_headers_are_trusted_from_the_portals_proxies_only(self) -> None:
        def printed(**env: str) -> str:
            command = ["gunicorn", "portal.wsgi:application", "--config", CONFIG, "--print-config"]
            result = subprocess.run(
                [sys.executable, "-m", *command],
                cwd=ROOT,
                env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings_test", **env},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            return next(
                line.split("=", 1)[1].strip()
                for line in result.stdout.splitlines()
                if line.startswith("forwarded_allow_ips")
            )

        # Not gunicorn's default (127.0.0.1 and ::1) nor "*": nobody, unless configured.
        assert printed(TRUSTED_PROXY_NETWORKS="") == "[]"
        assert printed(TRUSTED_PROXY_NETWORKS="10.244.0.0/16, fd00::/8") == (
            "['10.244.0.0/16', 'fd00::/8']"
        )


class TestRedaction:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("GET /p/abc-DEF_123/ HTTP/1.1", f"GET /p/{REDACTED}/ HTTP/1.1"),
            ("/p/abc/status/?x=1", f"/p/{REDACTED}/status/?x=1"),
            ("https://portal.example.com/p/abc", f"https://portal.example.com/p/{REDACTED}"),
            ("/p/%41bc/more-time/", f"/p/{REDACTED}/more-time/"),
            ("/demos/p/", "/demos/p/"),
            ("/pages/abc/", "/pages/abc/"),
            (
                "GET /password/reset/MTI/set-password/ HTTP/1.1",
                f"GET /password/reset/MTI/{REDACTED}/ HTTP/1.1",
            ),
            ("/password/reset/MTI/cz1-abc123/", f"/password/reset/MTI/{REDACTED}/"),
            ("/password/reset/sent/", "/password/reset/sent/"),
            (
                "/.portal-gate/enter?ticket=c.1.l2.99:x:y&next=%2F",
                f"/.portal-gate/enter?ticket={REDACTED}&next=%2F",
            ),
        ],
    )
    def test_it_replaces_the_secrets_urls_carry(self, text: str, expected: str) -> None:
        assert redact_share_tokens(text) == expected

    def test_the_filter_rewrites_the_formatted_message(self) -> None:
        import logging

        record = logging.LogRecord(
            "django.request", logging.WARNING, __file__, 1, "Not Found: %s", ("/p/abc/",), None
        )
        assert RedactShareTokens().filter(record) is True
        assert record.getMessage() == f"Not Found: /p/{REDACTED}/"
