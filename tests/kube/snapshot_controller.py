"""vCluster's snapshot request controller, played on the emulated host as v0.36.1 behaves.

Everything here is read from loft-sh/vcluster at tag v0.36.1 (commit 0c3bb166):

- The controller watches ConfigMaps labelled `vcluster.loft.sh/snapshot-request` in the vCluster's
  host namespace (pkg/snapshot/controller.go:231-253) and runs only while the vCluster runs.
- A request that is not done first gets the finalizer `vcluster.loft.sh/snapshot-controller`, and
  that reconcile ends there (controller.go:116-135, controllerbase.go:54-84).
- Phase "" becomes `CreatingEtcdBackup` (controller.go:174-179, 255-269); then the options Secret
  of the same name is read and its `snapshotOptions` JSON unmarshalled into the typed `Options`
  (controller.go:273-297, vendor/github.com/loft-sh/api/v4/pkg/snapshot/resources.go:120-138);
  a type mismatch (e.g. `"force-path-style": "true"`) fails the request, whose error message is
  the whole wrapped error chain (controller.go:146-172, 183-187). Otherwise the snapshot is taken
  and the phase becomes `Completed` (controller.go:317-324).
- A done request (Completed, Failed, ...) loses its Secret and the finalizer
  (controller.go:193-208, controllerbase.go:126-217); its ConfigMap stays for 24 h
  (DefaultRequestTTL, vendor/.../snapshot/constants.go:30), longer than any test.
- A deleted request (deletionTimestamp set) loses its Secret and the finalizer
  (controller.go:101-108, controllerbase.go:146-178).
Cancelling older requests for the same URL (controller.go:414-459) is not played: the portal
never has two requests for one URL in flight.

Deleting the vCluster's namespace on the emulated host follows Kubernetes' namespace lifecycle
(kmock_shim.py): a request holding the finalizer keeps the namespace Terminating until it goes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from demos.backends.vcluster import naming

FINALIZER = "vcluster.loft.sh/snapshot-controller"
REQUEST_LABEL = "vcluster.loft.sh/snapshot-request"
DONE = frozenset({"Completed", "PartiallyFailed", "Failed", "Canceled"})
MERGE_PATCH = "application/merge-patch+json"

# The Go types `Options` unmarshals into: JSON name -> Go type, per struct
# (vendor/github.com/loft-sh/api/v4/pkg/snapshot/options.go:3-126).
_S3 = {
    "bucket": "string",
    "key": "string",
    "skip-client-credentials": "bool",
    "access-key-id": "string",
    "secret-access-key": "string",
    "session-token": "string",
    "region": "string",
    "profile": "string",
    "url": "string",
    "public-url": "string",
    "kms-key-id": "string",
    "tagging": "string",
    "force-path-style": "bool",
    "insecure-skip-tls-verify": "bool",
    "custom-key-encryption-file": "string",
    "credentials-file": "string",
    "server-side-encryption": "string",
    "ca-cert": "string",
    "checksum-algorithm": "string",
}
_OCI = {
    "repository": "string",
    "username": "string",
    "password": "string",
    "skip-client-credentials": "bool",
}
_STRUCTS: dict[str, tuple[str, dict[str, str]]] = {
    "s3": ("S3Options", _S3),
    "container": ("ContainerOptions", {"path": "string"}),
    "oci": ("OCIOptions", _OCI),
    "azure": (
        "AzureOptions",
        {
            k: "string"
            for k in (
                "blob-url",
                "sas",
                "subscription-id",
                "resource-group",
                "storage-key",
                "tenant-id",
                "client-id",
                "client-secret",
            )
        },
    ),
    "file": ("FileOptions", {"path": "string"}),
}
_OPTIONS = {"type": "string", "delegateFromCLIToCluster": "bool", "snapshotTempDir": "string"}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _field(fields: Mapping[str, str], key: str) -> str | None:
    """encoding/json matches an exact field name first, then one differing only in case."""
    if key in fields:
        return key
    return next((name for name in fields if name.lower() == key.lower()), None)


def unmarshal_options(raw: bytes) -> str:
    """json.Unmarshal of `raw` into `Options`: the error Go reports, or "" when it fits.

    Unknown keys are ignored and null leaves a field alone; a value of the wrong JSON type is an
    UnmarshalTypeError naming the innermost struct and the field path, e.g. `json: cannot
    unmarshal string into Go struct field S3Options.s3.force-path-style of type bool` (Go 1.26,
    the toolchain of v0.36.1's go.mod).
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return f"invalid character in JSON: {exc}"
    if not isinstance(data, dict):
        return f"json: cannot unmarshal {_json_kind(data)} into Go value of type snapshot.Options"
    for key, value in data.items():
        if value is None:
            continue
        name = _field({**_OPTIONS, **{s: "struct" for s in _STRUCTS}}, key)
        if name is None:
            continue
        if name in _STRUCTS:
            struct, fields = _STRUCTS[name]
            if not isinstance(value, dict):
                return (
                    f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                    f"Options.{name} of type snapshot.{struct}"
                )
            for inner_key, inner in value.items():
                inner_name = _field(fields, inner_key)
                if inner_name is None or inner is None:
                    continue
                if _json_kind(inner) != fields[inner_name]:
                    return (
                        f"json: cannot unmarshal {_json_kind(inner)} into Go struct field "
                        f"{struct}.{name}.{inner_name} of type {fields[inner_name]}"
                    )
        elif _json_kind(value) != _OPTIONS[name]:
            return (
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"Options.{name} of type {_OPTIONS[name]}"
            )
    return ""


class SnapshotController:
    """The snapshot request controller of one vCluster, reconciling through the host API."""

    def __init__(self, api: client.ApiClient, name: str) -> None:
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.name = name
        self.namespace = naming.namespace_for(name, "vcluster-")
        # What the snapshot client reports when it runs (e.g. a full bucket); "" saves fine.
        self.storage_error = ""

    def running(self) -> bool:
        """The controller lives in the control plane: no ready replica, no reconciling."""
        try:
            statefulset = self.apps.read_namespaced_stateful_set(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(statefulset.status and statefulset.status.ready_replicas)

    def run(self, rounds: int = 10) -> None:
        """Reconcile until nothing changes, as the controller's work queue would."""
        for _ in range(rounds):
            if not self.step():
                return
        raise AssertionError("the snapshot controller never settled")

    def step(self) -> bool:
        """One reconcile of every request ConfigMap; whether anything changed."""
        if not self.running():
            return False
        changed = False
        for configmap in self.core.list_namespaced_config_map(
            self.namespace, label_selector=REQUEST_LABEL
        ).items:
            changed = self.reconcile(configmap) or changed
        return changed

    def reconcile(self, configmap: client.V1ConfigMap) -> bool:
        meta = configmap.metadata
        finalizers = list(meta.finalizers or [])
        if meta.deletion_timestamp:
            return self._done(meta.name, finalizers)
        request = json.loads(configmap.data["snapshotRequest"])
        phase = (request.get("status") or {}).get("phase", "")
        if phase not in DONE and FINALIZER not in finalizers:
            self._patch(meta.name, {"metadata": {"finalizers": [*finalizers, FINALIZER]}})
            return True
        if phase == "":
            self._set(meta.name, request, "CreatingEtcdBackup")
            return True
        if phase == "CreatingEtcdBackup":
            failure = self._take_snapshot(meta.name)
            if failure:
                where = f"{self.namespace}/{meta.name}"
                self._set(
                    meta.name,
                    request,
                    "Failed",
                    f"failed to reconcile etcd backup creation for snapshot request {where}: "
                    + failure,
                )
            else:
                self._set(meta.name, request, "Completed")
            return True
        if phase in DONE:
            return self._done(meta.name, finalizers)
        raise AssertionError(f"phase {phase!r} is not played")

    def _take_snapshot(self, request: str) -> str:
        """reconcileCreatingEtcdBackup's error (wrapped as upstream wraps it), or ""."""
        where = f"{self.namespace}/{request}"
        try:
            secret = self.core.read_namespaced_secret(request, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return f"can't find snapshot request Secret {where}"
        raw = base64.b64decode((secret.data or {}).get("snapshotOptions", ""))
        problem = unmarshal_options(raw)
        if problem:
            return (
                f"failed to unmarshal vcluster snapshot request from ConfigMap {where}: "
                f"failed to unmarshal snapshot options: {problem}"
            )
        if self.storage_error:
            return f"failed to run snapshot client: {self.storage_error}"
        return ""

    def _done(self, request: str, finalizers: list[str]) -> bool:
        changed = False
        try:
            self.core.delete_namespaced_secret(request, self.namespace)
            changed = True
        except ApiException as exc:
            if exc.status != 404:
                raise
        if FINALIZER in finalizers:
            kept = [f for f in finalizers if f != FINALIZER]
            self._patch(request, {"metadata": {"finalizers": kept}})
            changed = True
        return changed

    def _set(self, request: str, body: dict[str, Any], phase: str, error: str = "") -> None:
        status: dict[str, Any] = {"phase": phase, "error": {"message": error} if error else {}}
        updated = {**body, "status": status}
        self._patch(request, {"data": {"snapshotRequest": json.dumps(updated)}})

    def _patch(self, request: str, body: dict[str, Any]) -> None:
        self.core.patch_namespaced_config_map(
            request, self.namespace, body, _content_type=MERGE_PATCH
        )
