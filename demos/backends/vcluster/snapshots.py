"""Snapshot requests the way `vcluster snapshot create` makes them, without the CLI.

A request is a Secret (the storage options, which may hold credentials) and a ConfigMap (the
request and, later, its status) with the same generated name in the vCluster's host namespace.
The running vCluster picks it up and moves its phase along. Read from vCluster's source at
v0.36.1, not yet tried against a live cluster: see docs/vcluster.md.

The storage options are parsed from the snapshot URL exactly as vCluster 0.36.1 parses them
(`Parse` in pkg/snapshot/options.go, `PopulateStructFromMap` in pkg/snapshot/options/options.go,
the structs in vendor/github.com/loft-sh/api/v4/pkg/snapshot/options.go), so the Secret holds the
typed, decoded JSON vCluster's controller unmarshals. The portal always parses here, also when
`VCLUSTER_CLI` is set: the CLI's own parser fills in local cloud credentials, which the portal must
not hand to a demo. Where vCluster would silently ignore part of a URL (a repeated option, a
`;`-separated or badly escaped pair, a fragment), the portal refuses it instead, so that what an
operator wrote is never quietly dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit

from demos.backends.base import BackendError, SnapshotPhase
from demos.backends.vcluster import naming

if TYPE_CHECKING:  # the settings module reads this file: keep the Kubernetes client out
    from kubernetes import client

REQUEST_KEY = "snapshotRequest"
OPTIONS_KEY = "snapshotOptions"
# The destinations the portal supports (vCluster also reads Azure https:// URLs).
SNAPSHOT_SCHEMES = ("s3", "oci", "container")
# Options that are credentials: kept out of stored locations, put back from the setting.
CREDENTIAL_OPTIONS = frozenset({"access-key-id", "secret-access-key", "session-token", "password"})
# The snapshot controller's finalizer on request ConfigMaps (pkg/snapshot/controller.go:28).
CONTROLLER_FINALIZER = "vcluster.loft.sh/snapshot-controller"

_RUNNING = {
    "": "Waiting for the vCluster to pick up the snapshot request.",
    "CreatingVolumeSnapshots": "Snapshotting volumes.",
    "CreatingEtcdBackup": "Saving the cluster's state.",
}
_FAILED = frozenset({"Failed", "Canceling", "Canceled"})


@dataclass(frozen=True)
class OptionField:
    """One field of vCluster's storage option structs. Its JSON name and its `url` tag are the
    same for every field; `query` says whether it has a `url` tag (settable from the query)."""

    name: str
    query: bool = True
    boolean: bool = False
    base64: bool = False


# In the Go structs' field order, which is the order json.Marshal writes them in.
S3_FIELDS = (
    OptionField("bucket", query=False),
    OptionField("key", query=False),
    OptionField("skip-client-credentials", boolean=True),
    OptionField("access-key-id", base64=True),
    OptionField("secret-access-key", base64=True),
    OptionField("session-token", base64=True),
    OptionField("region"),
    OptionField("profile"),
    OptionField("url", base64=True),
    OptionField("public-url", base64=True),
    OptionField("kms-key-id", base64=True),
    OptionField("tagging", base64=True),
    OptionField("force-path-style", boolean=True),
    OptionField("insecure-skip-tls-verify", boolean=True),
    OptionField("custom-key-encryption-file", base64=True),
    OptionField("credentials-file", base64=True),
    OptionField("server-side-encryption", base64=True),
    OptionField("ca-cert", base64=True),
    OptionField("checksum-algorithm"),
)
OCI_FIELDS = (
    OptionField("repository", query=False),
    OptionField("username"),
    OptionField("password", base64=True),
    OptionField("skip-client-credentials", boolean=True),
)
CONTAINER_FIELDS = (OptionField("path", query=False),)
FIELDS: dict[str, tuple[OptionField, ...]] = {
    "s3": S3_FIELDS,
    "container": CONTAINER_FIELDS,
    "oci": OCI_FIELDS,
}
# `Options` always marshals these sections (no omitempty), in this order.
_SECTIONS = ("s3", "container", "oci", "azure", "file")
# strconv.ParseBool.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# strings.TrimSpace trims what unicode.IsSpace calls space (str.strip would also trim \x1c-\x1f).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)
_PORT = re.compile(r"^[0-9]*$")


class _Refused(ValueError):
    """Why a snapshot URL is not usable (a sentence fragment naming the part at fault)."""


@dataclass(frozen=True)
class _Url:
    """The parts of a URL as Go's net/url.Parse splits them (path and userinfo unescaped)."""

    scheme: str
    username: str | None
    password: str | None
    host: str
    path: str
    raw_query: str


def _go_unescape(text: str, what: str, *, plus_is_space: bool = False) -> str:
    """net/url's unescape: every `%` starts two hex digits (else the URL is refused)."""
    raw = text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == ord("%"):
            pair = raw[i + 1 : i + 3]
            if len(pair) < 2 or not all(chr(b) in "0123456789abcdefABCDEF" for b in pair):
                raise _Refused(f"{what} has an invalid %-escape")
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(ord(" ") if plus_is_space and raw[i] == ord("+") else raw[i])
            i += 1
    # Go strings are bytes; json.Marshal writes invalid UTF-8 as U+FFFD.
    return out.decode(errors="replace")


def _split(url: str) -> _Url:
    """Go's url.Parse for the URLs the portal accepts."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _Refused("the URL holds a control character")
    match = _SCHEME.match(url)
    if match is None:
        raise _Refused(f"use one of {', '.join(s + '://' for s in SNAPSHOT_SCHEMES)}")
    scheme, rest = match[1].lower(), match[2]
    if "#" in rest:
        raise _Refused("a #fragment is not part of a snapshot URL (vCluster would ignore it)")
    rest, _, raw_query = rest.partition("?")
    username = password = None
    host = path = ""
    if rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        path = slash + tail
        userinfo, at, host = authority.rpartition("@")
        if at:
            user, colon, secret = userinfo.partition(":")
            username = _go_unescape(user, "the user name")
            password = _go_unescape(secret, "the password") if colon else None
        if "%" in host:
            raise _Refused("the host has a %-escape")
        if not host.startswith("[") and ":" in host and not _PORT.match(host.rpartition(":")[2]):
            raise _Refused(f"the port of {host} is not a number")
    elif rest.startswith("/"):
        path = rest
    else:
        # Go makes this an opaque URL, with neither host nor path.
        raise _Refused(f"write {scheme}:// followed by the destination")
    return _Url(scheme, username, password, host, _go_unescape(path, "the path"), raw_query)


def _go_query(raw_query: str) -> dict[str, list[str]]:
    """url.ParseQuery, refusing the pairs url.Values.Query() would silently drop."""
    values: dict[str, list[str]] = {}
    for pair in raw_query.split("&"):
        if not pair:
            continue
        if ";" in pair:
            # Named by its key only: the value may be a credential.
            raise _Refused(
                f"options are separated by `&`, not `;` (vCluster would drop the option "
                f"`{pair.partition('=')[0]}`)"
            )
        key, _, value = pair.partition("=")
        key = _go_unescape(key, "an option name", plus_is_space=True)
        value = _go_unescape(value, f"option `{key}`", plus_is_space=True)
        values.setdefault(key, []).append(value)
    return values


def _populate(kind: str, query: Mapping[str, list[str]], into: dict[str, str | bool]) -> None:
    """PopulateStructFromMap(strict=true) over the `url`-tagged fields of `kind`'s struct."""
    fields = [field for field in FIELDS[kind] if field.query]
    for field in fields:
        given = query.get(field.name)
        if not given:
            continue
        if len(given) > 1:
            raise _Refused(
                f"option `{field.name}` is given {len(given)} times (vCluster would use the first)"
            )
        value = given[0]
        if field.base64:
            # As upstream: a `+` the query decoder made a space is put back, then StdEncoding.
            encoded = value.replace(" ", "+").strip(_GO_SPACE).replace("\r", "").replace("\n", "")
            try:
                decoded = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise _Refused(
                    f"option `{field.name}` must be base64-encoded (vCluster decodes it); "
                    "percent-encode its `+`, `/` and `=`"
                ) from None
            value = decoded.decode(errors="replace")
        if field.boolean:
            if value not in _GO_TRUE | _GO_FALSE:
                raise _Refused(f"option `{field.name}` must be true or false, not {value!r}")
            into[field.name] = value in _GO_TRUE
        else:
            into[field.name] = value.strip(_GO_SPACE)
    unknown = sorted(set(query) - {field.name for field in fields})
    if unknown:
        raise _Refused(
            f"vCluster does not know the option(s) {', '.join(f'`{u}`' for u in unknown)} for "
            f"{kind}:// (it refuses the URL: unknown parameter in url); known: "
            f"{', '.join(sorted(field.name for field in fields))}"
        )


def _parse(url: str) -> tuple[str, dict[str, str | bool]]:
    """(type, fields) as vCluster's `Parse` and `Validate` leave them (pkg/snapshot/options.go)."""
    parts = _split(url)
    query = _go_query(parts.raw_query)
    found: dict[str, str | bool] = {}
    if parts.scheme == "s3":
        if parts.username is not None:
            raise _Refused(
                "s3:// takes no user in the URL (vCluster would ignore it): use the "
                "access-key-id and secret-access-key options"
            )
        if not parts.host:
            raise _Refused("the bucket name is missing: use s3://BUCKET/KEY")
        if not parts.path:
            raise _Refused("the key is missing: use s3://BUCKET/KEY")
        found["bucket"] = parts.host
        found["key"] = parts.path.removeprefix("/")
        _populate("s3", query, found)
        if not found["key"]:
            raise _Refused("the key is missing: use s3://BUCKET/KEY")
    elif parts.scheme == "container":
        if parts.host:
            raise _Refused(
                "relative paths are not supported: use container:///absolute/path.tar.gz"
            )
        if not parts.path:
            raise _Refused("the path is missing: use container:///absolute/path.tar.gz")
        if parts.raw_query:
            raise _Refused("container:// takes no options (vCluster would ignore them)")
        found["path"] = parts.path
    elif parts.scheme == "oci":
        if not parts.host or not parts.path:
            raise _Refused("use oci://registry/repository:tag")
        found["repository"] = posixpath.normpath(f"{parts.host}/{parts.path}")
        if parts.username is not None:
            found["username"] = parts.username
            found["password"] = parts.password or ""
        _populate("oci", query, found)
    else:
        raise _Refused(f"use one of {', '.join(s + '://' for s in SNAPSHOT_SCHEMES)}")
    return parts.scheme, found


def storage_options(url: str) -> dict[str, Any]:
    """The JSON storage options vCluster 0.36.1 would hold for `url` (credentials included):
    `Options` as json.Marshal writes it, empty strings and false booleans left out."""
    try:
        kind, found = _parse(url)
    except _Refused as refused:
        raise BackendError(
            f"The snapshot destination {shown_url(url)} is not usable: {refused} "
            "(VCLUSTER_SNAPSHOT_URL).",
            transient=False,
        ) from None
    sections: dict[str, Any] = {section: {} for section in _SECTIONS}
    sections[kind] = {f.name: found[f.name] for f in FIELDS[kind] if found.get(f.name)}
    return {"type": kind, **sections}


def url_problem(url: str) -> str:
    """Why vCluster would not accept `url` as a snapshot destination; empty when it would."""
    try:
        _parse(url)
    except _Refused as refused:
        return str(refused)
    return ""


def is_container(url: str) -> bool:
    """Whether `url` is on the vCluster's own volume (container://), deleted with the demo."""
    return urlsplit(url).scheme.lower() == "container"


def shown_url(url: str) -> str:
    """`url` for messages: no credentials and no query (options may hold keys, in base64)."""
    return public_url(url).partition("?")[0].partition("#")[0]


def _credential_pairs(raw_query: str) -> tuple[list[str], list[str]]:
    """(other options, credential options) of a raw query, each pair as written."""
    kept: list[str] = []
    secret: list[str] = []
    for pair in raw_query.split("&"):
        if pair:
            key = unquote_plus(pair.partition("=")[0])
            (secret if key in CREDENTIAL_OPTIONS else kept).append(pair)
    return kept, secret


def public_url(url: str) -> str:
    """`url` without credentials (user, password, credential options), for storing and showing."""
    parts = urlsplit(url)
    kept, secret = _credential_pairs(parts.query)
    if parts.password is None and parts.username is None and not secret:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="&".join(kept)).geturl()


def canonical_url(url: str) -> str:
    """The URL as vCluster writes it into a request: `Options.GetURL()` (no credentials, no
    options)."""
    options = storage_options(url)
    kind = options["type"]
    if kind == "container":
        return "container://" + options["container"]["path"]
    if kind == "s3":
        return f"s3://{options['s3']['bucket']}/{options['s3'].get('key', '')}"
    return "oci://" + options["oci"]["repository"]


def with_credentials(location: str, configured: str) -> str:
    """`location` with the credentials of the configured destination put back in.

    Locations are stored in the database and shown to admins, so they never carry credentials;
    the configured VCLUSTER_SNAPSHOT_URL template may (`oci://user:password@registry/...`, or
    base64 `access-key-id`/`secret-access-key` options of an S3-compatible store).
    """
    source = urlsplit(configured)
    target = urlsplit(location)
    if source.scheme != target.scheme or source.hostname != target.hostname:
        return location
    netloc = target.netloc
    if source.username is not None and target.username is None:
        userinfo = source.username + (f":{source.password}" if source.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    kept, given = _credential_pairs(target.query)
    query = "&".join(kept + (given or _credential_pairs(source.query)[1]))
    return target._replace(netloc=netloc, query=query).geturl()


def request_labels(name: str, namespace: str) -> dict[str, str]:
    return {
        naming.SNAPSHOT_REQUEST_LABEL: "",
        naming.SNAPSHOT_VCLUSTER_NAME_LABEL: name,
        naming.SNAPSHOT_VCLUSTER_NAMESPACE_LABEL: namespace,
    }


def request_selector(name: str) -> str:
    return f"{naming.SNAPSHOT_REQUEST_LABEL},{naming.SNAPSHOT_VCLUSTER_NAME_LABEL}={name}"


def options_secret(name: str, namespace: str, url: str) -> dict[str, Any]:
    options = json.dumps(storage_options(url), separators=(",", ":")).encode()
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
        # Go marshals the status struct whole: `error` has no omitempty effect on a struct.
        "status": {"error": {}},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": request_name,
            "namespace": namespace,
            "labels": request_labels(name, namespace),
        },
        "data": {REQUEST_KEY: json.dumps(request, separators=(",", ":"))},
    }


def finalizer_release(configmap: client.V1ConfigMap) -> dict[str, Any] | None:
    """The merge patch taking the snapshot controller's finalizer off a request ConfigMap (any
    other finalizer stays), or None when it holds none.

    The controller removes it itself once a request is done or deleted
    (pkg/snapshot/controllerbase.go:86-124, 148-217); once the vCluster is uninstalled nobody
    does, and the namespace cannot finish deleting. `resourceVersion` makes the patch fail with
    a conflict, to be retried, if the list changed meanwhile.
    """
    finalizers = list(configmap.metadata.finalizers or [])
    if CONTROLLER_FINALIZER not in finalizers:
        return None
    return {
        "metadata": {
            "finalizers": [f for f in finalizers if f != CONTROLLER_FINALIZER],
            "resourceVersion": configmap.metadata.resource_version,
        }
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
