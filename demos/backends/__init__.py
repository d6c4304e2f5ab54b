"""Cluster backends. `get_backend()` returns the one chosen by the DEMO_BACKEND setting."""

from functools import cache
from importlib import import_module

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from demos.backends.base import ClusterBackend

BACKENDS = {
    "simulated": "demos.backends.simulated.SimulatedBackend",
    "vcluster": "demos.backends.vcluster.backend.VClusterBackend",
}


@cache
def get_backend() -> ClusterBackend:
    path = BACKENDS.get(settings.DEMO_BACKEND)
    if path is None:
        raise ImproperlyConfigured(
            f"DEMO_BACKEND={settings.DEMO_BACKEND!r} is not a backend: use one of "
            f"{', '.join(BACKENDS)}."
        )
    module_name, class_name = path.rsplit(".", 1)
    return getattr(import_module(module_name), class_name)()
