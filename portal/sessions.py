"""The session engine: Django's cached database sessions, in the tolerant `sessions` cache.

Each session is read from Redis and written to both; while Redis is away the database alone
serves (portal/tolerant_cache.py), so signing in, signing out and every page keep working.

Sessions signed in before the cached user backend (portal/auth_backend.py) name Django's
`ModelBackend`, which that backend extends without changing what it accepts: such a session is
read as if signed in through it, so it keeps working and gets the cached user too, and Django's
backend need not stay listed (where it would check every refused password a second time).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.backends import cached_db

EARLIER_BACKEND = "django.contrib.auth.backends.ModelBackend"
CURRENT_BACKEND = "portal.auth_backend.CachedModelBackend"


def _current_backend(data: dict[str, Any]) -> dict[str, Any]:
    if data.get(BACKEND_SESSION_KEY) == EARLIER_BACKEND:
        data[BACKEND_SESSION_KEY] = CURRENT_BACKEND
    return data


class SessionStore(cached_db.SessionStore):
    def load(self) -> dict[str, Any]:
        return _current_backend(super().load())

    async def aload(self) -> dict[str, Any]:
        return _current_backend(await super().aload())
