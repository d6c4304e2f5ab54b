"""Snapshot requests the way `vcluster snapshot create` makes them, without the CLI.

A request is a Secret (the storage options, which may hold credentials) and a ConfigMap (the
request and, later, its status) with the same generated name in the vCluster's host namespace.
The running vCluster picks it up and moves its phase along. Read from vCluster's source, not yet
tried against a live cluster: see docs/vcluster.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kubernetes import client

from demos.backends.base import BackendError, SnapshotPhase
from demos.backends.vcluster import naming
from demos.backends.vcluster.config import SNAPSHOT_SCHEMES

REQUEST_KEY = "snapshotRequest"
OPTIONS_KEY = "snapshotOptions"

_RUNNING = {
    "": "Waiting for the vCluster to pick up the snapshot request.",
    "CreatingVolumeSnapshots": "Snapshotting volumes.",
    "CreatingEtcdBackup": "Saving the cluster's state.",
}
_FAILED = frozenset({"Failed", "Canceling", "Canceled"})


def storage_options(url: str) -> dict[str, Any]:
    """The JSON storage options vCluster expects for a snapshot URL (credentials included)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "container":
        if parts.netloc or not parts.path:
            raise _bad_url(url, "use container:///absolute/path.tar.gz")
        return {"type": "container", "container": {"path": parts.path}}
    if parts.scheme == "s3":
        if not parts.hostname or not parts.path.strip("/"):
            raise _bad_url(url, "use s3://BUCKET/KEY")
        return {
            "type": "s3",
            "s3": {"bucket": parts.hostname, "key": parts.path.lstrip("/"), **query},
        }
    if parts.scheme == "oci":
        if not parts.hostname or not parts.path.strip("/"):
            raise _bad_url(url, "use oci://registry/repository:tag")
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        oci: dict[str, Any] = {"repository": host + parts.path, **query}
        if parts.username:
            oci["username"] = parts.username
            oci["password"] = parts.password or ""
        return {"type": "oci", "oci": oci}
    raise _bad_url(url, f"use one of {', '.join(s + '://' for s in SNAPSHOT_SCHEMES)}")


def _bad_url(url: str, hint: str) -> BackendError:
    return BackendError(
        f"The snapshot destination {public_url(url)} is not usable: {hint} "
        "(VCLUSTER_SNAPSHOT_URL).",
        transient=False,
    )


def public_url(url: str) -> str:
    """`url` without credentials, for messages and comparison."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def canonical_url(url: str) -> str:
    """The URL as vCluster writes it into a request (no credentials, no query)."""
    options = storage_options(url)
    kind = options["type"]
    if kind == "container":
        return "container://" + options["container"]["path"]
    if kind == "s3":
        return f"s3://{options['s3']['bucket']}/{options['s3']['key']}"
    return "oci://" + options["oci"]["repository"]


def with_credentials(location: str, configured: str) -> str:
    """`location` with the user and password of the configured destination put back in.

    Locations are stored in the database and shown to admins, so they never carry credentials;
    the configured VCLUSTER_SNAPSHOT_URL template may (for oci://user:password@registry/...).
    """
    source = urlsplit(configured)
    target = urlsplit(location)
    if source.username is None or target.username is not None or source.scheme != target.scheme:
        return location
    if source.hostname != target.hostname:
        return location
    userinfo = source.username + (f":{source.password}" if source.password is not None else "")
    return target._replace(netloc=f"{userinfo}@{target.netloc}").geturl()


def request_labels(name: str, namespace: str) -> dict[str, str]:
    return {
        naming.SNAPSHOT_REQUEST_LABEL: "",
        naming.SNAPSHOT_VCLUSTER_NAME_LABEL: name,
        naming.SNAPSHOT_VCLUSTER_NAMESPACE_LABEL: namespace,
    }


def request_selector(name: str) -> str:
    return f"{naming.SNAPSHOT_REQUEST_LABEL},{naming.SNAPSHOT_VCLUSTER_NAME_LABEL}={name}"


def options_secret(name: str, namespace: str, url: str) -> dict[str, Any]:
    options = json.dumps(storage_options(url)).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "generateName": f"{name}-snapshot-request-",
            "namespace": namespace,
            "labels": request_labels(name, namespace),
        },
        "type": "Opaque",
        "data": {OPTIONS_KEY: base64.b64encode(options).decode()},
    }


def request_configmap(
    request_name: str, name: str, namespace: str, url: str, now: datetime
) -> dict[str, Any]:
    request = {
        "metadata": {
            "name": request_name,
            "creationTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {"url": canonical_url(url)},
        "status": {},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": request_name,
            "namespace": namespace,
            "labels": request_labels(name, namespace),
        },
        "data": {REQUEST_KEY: json.dumps(request)},
    }


@dataclass(frozen=True)
class SnapshotRequest:
    name: str
    url: str
    phase: str
    error: str
    created: datetime | None


def parse_request(configmap: client.V1ConfigMap) -> SnapshotRequest | None:
    try:
        data = json.loads((configmap.data or {}).get(REQUEST_KEY) or "{}")
    except ValueError:
        return None
    if not isinstance(data, Mapping):
        return None
    status = data.get("status") or {}
    error = status.get("error") or {}
    return SnapshotRequest(
        name=configmap.metadata.name,
        url=str((data.get("spec") or {}).get("url") or ""),
        phase=str(status.get("phase") or ""),
        error=str(error.get("message") or "") if isinstance(error, Mapping) else str(error),
        created=configmap.metadata.creation_timestamp,
    )


def progress_phase(request: SnapshotRequest) -> tuple[SnapshotPhase, str]:
    """The portal's view of a request's phase, with a message."""
    if request.phase == "Completed":
        return SnapshotPhase.COMPLETED, "Snapshot saved."
    if request.phase == "PartiallyFailed":
        # Volume data is never part of these snapshots; the cluster state was saved.
        return SnapshotPhase.COMPLETED, "Snapshot saved (volume snapshots failed)."
    if request.phase in _FAILED:
        return SnapshotPhase.FAILED, request.error or f"vCluster reports {request.phase}."
    return SnapshotPhase.RUNNING, _RUNNING.get(request.phase, f"Snapshot {request.phase}.")
