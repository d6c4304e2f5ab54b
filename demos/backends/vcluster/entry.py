"""A demo's public entry on the host cluster: its live link's routing, through the portal's gate.

With DEMO_GATE on and an ingress controller in DEMO_GATE_CONTROLLER, the portal, not the demo's
charts, owns `<cluster>.<DEMO_BASE_DOMAIN>`: vCluster stops syncing the charts' Ingresses
(values.py) and the backend creates, in the demo's host namespace,

- the route of every path to the template's `entry_service` (as vCluster syncs it to the host,
  naming.host_service_name), behind the controller's forward auth to DEMO_GATE_AUTH_URL, with a
  denied browser sent to `SITE_URL/gate/signin/?rd=<the URL it asked for>`;
- the route of `/.portal-gate/` (where tickets become access cookies) to the portal's Service,
  DEMO_GATE_PORTAL_SERVICE:DEMO_GATE_PORTAL_PORT, without auth.

Each object's fields come from the controller's own source or documentation, cited where built.
docs/gate-controllers.md shows them and what the operator must enable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from demos.backends.base import BackendError, Spec
from demos.backends.vcluster import naming
from demos.backends.vcluster.config import VClusterSettings

GATE_PREFIX = "/.portal-gate/"
# Object names in the demo's host namespace. vCluster names what it syncs
# `<name>-x-<namespace>-x-<vcluster>`, so these never meet a synced object.
ENTRY = "portal-entry"  # the route to the app, behind the gate
GATE = "portal-gate"  # the route of /.portal-gate/ and the portal's address
AUTH = "portal-gate-auth"  # the controller's auth configuration

NGINX = "nginx.ingress.kubernetes.io/"
TRAEFIK_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"
GATEWAY_API = "gateway.networking.k8s.io"
ENVOY_GATEWAY = "gateway.envoyproxy.io"
# Where Envoy's external auth asks (a prefix of the original path, on the demo's own host).
ENVOY_CHECK_PATH = "/.portal-gate/check"

Object = dict[str, Any]


def entry_service(spec: Spec) -> naming.VirtualService:
    """The template's `entry_service`, or a definite error saying what the template lacks."""
    value = (spec.get("entry_service") or "").strip()
    template = spec.get("template", {}).get("name") or "this demo's template"
    if not value:
        raise BackendError(
            f"The template {template} has no entry service, and live links go through the "
            "portal's gate: set the template's entry service to the Service inside the vCluster "
            "that serves the app, as namespace/name:port (e.g. default/shop:80).",
            transient=False,
        )
    service = naming.parse_entry_service(value)
    if service is None:
        raise BackendError(
            f"The entry service {value!r} of {template} is not namespace/name:port (e.g. "
            "default/shop:80, with the port as a number): fix it in the template.",
            transient=False,
        )
    return service


def demo_host(spec: Spec, cfg: VClusterSettings) -> str:
    return f"{spec['cluster_name']}.{cfg.base_domain}"


def live_url(spec: Spec, cfg: VClusterSettings) -> str:
    """The demo's live link: https on its own host, with the template's entry URL path when
    that URL is on the demo's host (nothing else is routed)."""
    host = demo_host(spec, cfg)
    entry = urlsplit(spec.get("entry_url") or "")
    path = entry.path if entry.hostname == host and entry.path else "/"
    query = f"?{entry.query}" if entry.hostname == host and entry.query else ""
    return f"https://{host}{path}{query}"


def entry_objects(spec: Spec, cfg: VClusterSettings) -> list[Object]:
    """Every host object of the demo's gated entry for DEMO_GATE_CONTROLLER, in the order to
    create them (what a route refers to first). Raises a definite BackendError when the
    template has no usable entry service."""
    build = BUILDERS.get(cfg.gate_controller)
    if build is None:
        raise BackendError(
            f"DEMO_GATE_CONTROLLER={cfg.gate_controller!r} is not an ingress controller the "
            f"vCluster backend routes: use one of {', '.join(BUILDERS)}.",
            transient=False,
        )
    name = spec["cluster_name"]
    target = entry_service(spec)
    app = _Backend(naming.host_service_name(target, name), target.port)
    labels = naming.portal_labels(
        cfg.portal_instance, name, spec.get("demo_id", ""), spec.get("template", {}).get("slug", "")
    )
    namespace = naming.namespace_for(name, cfg.namespace_prefix)
    objects = build(cfg, namespace, demo_host(spec, cfg), app)
    for obj in objects:
        obj["metadata"]["labels"] = dict(labels)
    return objects


class _Backend:
    """A Service in the demo's host namespace and its port."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port


def signin_url(cfg: VClusterSettings) -> str:
    """ingress-nginx's `auth-signin` for the portal. `$pass_access_scheme://$http_host
    $escaped_request_uri` is the original URL in ingress-nginx's own variables: the ones it
    appends itself when the sign-in URL has no `rd` (internal/ingress/controller/template/
    template.go, buildAuthSignURL), `$escaped_request_uri` set in the location that returns the
    redirect (rootfs/etc/nginx/template/nginx.tmpl, `set_escape_uri`)."""
    return f"{cfg.site_url}/gate/signin/?rd=$pass_access_scheme://$http_host$escaped_request_uri"


def _metadata(name: str, annotations: Mapping[str, str] | None = None) -> Object:
    metadata: Object = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def _portal_service(cfg: VClusterSettings) -> Object:
    """An ExternalName Service naming the portal's Service, so a demo's route, which may only
    name Services of its own namespace, reaches the portal for /.portal-gate/."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(GATE),
        "spec": {
            "type": "ExternalName",
            "externalName": cfg.gate_portal_service,
            "ports": [
                {"name": "http", "port": cfg.gate_portal_port, "protocol": "TCP"},
            ],
        },
    }


def _ingress(
    cfg: VClusterSettings,
    name: str,
    host: str,
    path: str,
    backend: _Backend,
    annotations: Mapping[str, str],
) -> Object:
    spec: Object = {
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": path,
                            "pathType": "Prefix",
                            "backend": {
                                "service": {
                                    "name": backend.name,
                                    "port": {"number": backend.port},
                                }
                            },
                        }
                    ]
                },
            }
        ]
    }
    if cfg.ingress_class:
        spec["ingressClassName"] = cfg.ingress_class
    if cfg.entry_tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": cfg.entry_tls_secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(name, annotations),
        "spec": spec,
    }


def ingress_nginx(cfg: VClusterSettings, namespace: str, host: str, app: _Backend) -> list[Object]:
    """ingress-nginx external auth (docs/user-guide/nginx-configuration/annotations.md,
    "External Authentication"; internal/ingress/annotations/authreq/main.go).

    nginx's auth subrequest passes the client's headers, Cookie included (`proxy_pass_request_
    headers on` in the auth location of rootfs/etc/nginx/template/nginx.tmpl), with
    X-Original-URL; a 401 becomes a 302 to `auth-signin`. It does not set X-Forwarded-Host, so a
    client's own would reach the portal, which reads it first: `auth-proxy-set-headers` (a
    ConfigMap of headers the auth request gets, `proxy_set_header` lines emitted after the
    others) sets it to the Host the request was routed by.
    """
    headers = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(AUTH),
        "data": {"X-Forwarded-Host": "$http_host"},
    }
    gated = {
        NGINX + "auth-url": cfg.gate_auth_url,
        NGINX + "auth-signin": signin_url(cfg),
        NGINX + "auth-proxy-set-headers": f"{namespace}/{AUTH}",
    }
    # A global auth URL in the controller's ConfigMap would gate the ticket path too.
    open_path = {NGINX + "enable-global-auth": "false"}
    return [
        headers,
        _portal_service(cfg),
        _ingress(cfg, ENTRY, host, "/", app, gated),
        _ingress(cfg, GATE, host, GATE_PREFIX, _Backend(GATE, cfg.gate_portal_port), open_path),
    ]


def traefik(cfg: VClusterSettings, namespace: str, host: str, app: _Backend) -> list[Object]:
    """Traefik's ForwardAuth middleware (docs/content/reference/routing-configuration/http/
    middlewares/forwardauth.md; pkg/config/dynamic/middlewares.go, `ForwardAuth`), attached to
    the Ingress by `traefik.ingress.kubernetes.io/router.middlewares: <namespace>-<name>@
    kubernetescrd` (docs/content/reference/routing-configuration/kubernetes/ingress.md).

    `trustForwardHeader: false` drops the client's X-Forwarded-* headers and sets X-Forwarded-
    Host, -Uri, -Method and -Proto from the request itself (pkg/middlewares/auth/forward.go,
    writeHeader); every other header, Cookie included, is passed. On a denial Traefik answers
    the client with the auth server's response, so the portal answers a request carrying
    X-Forwarded-Uri with a redirect to its sign-in page.
    """
    middleware = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": _metadata(AUTH),
        "spec": {"forwardAuth": {"address": cfg.gate_auth_url, "trustForwardHeader": False}},
    }
    gated = {TRAEFIK_MIDDLEWARES: f"{namespace}-{AUTH}@kubernetescrd"}
    return [
        middleware,
        _portal_service(cfg),
        _ingress(cfg, ENTRY, host, "/", app, gated),
        _ingress(cfg, GATE, host, GATE_PREFIX, _Backend(GATE, cfg.gate_portal_port), {}),
    ]


def _fqdn_backend(name: str, hostname: str, port: int) -> Object:
    """An Envoy Gateway Backend with one FQDN endpoint (api/v1alpha1/backend_types.go;
    site/content/en/latest/tasks/traffic/backend.md: needs `extensionApis.enableBackend`)."""
    return {
        "apiVersion": f"{ENVOY_GATEWAY}/v1alpha1",
        "kind": "Backend",
        "metadata": _metadata(name),
        "spec": {"endpoints": [{"fqdn": {"hostname": hostname, "port": port}}]},
    }


def _backend_ref(name: str, port: int) -> Object:
    return {"group": ENVOY_GATEWAY, "kind": "Backend", "name": name, "port": port}


def _http_route(cfg: VClusterSettings, name: str, host: str, path: str, backend: Object) -> Object:
    gateway_namespace, gateway = cfg.gateway.split("/")
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata(name),
        "spec": {
            "parentRefs": [{"name": gateway, "namespace": gateway_namespace}],
            "hostnames": [host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                    "backendRefs": [backend],
                }
            ],
        },
    }


def envoy_gateway(cfg: VClusterSettings, namespace: str, host: str, app: _Backend) -> list[Object]:
    """Gateway API routes with an Envoy Gateway SecurityPolicy's HTTP external auth on the
    app's route only (api/v1alpha1/ext_auth_types.go, `ExtAuth`, `HTTPExtAuthService`;
    site/content/en/latest/tasks/security/ext-auth.md). The longest matching path prefix wins
    across a hostname's routes, so /.portal-gate/ takes the unpoliced route.

    The check request keeps the original Host (always sent, with Method, Path, Content-Length
    and Authorization) and gets the client headers listed in `headersToExtAuth`; X-Forwarded-
    Host is left out so that a client cannot name another demo's host. `path` is a prefix of
    the original path: the portal receives `/.portal-gate/check/<original path>`. On a denial Envoy
    answers with the auth server's response.
    """
    auth = urlsplit(cfg.gate_auth_url)
    auth_port = auth.port or (443 if auth.scheme == "https" else 80)
    policy = {
        "apiVersion": f"{ENVOY_GATEWAY}/v1alpha1",
        "kind": "SecurityPolicy",
        "metadata": _metadata(AUTH),
        "spec": {
            "targetRefs": [{"group": GATEWAY_API, "kind": "HTTPRoute", "name": ENTRY}],
            "extAuth": {
                "http": {
                    "backendRefs": [_backend_ref(AUTH, auth_port)],
                    # The original Host is kept, so the check reaches the portal as a request
                    # for the demo host: its /.portal-gate/ paths (demos/gate/demo_host_urls.py).
                    "path": ENVOY_CHECK_PATH,
                },
                "headersToExtAuth": [
                    "cookie",
                    "user-agent",
                    "x-forwarded-for",
                    "x-forwarded-proto",
                ],
            },
        },
    }
    app_ref = {"name": app.name, "port": app.port}
    portal_ref = _backend_ref(GATE, cfg.gate_portal_port)
    return [
        _fqdn_backend(AUTH, auth.hostname or "", auth_port),
        _fqdn_backend(GATE, cfg.gate_portal_service, cfg.gate_portal_port),
        _http_route(cfg, ENTRY, host, "/", app_ref),
        _http_route(cfg, GATE, host, GATE_PREFIX, portal_ref),
        policy,
    ]


BUILDERS: dict[str, Callable[[VClusterSettings, str, str, _Backend], list[Object]]] = {
    "ingress-nginx": ingress_nginx,
    "traefik": traefik,
    "envoy-gateway": envoy_gateway,
}
