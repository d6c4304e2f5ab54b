"""The pure parts of `make cluster-test`, kept here so `make test` can test them without a cluster.

`scripts/cluster-test` calls this module (`python -m tests.cluster.harness COMMAND`) for every step
that is logic rather than plumbing: which rendered objects make up the worker's access, the
kubeconfig of the worker's ServiceAccount, the chart repository index, the snapshot URL for the
MinIO bucket and the settings environment of the portal under test. The cluster suite uses
`leftovers()` to say what a deleted demo left behind. Nothing here imports Django or talks to a
cluster, so it runs before the virtual environment has a database and on machines with no Docker.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

WORKER_NAMESPACE = "demo-portal"
WORKER_SERVICE_ACCOUNT = "portal-backend"
# What the worker needs from the rendered overlay: its identity, its rights, and the admission
# policies that narrow them. Everything else (Deployments, the portal's Ingress, the database)
# needs the portal's image, which the suite does not build: the test process is the worker.
WORKER_ACCESS_KINDS = frozenset(
    {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
# A ConfigMap holds at most 1 MiB; base64 in binaryData makes each package a third larger.
CONFIGMAP_LIMIT_BYTES = 1024 * 1024


class HarnessError(Exception):
    """A precondition of the suite that does not hold, worded for the person running it."""


# --- The worker's identity -------------------------------------------------------------------


def _binds_worker(document: Mapping[str, Any]) -> bool:
    return any(
        subject.get("kind") == "ServiceAccount"
        and subject.get("name") == WORKER_SERVICE_ACCOUNT
        and subject.get("namespace", WORKER_NAMESPACE) == WORKER_NAMESPACE
        for subject in document.get("subjects") or []
    )


def worker_access_objects(documents: Iterable[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """The objects of a rendered overlay that give the worker its rights, in apply order.

    Namespaces and ServiceAccounts first, then roles, then bindings, then admission policies and
    their bindings, so one `kubectl apply` never refers to something it has not created yet.
    Refuses a rendering in which nothing binds the worker's ServiceAccount: the suite would then
    run with no rights and fail far from the cause.
    """
    order = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "ClusterRoleBinding",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    picked = [dict(d) for d in documents if d and d.get("kind") in WORKER_ACCESS_KINDS]
    accounts = [
        d
        for d in picked
        if d["kind"] == "ServiceAccount"
        and d.get("metadata", {}).get("name") == WORKER_SERVICE_ACCOUNT
    ]
    if not accounts:
        raise HarnessError(
            f"The rendered overlay has no ServiceAccount {WORKER_SERVICE_ACCOUNT}: the suite "
            "runs as the worker and needs its identity."
        )
    if not any(d["kind"] == "ClusterRoleBinding" and _binds_worker(d) for d in picked):
        raise HarnessError(
            f"Nothing in the rendered overlay binds a ClusterRole to {WORKER_NAMESPACE}/"
            f"{WORKER_SERVICE_ACCOUNT}: the worker could not create demo namespaces."
        )
    return sorted(picked, key=lambda d: order.index(d["kind"]))


def admin_cluster(kubeconfig: Mapping[str, Any], context: str = "") -> dict[str, Any]:
    """The `cluster` entry (server, CA) of `context` (default: the current one) in a kubeconfig."""
    name = context or kubeconfig.get("current-context") or ""
    contexts = {c.get("name"): c.get("context") or {} for c in kubeconfig.get("contexts") or []}
    if name not in contexts:
        raise HarnessError(f"Context {name!r} is not in the kubeconfig.")
    cluster_name = contexts[name].get("cluster")
    for entry in kubeconfig.get("clusters") or []:
        if entry.get("name") == cluster_name:
            cluster = dict(entry.get("cluster") or {})
            if not cluster.get("server"):
                raise HarnessError(f"Cluster {cluster_name!r} in the kubeconfig has no server.")
            return cluster
    raise HarnessError(f"Cluster {cluster_name!r} of context {name!r} is not in the kubeconfig.")


def worker_kubeconfig(cluster: Mapping[str, Any], token: str) -> dict[str, Any]:
    """A kubeconfig that authenticates as the worker's ServiceAccount, nothing else.

    Only the server and its CA are taken from the admin kubeconfig; no client certificate, exec
    plugin or other credential comes along, so every call of the suite is authorised exactly as
    the worker's would be in the cluster.
    """
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise HarnessError("The ServiceAccount token is empty or malformed.")
    kept = {
        key: cluster[key]
        for key in (
            "server",
            "certificate-authority-data",
            "certificate-authority",
            "tls-server-name",
            "insecure-skip-tls-verify",
        )
        if key in cluster
    }
    user = f"{WORKER_NAMESPACE}:{WORKER_SERVICE_ACCOUNT}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster-test", "cluster": kept}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "worker",
                "context": {"cluster": "cluster-test", "user": user, "namespace": WORKER_NAMESPACE},
            }
        ],
        "current-context": "worker",
    }


# --- The sample charts as a chart repository -------------------------------------------------


def _chart_metadata(package: Path) -> dict[str, Any]:
    with tarfile.open(package, "r:gz") as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "Chart.yaml":
                extracted = archive.extractfile(member)
                if extracted is not None:
                    loaded = yaml.safe_load(extracted.read())
                    if isinstance(loaded, dict):
                        return loaded
    raise HarnessError(f"{package.name} is not a chart package (no <chart>/Chart.yaml inside).")


def chart_index(packages: Sequence[Path], base_url: str, now: datetime | None = None) -> str:
    """index.yaml of a classic (HTTP) chart repository serving `packages` at `base_url`.

    vCluster's deploy controller installs each chart with `helm --repo <url>`, which reads this
    index, picks the entry by name and version and downloads its URL. Digests are checked by
    `helm pull --verify` users, and the suite's own test fetches through real helm.
    """
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    entries: dict[str, list[dict[str, Any]]] = {}
    for package in sorted(packages):
        meta = _chart_metadata(package)
        entry = {key: meta[key] for key in meta if key not in ("dependencies",)}
        entry.update(
            created=created,
            digest=hashlib.sha256(package.read_bytes()).hexdigest(),
            urls=[f"{base_url.rstrip('/')}/{package.name}"],
        )
        entries.setdefault(meta["name"], []).append(entry)
    for versions in entries.values():
        versions.sort(key=lambda e: str(e.get("version")), reverse=True)
    index = {"apiVersion": "v1", "entries": entries, "generated": created}
    return yaml.safe_dump(index, sort_keys=True)


def configmap_payload_size(files: Sequence[Path]) -> int:
    """Bytes the files take in a ConfigMap (binary ones base64-encoded in binaryData)."""
    total = 0
    for path in files:
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            total += len(data)
        except UnicodeDecodeError:
            total += len(base64.b64encode(data))
    return total


# --- Archives in MinIO -----------------------------------------------------------------------


def _b64(value: str) -> str:
    # Upstream decodes with StdEncoding after turning spaces back into "+" (what a form decoder
    # makes of an unescaped "+"); percent-encoding "+", "/" and "=" keeps the value intact.
    return quote(base64.b64encode(value.encode()).decode(), safe="")


def snapshot_url(
    bucket: str, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1"
) -> str:
    """VCLUSTER_SNAPSHOT_URL for an S3-compatible bucket, with vCluster v0.36.1's option names.

    From `S3Options` in vendor/github.com/loft-sh/api/v4/pkg/snapshot/options.go at v0.36.1, read
    by `PopulateStructFromMap` (pkg/snapshot/options/options.go): `url`, `access-key-id` and
    `secret-access-key` are base64 (`url:"…,base64"`), `force-path-style` is a bool (MinIO
    serves buckets as paths, not as sub-domains), `region` is plain.
    """
    if not endpoint.startswith(("http://", "https://")):
        raise HarnessError(f"The S3 endpoint {endpoint!r} must be an http(s) URL.")
    options = [
        ("region", quote(region, safe="")),
        ("force-path-style", "true"),
        ("url", _b64(endpoint)),
        ("access-key-id", _b64(access_key)),
        ("secret-access-key", _b64(secret_key)),
    ]
    query = "&".join(f"{key}={value}" for key, value in options)
    return f"s3://{bucket}/{{name}}-{{date}}.tar.gz?{query}"


# --- The portal's settings under test --------------------------------------------------------


def settings_environment(
    *,
    worker_kubeconfig_path: str,
    base_domain: str,
    https_port: int,
    snapshot_url: str,
    vcluster_cli: str,
    helm_bin: str,
    values_schema: str = "",
    ingress_class: str = "nginx",
    storage_class: str = "",
) -> dict[str, str]:
    """The environment a deployment with its worker outside the host cluster would have.

    The worker reaches each vCluster API through the ingress controller with SSL passthrough:
    the API Ingress the portal creates (`VCLUSTER_API_INGRESS_HOST`) and a matching
    `VCLUSTER_API_SERVER`. The portal adds that host to the vCluster certificate's SANs, so TLS
    verifies against it, not against localhost. The demo ingress serves the controller's own
    self-signed certificate, hence no TLS verification of live links.
    """
    if not 0 < https_port < 65536:
        raise HarnessError(f"HTTPS port {https_port} is not a port.")
    port = "" if https_port == 443 else f":{https_port}"
    env = {
        "DEMO_BACKEND": "vcluster",
        "DEMO_BASE_DOMAIN": base_domain,
        # This suite proves the vCluster side on a throwaway cluster: the portal runs outside it,
        # where the cluster's ingress controller cannot call its gate. The gate's routing is
        # proven on the emulated host (tests/kube/test_gate_routing.py) and behind a real nginx
        # (tests/test_gate_nginx.py).
        "DEMO_GATE": "false",
        "VCLUSTER_KUBECONFIG": worker_kubeconfig_path,
        "VCLUSTER_HELM_BIN": helm_bin,
        "VCLUSTER_INGRESS_CLASS": ingress_class,
        "VCLUSTER_STORAGE_CLASS": storage_class,
        "VCLUSTER_PORTAL_INSTANCE": "cluster-test",
        "VCLUSTER_API_INGRESS_HOST": "{name}-api.{base_domain}",
        "VCLUSTER_API_SERVER": f"https://{{name}}-api.{{base_domain}}{port}",
        "VCLUSTER_EXTERNAL_SERVER": f"https://{{name}}-api.{{base_domain}}{port}",
        "VCLUSTER_SNAPSHOT_URL": snapshot_url,
        "VCLUSTER_CLI": vcluster_cli,
        "VCLUSTER_HTTP_CHECK": "true",
        "VCLUSTER_HTTP_CHECK_VERIFY_TLS": "false",
        "VCLUSTER_NETWORK_POLICY": "false",
        "VCLUSTER_VALUES_SCHEMA": values_schema,
        "DEMO_TEST_HTTPS_PORT": str(https_port),
    }
    return env


def entry_url(host: str, https_port: int) -> str:
    """The live link of a demo at `host` through the test cluster's HTTPS port mapping."""
    return f"https://{host}/" if https_port == 443 else f"https://{host}:{https_port}/"


# --- What a deleted demo must not leave behind -----------------------------------------------


def _name(item: Mapping[str, Any]) -> str:
    return str((item.get("metadata") or {}).get("name") or "")


def leftovers(
    *,
    name: str,
    namespace: str,
    namespaces: Iterable[Mapping[str, Any]],
    cluster_roles: Iterable[Mapping[str, Any]],
    cluster_role_bindings: Iterable[Mapping[str, Any]],
    persistent_volumes: Iterable[Mapping[str, Any]],
) -> list[str]:
    """Everything of vCluster `name` (host namespace `namespace`) still on the host, as sentences.

    Empty when the delete was complete. The chart names its cluster-scoped RBAC
    `vc-<name>-v-<namespace>` (`_rbac.tpl`); PVs are matched by their claim, since a PV whose
    claim went away stays `Released` (and keeps the data) when its reclaim policy is Retain.
    """
    found: list[str] = []
    if any(_name(n) == namespace for n in namespaces):
        found.append(f"namespace {namespace}")
    rbac_name = f"vc-{name}-v-{namespace}"
    for kind, items in (
        ("ClusterRole", cluster_roles),
        ("ClusterRoleBinding", cluster_role_bindings),
    ):
        for item in items:
            if _name(item) == rbac_name:
                found.append(f"{kind} {rbac_name}")
    for volume in persistent_volumes:
        claim = (volume.get("spec") or {}).get("claimRef") or {}
        if claim.get("namespace") == namespace:
            phase = (volume.get("status") or {}).get("phase", "")
            found.append(
                f"PersistentVolume {_name(volume)} ({phase or 'no phase'}) of claim "
                f"{namespace}/{claim.get('name', '?')}"
            )
    return found


# --- Command line for scripts/cluster-test ---------------------------------------------------


def _command_worker_access(args: argparse.Namespace) -> None:
    documents = list(yaml.safe_load_all(sys.stdin.read()))
    sys.stdout.write(yaml.safe_dump_all(worker_access_objects(documents), sort_keys=False))


def _command_worker_kubeconfig(args: argparse.Namespace) -> None:
    admin = yaml.safe_load(Path(args.admin_kubeconfig).read_text())
    cluster = admin_cluster(admin, args.context)
    token = Path(args.token_file).read_text()
    sys.stdout.write(yaml.safe_dump(worker_kubeconfig(cluster, token), sort_keys=False))


def _command_index(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    packages = sorted(folder.glob("*.tgz"))
    if not packages:
        raise HarnessError(f"No chart packages in {folder}.")
    (folder / "index.yaml").write_text(chart_index(packages, args.url))
    size = configmap_payload_size([*packages, folder / "index.yaml"])
    if size > CONFIGMAP_LIMIT_BYTES:
        raise HarnessError(
            f"The packaged charts take {size} bytes, more than a ConfigMap holds "
            f"({CONFIGMAP_LIMIT_BYTES})."
        )


def _command_snapshot_url(args: argparse.Namespace) -> None:
    print(snapshot_url(args.bucket, args.endpoint, args.access_key, args.secret_key))


def _command_env(args: argparse.Namespace) -> None:
    env = settings_environment(
        worker_kubeconfig_path=args.worker_kubeconfig,
        base_domain=args.base_domain,
        https_port=args.https_port,
        snapshot_url=args.snapshot_url,
        vcluster_cli=args.vcluster_cli,
        helm_bin=args.helm,
        values_schema=args.values_schema,
    )
    # One KEY=VALUE per line; values never hold newlines (checked), so `read -r` is enough.
    for key, value in env.items():
        if "\n" in value:
            raise HarnessError(f"{key} holds a newline.")
        print(f"{key}={value}")


def _command_check_domain(args: argparse.Namespace) -> None:
    import socket

    host = f"resolve-check-api.{args.base_domain}"
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, 443)}
    except OSError as exc:
        raise HarnessError(
            f"{host} does not resolve ({exc}). The suite needs a wildcard name for 127.0.0.1: "
            "set DEMO_TEST_BASE_DOMAIN (e.g. 127.0.0.1.nip.io or localtest.me) to one your DNS "
            "resolver answers."
        ) from None
    if not addresses & {"127.0.0.1", "::1"}:
        raise HarnessError(
            f"{host} resolves to {', '.join(sorted(addresses))}, not 127.0.0.1. Some resolvers "
            "block answers with private addresses (DNS rebinding protection): set "
            "DEMO_TEST_BASE_DOMAIN to a name that resolves to 127.0.0.1."
        )


def _port(value: str) -> int:
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.harness")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("worker-access", help="stdin: rendered overlay; stdout: worker's access")

    kubeconfig = commands.add_parser("worker-kubeconfig", help="kubeconfig of the worker's SA")
    kubeconfig.add_argument("--admin-kubeconfig", required=True)
    kubeconfig.add_argument("--context", default="")
    kubeconfig.add_argument("--token-file", required=True)

    index = commands.add_parser("index", help="write FOLDER/index.yaml for its chart packages")
    index.add_argument("folder")
    index.add_argument("url")

    snapshot = commands.add_parser("snapshot-url", help="VCLUSTER_SNAPSHOT_URL for MinIO")
    snapshot.add_argument("--bucket", required=True)
    snapshot.add_argument("--endpoint", required=True)
    snapshot.add_argument("--access-key", required=True)
    snapshot.add_argument("--secret-key", required=True)

    env = commands.add_parser("env", help="the portal's settings under test, KEY=VALUE lines")
    env.add_argument("--worker-kubeconfig", required=True)
    env.add_argument("--base-domain", required=True)
    env.add_argument("--https-port", type=_port, required=True)
    env.add_argument("--snapshot-url", required=True)
    env.add_argument("--vcluster-cli", required=True)
    env.add_argument("--helm", required=True)
    env.add_argument("--values-schema", default="")

    domain = commands.add_parser("check-domain", help="does *.BASE_DOMAIN resolve to 127.0.0.1")
    domain.add_argument("base_domain")

    args = parser.parse_args(argv)
    handlers = {
        "worker-access": _command_worker_access,
        "worker-kubeconfig": _command_worker_kubeconfig,
        "index": _command_index,
        "snapshot-url": _command_snapshot_url,
        "env": _command_env,
        "check-domain": _command_check_domain,
    }
    try:
        handlers[args.command](args)
    except (HarnessError, OSError, yaml.YAMLError) as exc:
        print(f"cluster-test: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
