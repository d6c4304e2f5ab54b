"""Django's model backend, with the signed-in user read from a cache (portal/user_cache.py).

Every request of a signed-in person loads their user, and most also ask for their groups: two
queries that made up most of what a status poll cost. Here both come from one cache entry, and
only a miss (the first request after a change, or Redis away) reads the database, as Django's
own backend does, and caches what it read.

Signing in is Django's: the password is checked against the database, always.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser

from portal import user_cache


class CachedModelBackend(ModelBackend):
    def get_user(self, user_id: Any) -> AbstractBaseUser | None:
        user = user_cache.load(user_id)
        if user is None:
            user = self._from_database(user_id)
        # Checked on every request, cached or not: a deactivated user is signed out at once.
        return user if user is not None and self.user_can_authenticate(user) else None

    def _from_database(self, user_id: Any) -> AbstractBaseUser | None:
        model = get_user_model()
        try:
            user = model._default_manager.get(pk=user_id)
        except model.DoesNotExist:
            return None
        if user_cache.available():
            groups = set(user.groups.values_list("name", flat=True))
            setattr(user, user_cache.GROUPS_ATTRIBUTE, groups)
            user_cache.store(user, groups)
        # Otherwise (Redis known to be away) nothing would be cached: `demos.roles` asks for the
        # groups only if the page needs them, as it always did.
        return user
