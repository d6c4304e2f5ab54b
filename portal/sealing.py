"""Sealing: authenticated encryption of the credentials the portal keeps in its database.

Prospects' kubeconfigs are sealed by the worker when a demo becomes ready and unsealed by the web
tier when a prospect downloads one, so a database dump or backup alone gives no access to any
demo. Tokens are Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`): tampering is
detected, not decrypted into garbage.

Keys are `settings.SEALING_KEYS`: the first seals, every one unseals. Rotation is: put a new key
first, keep the old one after it, run `manage.py reseal`, then remove the old key. Without
configured keys, one key is derived from SECRET_KEY, so development and tests need no setup;
`manage.py check --deploy` warns about that (portal/checks.py), because changing SECRET_KEY
would then make every sealed value unreadable.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Fixed, so the derived key stays the same across releases; distinct from anything else derived
# from SECRET_KEY, so this key opens nothing else.
_DERIVATION_INFO = b"demo-portal sealing key v1"


class SealingError(ValueError):
    """A sealed value cannot be read with any configured key, or was altered."""


def seal(plaintext: str) -> str:
    """Encrypt `plaintext` with the primary key; the result is ASCII, safe for a TextField."""
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def unseal(token: str) -> str:
    """Decrypt a value made by `seal` with any configured key.

    Raises SealingError when no configured key opens it (it was sealed with a key that has since
    been removed, or under another SECRET_KEY without SEALING_KEYS) or it was altered.
    """
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise SealingError(_UNREADABLE) from exc


def reseal(token: str) -> str:
    """Re-encrypt a sealed value with the primary key (key rotation). Raises SealingError."""
    try:
        return _fernet().rotate(token.encode()).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise SealingError(_UNREADABLE) from exc


def _derived_key(secret_key: str) -> str:
    """The Fernet key used when SEALING_KEYS is not set: HKDF-SHA256 of SECRET_KEY."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())).decode("ascii")


_UNREADABLE = (
    "The sealed value cannot be read with any key in SEALING_KEYS: it was sealed with a key that "
    "has been removed since, or it was altered."
)


def _fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.SEALING_KEYS), settings.SECRET_KEY)


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    # Keyed by the settings themselves, so a changed configuration (tests) takes effect at once.
    return MultiFernet([Fernet(key) for key in keys or (_derived_key(secret_key),)])
