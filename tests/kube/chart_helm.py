"""Stands in for the `helm` binary on the emulated host: the real chart, applied as the worker.

Helm cannot talk to kmock (it sends protobuf), so this runner does what `helm upgrade --install`
of the vCluster chart does, from upstream's own artifacts: it renders the vendored v0.36.1 chart
with the real `helm template` and the exact values file the backend wrote, then creates every
object it renders through the host API with the worker's credentials, in the order helm installs
them. The host's authorizer (host_rbac.py) judges each request, so a Role or ClusterRole the
worker may not grant fails the install with the API server's own refusal, as it would on a real
host. It records each command, values file and timeout for the tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmock_shim import RESOURCES
from kubernetes import client
from upstream.chart import ChartRenderError, render_chart

from demos.backends.vcluster.helm import ProcessResult

RELEASE_SECRET_TYPE = "helm.sh/release.v1"
# kind -> (API path prefix, plural, namespaced), from the resources the emulator serves.
_PATHS: dict[str, tuple[str, str, bool]] = {
    info["kind"]: (
        "/api/v1" if resource.startswith("v1/") else "/apis/" + resource.rsplit("/", 1)[0],
        resource.rsplit("/", 1)[1],
        info["namespaced"],
    )
    for resource, info in RESOURCES.items()
}


def object_path(obj: Mapping[str, Any], namespace: str, *, named: bool = False) -> str:
    """The REST path of `obj` (its collection, or itself with `named`)."""
    prefix, plural, namespaced = _PATHS[obj["kind"]]
    where = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
    return f"{where}/{obj['metadata']['name']}" if named else where


@dataclass
class ChartHelm:
    """Runs as `Helm`'s process runner: `helm upgrade --install` and `helm uninstall`."""

    api: client.ApiClient  # authenticated as the worker
    kube_version: str = "1.35.0"
    calls: list[list[str]] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)
    log: list[str] | None = None
    fail_with: ProcessResult | None = None

    def __call__(
        self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
    ) -> ProcessResult:
        argv = list(argv)
        self.calls.append(argv)
        self.timeouts.append(timeout)
        if self.log is not None:
            self.log.append(f"helm {argv[1]}")
        if "--values" in argv:
            self.values.append(Path(argv[argv.index("--values") + 1]).read_text())
        if self.fail_with is not None:
            return self.fail_with
        namespace = argv[argv.index("--namespace") + 1]
        if argv[1:3] == ["upgrade", "--install"]:
            return self.install(argv[3], namespace, self.values[-1])
        if argv[1] == "uninstall":
            return self.uninstall(argv[2], namespace)
        raise AssertionError(f"unexpected helm command {argv}")

    def rendered(self, name: str, namespace: str, values_yaml: str) -> list[dict[str, Any]]:
        return render_chart(
            values_yaml, name=name, namespace=namespace, kube_version=self.kube_version
        )

    def install(self, name: str, namespace: str, values_yaml: str) -> ProcessResult:
        try:
            objects = self.rendered(name, namespace, values_yaml)
        except ChartRenderError as exc:
            return ProcessResult(1, "", f"Error: {exc}\n")
        upgrade = bool(self._releases(name, namespace))
        for obj in objects:
            try:
                self._apply(obj, obj["metadata"].get("namespace") or namespace)
            except client.ApiException as exc:
                verb = "UPGRADE" if upgrade else "INSTALLATION"
                said = json.loads(exc.body or "{}").get("message") or exc.reason
                return ProcessResult(1, "", f"Error: {verb} FAILED: {said}\n")
        revision = len(self._releases(name, namespace)) + 1
        self._request(
            "POST",
            f"/api/v1/namespaces/{namespace}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": f"sh.helm.release.v1.{name}.v{revision}",
                    "labels": {
                        "owner": "helm",
                        "name": name,
                        "status": "deployed",
                        "version": str(revision),
                    },
                },
                "type": RELEASE_SECRET_TYPE,
                "data": {"release": _encode([_ref(obj, namespace) for obj in objects])},
            },
        )
        said = "has been upgraded" if upgrade else "has been installed"
        return ProcessResult(0, f'Release "{name}" {said}. Happy Helming!\n')

    def uninstall(self, name: str, namespace: str) -> ProcessResult:
        releases = self._releases(name, namespace)
        if not releases:
            return ProcessResult(
                1, "", f"Error: uninstall: Release not loaded: {name}: not found\n"
            )
        latest = max(releases, key=lambda s: int(s["metadata"]["labels"]["version"]))
        refs = json.loads(base64.b64decode(latest["data"]["release"]))
        try:
            for ref in reversed(refs):
                self._delete(object_path(ref, ref["namespace"], named=True))
            for secret in releases:
                self._delete(f"/api/v1/namespaces/{namespace}/secrets/{secret['metadata']['name']}")
        except client.ApiException as exc:
            said = json.loads(exc.body or "{}").get("message") or exc.reason
            return ProcessResult(
                1, "", f"Error: uninstallation completed with 1 error(s): {said}\n"
            )
        return ProcessResult(0, f'release "{name}" uninstalled\n')

    def _apply(self, obj: dict[str, Any], namespace: str) -> None:
        if _PATHS[obj["kind"]][2]:
            obj["metadata"]["namespace"] = namespace
        try:
            self._request("POST", object_path(obj, namespace), obj)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            # Helm 4 applies server-side: a PATCH of what exists.
            self._request(
                "PATCH",
                object_path(obj, namespace, named=True),
                obj,
                content_type="application/merge-patch+json",
            )

    def _releases(self, name: str, namespace: str) -> list[dict[str, Any]]:
        listed = self._request(
            "GET",
            f"/api/v1/namespaces/{namespace}/secrets",
            query={"labelSelector": f"owner=helm,name={name}"},
        )
        return list(listed.get("items") or [])

    def _delete(self, path: str) -> None:
        try:
            self._request("DELETE", path)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request)
        response.read()
        return self.api.response_deserialize(response, {"2XX": "object"}).data


def _ref(obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    return {
        "kind": obj["kind"],
        "namespace": obj["metadata"].get("namespace") or namespace,
        "metadata": {"name": obj["metadata"]["name"]},
    }


def _encode(data: Any) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()
