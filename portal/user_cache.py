"""Signed-in users, cached, so a request knows who is asking without a query.

An entry holds the user's columns except the password, the HMAC of the password that each session
is checked against (`get_session_auth_hash`, which is what sessions store anyway) and the names of
the user's groups, which `demos.roles` reads for every role check. The password hash itself
never leaves the database: a user built from an entry loads it on first use, like any deferred
field (a password check, the admin).

Entries live in the sessions' cache (`SESSION_CACHE_ALIAS`, a `TolerantRedisCache`): while Redis
is away they are simply not there, and the user is read from the database as before. They are
dropped whenever the user, their group memberships or one of their groups changes (the signals
below), so a deactivation, a password change, a new superuser flag or a new role counts from the
next request; at once and again after the change commits, so that a request reading the old row
in between cannot put it back. What a delete cannot reach (Redis away, or a bulk `update()`
that sends no signal) is gone within the cache's `LONGEST_ENTRY` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MethodType
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.core.cache import BaseCache, caches
from django.db import connection, router, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import Signal
from django.utils.crypto import salted_hmac

# Bumped when the shape of an entry changes, so a new release never reads an old one.
FORMAT = 1
# Not cached: the password hash (see above).
UNCACHED = frozenset({"password"})
# What `demos.roles` looks for on a user before it asks the database for the groups.
GROUPS_ATTRIBUTE = "_portal_groups"


def _cache() -> BaseCache:
    return caches[settings.SESSION_CACHE_ALIAS]


def _cached_fields() -> tuple[str, ...]:
    model = get_user_model()
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname not in UNCACHED)


def _tag(secret: str) -> str:
    """Entries are kept apart per signing key: the cached session HMAC is only true under the key
    it was made with, and during a key rotation processes on the old and on the new key run side
    by side."""
    digest = salted_hmac("portal.user_cache", "entry", secret=secret, algorithm="sha256")
    return digest.hexdigest()[:16]


def _all_tags() -> list[str]:
    return [_tag(secret) for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)]


def _key(user_id: Any, tag: str) -> str:
    return f"user:{FORMAT}:{tag}:{user_id}"


def available() -> bool:
    """Whether an entry stored now would be kept: False while the cache knows Redis is away."""
    return getattr(_cache(), "answering", True)


def load(user_id: Any) -> AbstractBaseUser | None:
    """The user from the cache, with their groups known; None when there is no entry."""
    if not available():  # Redis is known to be away: not even the key is worth making
        return None
    entry = _cache().get(_key(user_id, _tag(settings.SECRET_KEY)))
    if not isinstance(entry, tuple) or len(entry) != 4:
        return None
    names, values, auth_hash, groups = entry
    if tuple(names) != _cached_fields():  # the model changed since it was cached
        return None
    model = get_user_model()
    user = model.from_db(router.db_for_read(model), names, values)
    setattr(user, GROUPS_ATTRIBUTE, set(groups))
    user._session_auth_hash = auth_hash  # type: ignore[attr-defined]
    # Django checks the session against this; without the password loaded it answers from the
    # entry instead of loading the password hash for every request.
    user.get_session_auth_hash = MethodType(_session_auth_hash, user)  # type: ignore[method-assign]
    return user


def _session_auth_hash(user: AbstractBaseUser) -> str:
    if "password" in user.__dict__:  # loaded or just changed (`set_password`): the real one
        return AbstractBaseUser.get_session_auth_hash(user)
    return user._session_auth_hash  # type: ignore[attr-defined]


def store(user: AbstractBaseUser, groups: Iterable[str]) -> None:
    """Cache `user`, loaded in full from the database, and the names of their groups."""
    names = _cached_fields()
    entry = (
        names,
        tuple(getattr(user, name) for name in names),
        AbstractBaseUser.get_session_auth_hash(user),
        tuple(sorted(groups)),
    )
    _cache().set(_key(user.pk, _tag(settings.SECRET_KEY)), entry)


def forget(user_ids: Iterable[Any]) -> None:
    """Drop the entries of these users now, and again once the current transaction commits."""
    ids = [user_id for user_id in user_ids if user_id is not None]
    if not ids:
        return

    def drop() -> None:
        _cache().delete_many([_key(user_id, tag) for user_id in ids for tag in _all_tags()])

    drop()
    if connection.in_atomic_block:
        transaction.on_commit(drop)


# What changes a cached user: the user's row, their memberships, a group's name or existence.


def _user_changed(sender: Any, instance: AbstractBaseUser, **kwargs: Any) -> None:
    forget([instance.pk])


# Sent with `user_ids` when people's groups, and so their roles, may have changed: for others who
# keep what a role allows (the gate's entries for team members).
roles_changed = Signal()


def _roles_changed(user_ids: Iterable[Any]) -> None:
    ids = list(user_ids)
    forget(ids)
    roles_changed.send(sender=None, user_ids=ids)


def _memberships_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    pk_set: set[Any] | None,
    **kwargs: Any,
) -> None:
    if not reverse:  # user.groups.add(...) and the like: one user
        if action.startswith("post_"):
            _roles_changed([instance.pk])
    elif action in ("post_add", "post_remove"):  # group.user_set.add(...): these users
        _roles_changed(pk_set or ())
    elif action == "pre_clear":  # group.user_set.clear(): its members, while they are known
        _roles_changed(_members(instance))


def _group_changed(sender: Any, instance: Group, **kwargs: Any) -> None:
    if instance.pk is not None:
        _roles_changed(_members(instance))


def _members(group: Group) -> list[Any]:
    return list(group.user_set.values_list("pk", flat=True))


def connect_signals() -> None:
    """Called once at start-up (portal/apps.py): every process that can change a user, the web,
    the workers and management commands, drops the cached copy."""
    model = get_user_model()
    uid = "portal.user_cache"
    post_save.connect(_user_changed, sender=model, dispatch_uid=f"{uid}.user-saved")
    post_delete.connect(_user_changed, sender=model, dispatch_uid=f"{uid}.user-deleted")
    m2m_changed.connect(
        _memberships_changed, sender=model.groups.through, dispatch_uid=f"{uid}.memberships"
    )
    post_save.connect(_group_changed, sender=Group, dispatch_uid=f"{uid}.group-saved")
    pre_delete.connect(_group_changed, sender=Group, dispatch_uid=f"{uid}.group-deleted")
