"""Settings for the test suite: fast, isolated, and still on the real database and Redis."""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")


def _redis_database() -> int:
    """Tests use their own Redis database, so a running `make run` is never disturbed; each
    parallel test process (pytest-xdist's gw0, gw1, ...) has one of its own, as it has its own
    PostgreSQL database. 14 and 15 first; 13 stays the benchmark's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    number = int(worker) if worker.isdigit() else 0
    return 14 + number if number < 2 else 13 - number


# Set in the environment, so the worker processes tests start inherit the same database. A value
# this module chose is chosen again in each test process (pytest-xdist's processes inherit the
# environment of the one that starts them); a REDIS_URL given from outside (by the person running
# the tests, or by a test for a process of its own) is kept.
if os.environ.get("REDIS_URL") in (None, os.environ.get("PORTAL_TEST_REDIS_CHOSEN")):
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{_redis_database()}"
    os.environ["PORTAL_TEST_REDIS_CHOSEN"] = os.environ["REDIS_URL"]
os.environ.setdefault("DEMO_SIM_STEP_SECONDS", "0")
os.environ.setdefault("DEMO_OBSERVE_INTERVAL", "0.05")
# The gate decides and counts at each request: tests see a change at once. Tests of the
# gate's one-second hold set it themselves.
os.environ.setdefault("DEMO_GATE_CACHE_SECONDS", "0")

# The environment above must be set before the settings read it.
from portal.settings import *  # noqa: E402, F403
from portal.settings import DATABASES, STORAGES, VAR_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SECURE_SSL_REDIRECT = False
# Serve static files straight from the source folders, so tests need no collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT = VAR_DIR / "test-static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Inside a test transaction nothing commits: enqueue at once instead of on commit.
RQ = {"COMMIT_MODE": "auto"}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so a real worker process can share the test database; one per run so
    # parallel runs on one machine never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-portal-{os.getpid()}.sqlite3")}
