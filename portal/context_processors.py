from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict[str, object]:
    return {"demo_backend": settings.DEMO_BACKEND, "debug": settings.DEBUG}
