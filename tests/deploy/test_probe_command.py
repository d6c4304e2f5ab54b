"""`manage.py probe`: the exec probe of the worker and cron pods."""

from __future__ import annotations

import io

import django_rq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError
from redis.exceptions import ConnectionError as RedisConnectionError


class _DeadRedis:
    def ping(self) -> bool:
        raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")


def probe(*args: str) -> str:
    out = io.StringIO()
    call_command("probe", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class TestProbeCommand:
    def test_it_passes_when_both_answer(self) -> None:
        assert probe("--database", "--redis") == "ok: database, redis\n"

    def test_it_is_silent_at_verbosity_zero(self) -> None:
        assert probe("--database", "-v0") == ""

    def test_it_fails_with_the_reason_when_redis_is_down(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(django_rq, "get_connection", lambda queue: _DeadRedis())
        with pytest.raises(
            CommandError, match=r"redis \(queue maintenance\): .*Connection refused"
        ):
            probe("--redis")

    def test_it_fails_with_the_reason_when_the_database_is_down(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(*args: object, **kwargs: object) -> None:
            raise DatabaseError("connection refused")

        monkeypatch.setattr("django.db.backends.utils.CursorWrapper.execute", refuse)
        with pytest.raises(CommandError, match="database: connection refused"):
            probe("--database")

    def test_it_needs_something_to_check(self) -> None:
        with pytest.raises(CommandError, match="--database, --redis or both"):
            probe()
