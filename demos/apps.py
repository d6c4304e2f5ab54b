from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender: AppConfig, **kwargs: Any) -> None:
    from demos.roles import ensure_role_groups

    ensure_role_groups(kwargs.get("apps"))


class DemosConfig(AppConfig):
    name = "demos"
    verbose_name = "Demos"

    def ready(self) -> None:
        from demos import checks  # noqa: F401  (registers system checks)
        from demos.gate import state

        state.connect_signals()

        post_migrate.connect(_ensure_roles, sender=self)
