"""Configuration checks run by `manage.py check` and at start-up of every process."""

from django.conf import settings
from django.core.checks import Error, register

from demos.backends import BACKENDS


@register()
def check_backend(app_configs: object, **kwargs: object) -> list[Error]:
    if settings.DEMO_BACKEND not in BACKENDS:
        return [
            Error(
                f"DEMO_BACKEND={settings.DEMO_BACKEND!r} is not a known backend.",
                hint=f"Use one of: {', '.join(BACKENDS)}.",
                id="demos.E001",
            )
        ]
    return []


@register()
def check_vcluster_settings(app_configs: object, **kwargs: object) -> list[Error]:
    """With the vCluster backend on, its settings must make sense before any demo starts."""
    if settings.DEMO_BACKEND != "vcluster":
        return []
    from django.core.exceptions import ImproperlyConfigured

    from demos.backends.vcluster.config import VClusterSettings

    try:
        VClusterSettings.from_django()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc), hint="See docs/vcluster.md for every VCLUSTER_* setting.", id="demos.E002"
            )
        ]
    return []


@register()
def check_gate_controller(app_configs: object, **kwargs: object) -> list[Error]:
    """With real clusters nobody but an ingress controller can gate a demo's live app: the
    portal is not in front of it, so `portal` would leave every live link open."""
    if settings.DEMO_BACKEND != "vcluster" or not settings.DEMO_GATE:
        return []
    if settings.DEMO_GATE_CONTROLLER != "portal":
        return []
    return [
        Error(
            "DEMO_GATE is on with DEMO_BACKEND=vcluster, but DEMO_GATE_CONTROLLER=portal: the "
            "portal is not in front of vCluster demos, so nothing would gate their live links.",
            hint="Set DEMO_GATE_CONTROLLER to the host cluster's ingress controller "
            "(ingress-nginx, traefik or envoy-gateway; see docs/gate-controllers.md).",
            id="demos.E003",
        )
    ]
