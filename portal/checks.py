"""Deployment checks for the portal itself, run by `manage.py check --deploy`."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_sealing_keys(app_configs: object, **kwargs: object) -> list[Warning]:
    """Production keeps its own sealing keys, apart from SECRET_KEY.

    The key derived from SECRET_KEY works, but ties two secrets together: changing SECRET_KEY
    would make every sealed kubeconfig unreadable, and a leaked SECRET_KEY would open them.
    """
    if settings.SEALING_KEYS:
        return []
    return [
        Warning(
            "SEALING_KEYS is not set, so prospects' kubeconfigs are sealed with a key derived "
            "from SECRET_KEY.",
            hint="Set SEALING_KEYS (or SEALING_KEYS_FILE) to a key made with "
            "`openssl rand -base64 32 | tr '+/' '-_'`; see docs/deploying.md, "
            '"Encryption keys and rotation".',
            id="portal.W001",
        )
    ]
