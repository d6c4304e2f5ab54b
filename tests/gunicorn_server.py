"""A real gunicorn for tests: the portal as the image runs it (docker-entrypoint.sh's config
file), on a free loopback port, its access log and its stderr (where Django's logging writes) in
files the test reads."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, _database_url, _die_with_parent, wait_for

CONFIG = "python:portal.gunicorn_conf"


def portal_env(**overrides: str) -> dict[str, str]:
    """The environment of a portal process on the test database, with `overrides`."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings_test",
        "DATABASE_URL": _database_url(),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
        **overrides,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class Gunicorn:
    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str) -> None:
        """`args` are more of gunicorn's flags (one worker, its defaults, otherwise)."""
        self.port = _free_port()
        self.access_log = tmp_path / "access.log"
        self.error_log = tmp_path / "stderr.log"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi:application",
                "--config",
                CONFIG,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--access-logfile",
                str(self.access_log),
                "--no-control-socket",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=self.error_log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        wait_for(self._answers, 30, "gunicorn did not start")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _answers(self) -> bool:
        assert self.process.poll() is None, self.error_log.read_text()
        try:
            return get(self.url("/healthz")) in (200, 503)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(20)
