from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"

    def ready(self) -> None:
        from portal import checks  # noqa: F401  (registers system checks)
        from portal.user_cache import connect_signals

        connect_signals()  # in every process: whoever changes a user drops its cached copy
