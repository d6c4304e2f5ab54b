from django.apps import AppConfig


class DemosConfig(AppConfig):
    name = "demos"
    verbose_name = "Demos"

    def ready(self) -> None:
        from demos import checks  # noqa: F401  (registers system checks)
