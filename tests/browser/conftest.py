"""Browser tests: Playwright drives Debian's Chromium against the live test server.

The live server and a real worker process share the test database (a file), so what the browser
sees is what a salesperson would: a demo moved along by the worker, not by the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import ConsoleMessage, Page

from demos import roles
from tests.conftest import PASSWORD, ROOT, WorkerProcess

# Sync Playwright runs an event loop in the test thread; Django's ORM calls from fixtures in
# that thread are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _chromium() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    executable = _chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": DESKTOP, "locale": "en-GB"}


@pytest.fixture
def csp_violations(page: Page) -> list[str]:
    """Console errors of the page; a Content-Security-Policy violation shows up here."""
    errors: list[str] = []

    def collect(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", collect)
    return errors


def start_worker(worker_env: dict[str, str], **env: str) -> WorkerProcess:
    worker_env.update(env)
    process = WorkerProcess(worker_env)
    process.start()
    return process


def stop_worker(process: WorkerProcess) -> None:
    process.stop()
    from rq import Worker

    for stale in Worker.all(connection=django_rq.get_connection("demos")):
        stale.register_death()


@pytest.fixture
def site_url(live_server: Any, settings: Any) -> str:
    """The live server is the site: the simulated backend builds live links from SITE_URL."""
    settings.SITE_URL = live_server.url
    return live_server.url


@pytest.fixture
def quick_worker(worker_env: dict[str, str], site_url: str) -> Iterator[WorkerProcess]:
    """A real worker whose simulated demos are ready at once."""
    process = start_worker(worker_env, SITE_URL=site_url, DEMO_SIM_STEP_SECONDS="0")
    yield process
    stop_worker(process)


@pytest.fixture
def watchable_worker(worker_env: dict[str, str], site_url: str) -> Iterator[WorkerProcess]:
    """A real worker whose simulated steps take long enough to watch them advance: longer than
    the page's two-second poll, so every step shows on its own however the polls fall."""
    process = start_worker(worker_env, SITE_URL=site_url, DEMO_SIM_STEP_SECONDS="2.5")
    yield process
    stop_worker(process)


@pytest.fixture
def sales_user(transactional_db: None) -> User:
    user = User.objects.create_user(
        "sales", "sales@example.com", PASSWORD, first_name="Sam", last_name="Seller"
    )
    user.groups.add(Group.objects.get(name=roles.SALES))
    return user


def log_in(page: Page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def screenshot(page: Page, name: str) -> None:
    """Save the page at desktop and phone width, whole length, for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size or DESKTOP
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(original)
