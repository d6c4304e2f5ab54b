"""Each template's typical time to ready, kept as demos become ready rather than computed per view.

The catalog (the landing page) shows it on every card. Computing it there meant a window function
over every demo the portal ever started; here it is refreshed once per demo that becomes ready,
from that template's latest demos only (an index scan of `RECENT_DEMOS` rows).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from redis.exceptions import RedisError

from demos.durations import percentile
from demos.models import Demo, TemplateSpeed

# How many of a template's latest demos the typical time to ready is the median of.
RECENT_DEMOS = 20
# A starting demo's page polls every two seconds and shows its template's figure: it is read
# from the cache, kept at most this long, and dropped when the figure is refreshed.
CACHED_FOR = timedelta(minutes=1)


def _cache_key(template_id: int) -> str:
    return f"typical-time-to-ready:{template_id}"


def counted(template_id: int) -> list[timedelta]:
    """The samples the figure is made of: the template's latest demos that someone started and
    waited for (not warm-pool spares, which nobody waited for, nor restores, which skip the
    installs, nor an admin's test launches of a draft, which is not what salespeople start)."""
    return list(
        Demo.objects.filter(
            template_id=template_id,
            time_to_ready__isnull=False,
            is_spare=False,
            is_test_launch=False,
            restored_from__isnull=True,
        )
        .order_by("-ready_at")
        .values_list("time_to_ready", flat=True)[:RECENT_DEMOS]
    )


def refresh(template_id: int) -> TemplateSpeed:
    samples = counted(template_id)
    speed, _created = TemplateSpeed.objects.update_or_create(
        template_id=template_id,
        defaults={
            "typical_time_to_ready": percentile(samples, 50) if samples else None,
            "samples": len(samples),
        },
    )
    transaction.on_commit(lambda: _forget(template_id))
    return speed


def _forget(template_id: int) -> None:
    with contextlib.suppress(RedisError):
        cache.delete(_cache_key(template_id))


def typical_times_to_ready(template_ids: list[int]) -> dict[int, timedelta]:
    """The kept figure of each template; absent for templates never run."""
    return dict(
        TemplateSpeed.objects.filter(
            template_id__in=template_ids, typical_time_to_ready__isnull=False
        ).values_list("template_id", "typical_time_to_ready")
    )


def typical_time_to_ready(template_id: int) -> timedelta | None:
    """One template's kept figure, through the cache (no query while cached); works without
    Redis, one query each time."""
    try:
        seconds = cache.get(_cache_key(template_id))
    except RedisError:
        seconds = None
    if seconds is None:
        typical = typical_times_to_ready([template_id]).get(template_id)
        seconds = typical.total_seconds() if typical else -1.0  # -1: none yet, also kept
        with contextlib.suppress(RedisError):
            cache.set(_cache_key(template_id), seconds, timeout=int(CACHED_FOR.total_seconds()))
    return timedelta(seconds=seconds) if seconds >= 0 else None
