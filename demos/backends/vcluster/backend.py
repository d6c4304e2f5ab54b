"""`VClusterBackend`: each demo is one vCluster (one Helm release) in its own host namespace.

The lifecycle calls `apply` once and then `observe` until the demo is ready or failed; `pause`,
`resume`, `snapshot` and `delete` repeatedly until they report done. Every method is idempotent
and keyed by the cluster name, and keeps no state between calls: any worker can take over.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml
from kubernetes import client

from demos.backends.base import (
    BackendError,
    ChartPhase,
    ChartProgress,
    ManagedCluster,
    Observation,
    Phase,
    SnapshotPhase,
    SnapshotProgress,
    Spec,
)
from demos.backends.vcluster import entry, naming, observe, snapshots
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.helm import Helm, Runner, run_process
from demos.backends.vcluster.kube import (
    HostCluster,
    VClusterApi,
    host_api_client,
)
from demos.backends.vcluster.kube import vcluster_api_client as default_vcluster_client
from demos.backends.vcluster.probe import probe_url
from demos.backends.vcluster.restore import (
    VClusterCli,
    interrupted_restore,
    release_exists,
    remove_markers,
)
from demos.backends.vcluster.values import check_values, override_problems, render_values, to_yaml

VClusterClientFactory = Callable[[Mapping[str, Any], str], client.ApiClient]
Probe = Callable[[str, float, bool], tuple[bool, str]]
CONTROL_PLANE = "The vCluster control plane"
# The label an EndpointSlice names its Service by (discovery.k8s.io/v1).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class VClusterBackend:
    """Runs demos as vClusters on a real host cluster through Helm and the Kubernetes API."""

    name = "vcluster"
    label = "vCluster"
    simulated = False

    def __init__(
        self,
        cfg: VClusterSettings | None = None,
        *,
        host_api: client.ApiClient | None = None,
        helm_runner: Runner = run_process,
        cli_runner: Runner = run_process,
        vcluster_client: VClusterClientFactory = default_vcluster_client,
        probe: Probe = probe_url,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cfg = cfg or VClusterSettings.from_django()
        self._host_api = host_api
        self._host: HostCluster | None = None
        self.helm = Helm(self.cfg, helm_runner)
        self.cli = VClusterCli(self.cfg, cli_runner)
        self.vcluster_client = vcluster_client
        self.probe = probe
        self.now = clock

    @property
    def host(self) -> HostCluster:
        # Built on first use, so the portal starts (and shows a readable error) without a cluster.
        if self._host is None:
            api = self._host_api or host_api_client(self.cfg)
            self._host = HostCluster(api, self.cfg.request_timeout_seconds)
        return self._host

    def _namespace(self, name: str) -> str:
        return naming.namespace_for(name, self.cfg.namespace_prefix)

    # Archives.

    @property
    def can_restore(self) -> bool:
        """Restoring needs an archive destination that outlives the demo, and the `vcluster`
        CLI. A container:// archive is written to the demo's own volume, which archiving deletes
        with the demo, so it could never come back."""
        return bool(
            self.cfg.vcluster_cli
            and self.cfg.snapshot_url
            and not snapshots.is_container(self.cfg.snapshot_url)
        )

    @property
    def restore_unavailable_message(self) -> str:
        """Why archives cannot be restored here (empty when they can)."""
        if self.can_restore:
            return ""
        if not self.cfg.snapshot_url:
            return (
                "Archives are not available on this portal (no VCLUSTER_SNAPSHOT_URL); pausing "
                "still keeps demos for later."
            )
        if snapshots.is_container(self.cfg.snapshot_url):
            return (
                "Archives cannot be restored on this portal: VCLUSTER_SNAPSHOT_URL is a "
                "container:// path, on the demo's own volume, which archiving deletes with the "
                "demo. Use an s3:// or oci:// destination; pausing still keeps demos for later."
            )
        return (
            "Archives cannot be restored on this portal: restoring needs the vcluster CLI "
            "(VCLUSTER_CLI). Pausing still keeps demos for later."
        )

    def snapshot_location(self, name: str) -> str:
        """Where an archive of `name` goes, from VCLUSTER_SNAPSHOT_URL (without credentials)."""
        if not self.cfg.snapshot_url:
            raise BackendError(self.restore_unavailable_message, transient=False)
        filled = self.cfg.fill(
            self.cfg.snapshot_url,
            name=name,
            namespace=self._namespace(name),
            date=self.now().strftime("%Y%m%d-%H%M%S"),
        )
        return snapshots.public_url(filled)

    # Creating.

    def render(self, spec: Spec) -> str:
        """The vcluster.yaml `apply` installs for `spec`, checked against the schema."""
        refused = override_problems(spec)
        if refused:
            raise BackendError(refused[0], detail="\n".join(refused), transient=False)
        values = render_values(spec, self.cfg)
        check_values(values, self.cfg)
        return to_yaml(values)

    def apply(self, spec: Spec) -> None:
        """Create the namespace, then install (or upgrade) the vCluster Helm release."""
        name = spec["cluster_name"]
        naming.check_cluster_name(name, self.cfg.namespace_prefix)
        values_yaml = self.render(spec)
        # Built first: a template the gate cannot route fails before anything is created.
        routing = self._entry_objects(spec)
        namespace = self._ensure_namespace(spec)
        self.helm.upgrade_install(name, namespace, values_yaml)
        self._open_entry(namespace, routing)

    def _entry_objects(self, spec: Spec) -> list[dict[str, Any]]:
        """The demo's gated routing on the host (entry.py), when the backend creates it."""
        return entry.entry_objects(spec, self.cfg) if self.cfg.routes_entry else []

    def _open_entry(self, namespace: str, routing: Sequence[Mapping[str, Any]]) -> None:
        """Create or update the demo's gated routing. Its objects go with the namespace."""
        for obj in routing:
            self.host.put_object(namespace, obj)

    def restore(self, spec: Spec, location: str) -> None:
        """Create the cluster of `spec` from the archive at `location` with the vcluster CLI."""
        if not self.can_restore:
            raise BackendError(self.restore_unavailable_message, transient=False)
        if snapshots.is_container(location):
            raise BackendError(
                f"The archive {snapshots.shown_url(location)} was saved on the demo's own volume, "
                "which was deleted with the demo, so it cannot be restored.",
                transient=False,
            )
        name = spec["cluster_name"]
        naming.check_cluster_name(name, self.cfg.namespace_prefix)
        values_yaml = self.render(spec)
        namespace = self._ensure_namespace(spec)
        statefulset = self.host.read_statefulset(namespace, name)
        left = interrupted_restore(self.host, namespace, statefulset)
        if statefulset is not None and not left:
            return  # restored by an earlier attempt of this job
        if left:
            # An earlier attempt was killed mid-way: undo it as the CLI does after a failed
            # restore (helm uninstall, quota and pod gone), then restore from the start.
            remove_markers(self.host, namespace, left)
            if release_exists(self.host, namespace, name):
                self.helm.uninstall(name, namespace)
        source = snapshots.with_credentials(location, self.cfg.snapshot_url)
        self.cli.restore(name, namespace, values_yaml, source)

    def _ensure_namespace(self, spec: Spec) -> str:
        name = spec["cluster_name"]
        namespace = self._namespace(name)
        existing = self.host.read_namespace(namespace)
        if existing is not None:
            self._check_ours(existing)
            if existing.metadata.deletion_timestamp:
                raise BackendError(
                    f"The namespace {namespace} of an earlier demo with this name is still being "
                    "deleted; it will be retried.",
                    transient=True,
                )
            self._grant_worker(namespace)  # a repeated apply after the binding was lost
            return namespace
        labels = naming.portal_labels(
            self.cfg.portal_instance,
            name,
            spec.get("demo_id", ""),
            spec.get("template", {}).get("slug", ""),
        )
        annotations = {
            naming.CREATED_ANNOTATION: "true",
            naming.KUBECONFIG_DOWNLOAD_ANNOTATION: str(
                bool(spec.get("allow_kubeconfig_download"))
            ).lower(),
        }
        labels.update(naming.pod_security_labels(self.cfg.pod_security_standard))
        self.host.create_namespace(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": labels, "annotations": annotations},
            }
        )
        self._grant_worker(namespace)
        return namespace

    def _grant_worker(self, namespace: str) -> None:
        """Bind the worker's namespaced rights (VCLUSTER_NAMESPACE_ROLE) in this demo namespace
        only, so it holds no Secret or pod rights anywhere else on the host. Helm needs them to
        install the chart; the host's admission policy allows this binding only in namespaces
        labelled as this portal's demos."""
        if not self.cfg.namespace_role:
            return
        account_namespace, account = self.cfg.worker_service_account.split("/")
        self.host.create_role_binding(
            namespace,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {
                    "name": naming.WORKER_ROLE_BINDING,
                    "labels": {naming.MANAGED_BY_LABEL: naming.MANAGED_BY_VALUE},
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.cfg.namespace_role,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": account, "namespace": account_namespace}
                ],
            },
        )

    def _check_ours(self, namespace: client.V1Namespace) -> None:
        labels = namespace.metadata.labels or {}
        if labels.get(naming.MANAGED_BY_LABEL) != naming.MANAGED_BY_VALUE or labels.get(
            naming.INSTANCE_LABEL
        ) != (naming.label_value(self.cfg.portal_instance) or "default"):
            raise BackendError(
                f"The namespace {namespace.metadata.name} exists but was not created by this "
                "portal, so the portal leaves it alone. Remove it or choose another "
                "VCLUSTER_NAMESPACE_PREFIX.",
                transient=False,
            )

    # Watching.

    def observe(self, spec: Spec) -> Observation:
        """Phase, chart progress, live links and a readable message for the demo's vCluster."""
        name = spec["cluster_name"]
        namespace = self._namespace(name)
        found = self.host.read_namespace(namespace)
        if found is None:
            return Observation(Phase.ABSENT, "No vCluster exists for this demo.")
        if found.metadata.deletion_timestamp:
            return Observation(Phase.DELETING, "The demo's vCluster is being deleted.")
        statefulset = self.host.read_statefulset(namespace, name)
        if statefulset is None:
            return Observation(Phase.CREATING, "Creating the vCluster control plane.")
        if (statefulset.metadata.annotations or {}).get(naming.PAUSED) == "true":
            return Observation(Phase.PAUSED, "Paused: the vCluster is stopped, its data is kept.")

        pods = self.host.list_pods(namespace, naming.control_plane_selector(name))
        pod = observe.newest_pod(pods)
        detail = observe.describe_pods(pods)
        if not observe.pod_is_ready(pod):
            finding = self._control_plane_finding(namespace, name, pod)
            if finding and finding.fatal:
                return Observation(Phase.FAILED, finding.message, detail=finding.detail or detail)
            ready = (statefulset.status.ready_replicas if statefulset.status else 0) or 0
            starting = f"Starting the vCluster control plane ({ready}/1 ready)."
            message = finding.message if finding else starting
            return Observation(Phase.CREATING, message, detail=detail)

        kubeconfig = self._worker_kubeconfig(namespace, name)
        if kubeconfig is None:
            return Observation(
                Phase.CREATING,
                "Waiting for the vCluster to export its kubeconfig "
                f"(Secret {naming.kubeconfig_secret(name)}).",
                detail=detail,
            )
        return self._observe_inside(spec, namespace, *kubeconfig)

    def _control_plane_finding(
        self, namespace: str, name: str, pod: client.V1Pod | None
    ) -> observe.Finding | None:
        if pod is not None:
            finding = observe.pod_finding(pod, CONTROL_PLANE)
            if finding is not None and not finding.unschedulable:
                return finding
            storage = self._storage_finding(namespace, name)
            return storage or finding
        refusal = observe.refusal_finding(
            (e for e in self.host.list_events(namespace) if e.type == "Warning"),
            CONTROL_PLANE,
        )
        return refusal or self._storage_finding(namespace, name)

    def _storage_finding(self, namespace: str, name: str) -> observe.Finding | None:
        pvc = self.host.read_pvc(namespace, naming.data_pvc(name))
        if pvc is None or (pvc.status and pvc.status.phase != "Pending"):
            return None
        class_name = pvc.spec.storage_class_name if pvc.spec else None
        if not class_name:
            return observe.Finding(
                f"{CONTROL_PLANE} cannot get storage: the host cluster has no default storage "
                "class. Set VCLUSTER_STORAGE_CLASS.",
                True,
            )
        if self.host.read_storage_class(class_name) is None:
            return observe.Finding(
                f"{CONTROL_PLANE} cannot get storage: storage class `{class_name}` does not "
                "exist on the host cluster. Set VCLUSTER_STORAGE_CLASS to one that does.",
                True,
            )
        return observe.Finding(
            f"Waiting for storage: volume claim {naming.data_pvc(name)} is pending.", False
        )

    def _worker_kubeconfig(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        """(credentials, server) for reaching the vCluster from this worker.

        The server always comes from the current VCLUSTER_API_SERVER, not from the Secret: vc-NAME
        says https://localhost:8443, and a demo started before the setting changed (say, when the
        worker moved into the cluster) must still be reachable. The credentials are the same in
        both Secrets; the portal's own is read first because it may be written first.
        """
        for secret in (naming.portal_kubeconfig_secret(name), naming.kubeconfig_secret(name)):
            kubeconfig = self._secret_kubeconfig(namespace, secret)
            if kubeconfig is not None:
                return kubeconfig, self.cfg.fill(
                    self.cfg.api_server, name=name, namespace=namespace
                )
        return None

    def _secret_kubeconfig(self, namespace: str, secret_name: str) -> dict[str, Any] | None:
        secret = self.host.read_secret(namespace, secret_name)
        encoded = (secret.data or {}).get("config") if secret is not None else None
        if not encoded:
            return None
        try:
            loaded = yaml.safe_load(base64.b64decode(encoded))
        except (ValueError, yaml.YAMLError):
            return None
        return loaded if isinstance(loaded, dict) else None

    def _observe_inside(
        self, spec: Spec, namespace: str, kubeconfig: dict[str, Any], server: str
    ) -> Observation:
        name = spec["cluster_name"]
        charts: Sequence[Mapping[str, Any]] = spec.get("charts") or []
        vcluster = VClusterApi(
            self.vcluster_client(kubeconfig, server), self.cfg.request_timeout_seconds
        )
        try:
            ready, said = vcluster.readyz()
            if not ready:
                return Observation(Phase.CREATING, f"The vCluster API is starting ({said}).")
            status = observe.deploy_status(vcluster.read_configmap(*naming.DEPLOY_CONFIGMAP))
            progress = observe.chart_progress(charts, status)
            refusal = self._inside_refusal(vcluster, charts)
        except BackendError as exc:
            if not exc.transient:
                raise
            return Observation(
                Phase.INSTALLING,
                f"The worker cannot reach the vCluster API at {server} yet: {exc.message} "
                "If this persists, check VCLUSTER_API_SERVER (see docs/vcluster.md).",
                detail=exc.detail,
            )
        finally:
            vcluster.close()

        workload = self.host.list_pods(namespace, naming.workload_selector(name))
        detail = observe.describe_pods(workload)
        for pod in workload:
            finding = observe.pod_finding(pod, observe.chart_of_pod(pod, charts))
            if finding is not None and finding.fatal:
                return Observation(Phase.FAILED, finding.message, progress, detail=finding.detail)
        if refusal is not None:
            return Observation(Phase.FAILED, refusal.message, progress, detail=refusal.detail)
        retrying = [chart for chart in progress if chart.phase == ChartPhase.RETRYING]
        if retrying:
            # Not final: vCluster tries again every 10 s; the lifecycle decides at its deadline.
            chart = retrying[0]
            return Observation(
                Phase.INSTALLING,
                f"Chart `{chart.name}` failed to install and vCluster is retrying it: "
                f"{chart.message or 'see the event log'}.",
                progress,
                detail=str(status),
            )
        if charts and status is None:
            return Observation(
                Phase.INSTALLING,
                "Waiting for the vCluster to start installing the charts (no status in "
                "kube-system/vcluster-deploy yet).",
                progress,
                detail=detail,
            )
        if status is not None and status.phase.lower() == "failed":
            return Observation(
                Phase.INSTALLING,
                "Installing the charts failed and vCluster is retrying: "
                f"{status.message or 'see the event log'}.",
                progress,
                detail=str(status),
            )
        pending = [chart for chart in progress if chart.phase != ChartPhase.SUCCESS]
        if pending:
            done = len(progress) - len(pending)
            waiting = ", ".join(f"{c.name} ({c.phase})" for c in pending)
            return Observation(
                Phase.INSTALLING,
                f"Installing charts: {done} of {len(progress)} done; waiting for {waiting}.",
                progress,
                detail=detail,
            )
        return self._check_live(spec, namespace, progress, workload, detail)

    def _inside_refusal(
        self, vcluster: VClusterApi, charts: Sequence[Mapping[str, Any]]
    ) -> observe.Finding | None:
        # The host's quota refuses synced pods; vCluster reports that on the pods inside it.
        for namespace in dict.fromkeys(c.get("namespace") or "default" for c in charts):
            events = [e for e in vcluster.list_events(namespace) if e.type == "Warning"]
            who = observe.chart_in_namespace(namespace, charts) or f"Namespace {namespace}"
            finding = observe.refusal_finding(events, who)
            if finding is not None:
                return finding
        return None

    def _check_live(
        self,
        spec: Spec,
        namespace: str,
        progress: tuple[ChartProgress, ...],
        workload: Sequence[client.V1Pod],
        detail: str,
    ) -> Observation:
        if self.cfg.routes_entry:
            # The portal owns the demo's host: its routing is checked here too (a restore
            # comes this way, not through apply), and it is the only live link.
            self._open_entry(namespace, self._entry_objects(spec))
            entry_url = entry.live_url(spec, self.cfg)
            urls: tuple[str, ...] = (entry_url,)
        else:
            # Only the Ingresses synced from inside the vCluster (they carry its marker label):
            # the chart's own API Ingress (VCLUSTER_API_INGRESS_HOST) is no live link.
            ingress_urls = observe.ingress_urls(
                self.host.list_ingresses(namespace, naming.workload_selector(spec["cluster_name"])),
                self.cfg.ingress_class,
            )
            entry_url = spec.get("entry_url") or (ingress_urls[0] if ingress_urls else "")
            urls = tuple(dict.fromkeys([u for u in [entry_url, *ingress_urls] if u]))
        if self.cfg.routes_entry:
            # Through the gate the link answers (a redirect to the sign-in page) whether or not
            # the app does, so the app's own Service must have a ready pod first.
            waiting = self._entry_waiting(spec, namespace)
            if waiting:
                return Observation(Phase.CHECKING, waiting, progress, urls, detail)
        if not entry_url or not self.cfg.http_check:
            return Observation(Phase.READY, "Ready.", progress, urls, detail)
        answers, said = self.probe(
            entry_url, self.cfg.request_timeout_seconds, self.cfg.http_check_verify_tls
        )
        if answers:
            return Observation(Phase.READY, f"Ready: {entry_url} answers ({said}).", progress, urls)
        # Say why the link is not answering yet when a pod shows it (e.g. still pulling).
        charts = spec.get("charts") or []
        findings = [observe.pod_finding(pod, observe.chart_of_pod(pod, charts)) for pod in workload]
        reason = next((f.message for f in findings if f is not None), "")
        waiting = f"Charts installed; waiting for the live link {entry_url} to answer ({said})."
        return Observation(Phase.CHECKING, f"{waiting} {reason}".strip(), progress, urls, detail)

    def _entry_waiting(self, spec: Spec, namespace: str) -> str:
        """Why the template's entry service cannot serve the live link yet (empty: it can)."""
        target = entry.entry_service(spec)
        shown = f"{target.namespace}/{target.name}"
        host_name = naming.host_service_name(target, spec["cluster_name"])
        service = self.host.read_service(namespace, host_name)
        if service is None:
            return (
                f"Charts installed; waiting for the entry service {shown} to exist in the "
                "vCluster (check the template's entry service if this persists)."
            )
        ports = [port.port for port in (service.spec.ports if service.spec else None) or []]
        if target.port not in ports:
            listed = ", ".join(str(port) for port in ports) or "none"
            return (
                f"Charts installed, but the entry service {shown} has no port {target.port} "
                f"(its ports: {listed}): fix the template's entry service."
            )
        slices = self.host.list_endpoint_slices(namespace, f"{SERVICE_NAME_LABEL}={host_name}")
        if not any(observe.endpoint_ready(point) for s in slices for point in s.endpoints or []):
            return f"Charts installed; waiting for a ready pod behind the entry service {shown}."
        return ""

    # Pausing.

    def pause(self, name: str) -> bool:
        """Scale the control plane to zero as `vcluster pause` does; True once fully stopped."""
        namespace = self._namespace(name)
        statefulset = self._existing_statefulset(namespace, name, "paused")
        annotations = statefulset.metadata.annotations or {}
        if annotations.get(naming.PAUSED) != "true":
            replicas = statefulset.spec.replicas if statefulset.spec else None
            self.host.patch_statefulset(
                namespace,
                name,
                {
                    "metadata": {
                        "annotations": {
                            naming.PAUSED: "true",
                            naming.PAUSED_REPLICAS: str(replicas or 1),
                            naming.PAUSED_DATE: self.now()
                            .astimezone(UTC)
                            .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
                            + "Z",
                        }
                    },
                    "spec": {"replicas": 0},
                },
            )
            return False
        if statefulset.status and (statefulset.status.replicas or 0) > 0:
            return False  # the control plane is still stopping
        # The synced workloads would keep running without their control plane: stop them too.
        pods = self.host.list_pods(namespace, naming.workload_selector(name))
        for pod in pods:
            if not pod.metadata.deletion_timestamp:
                self.host.delete_pod(namespace, pod.metadata.name)
        return not pods

    def resume(self, name: str) -> bool:
        """Undo `pause` as `vcluster resume` does. True once the control plane is asked to run."""
        namespace = self._namespace(name)
        statefulset = self._existing_statefulset(namespace, name, "resumed")
        annotations = statefulset.metadata.annotations or {}
        replicas = statefulset.spec.replicas if statefulset.spec else None
        if annotations.get(naming.PAUSED) == "true" or not replicas:
            try:
                wanted = int(annotations.get(naming.PAUSED_REPLICAS) or 1)
            except ValueError:
                wanted = 1
            self.host.patch_statefulset(
                namespace,
                name,
                {
                    "metadata": {
                        "annotations": {
                            naming.PAUSED: None,
                            naming.PAUSED_REPLICAS: None,
                            naming.PAUSED_DATE: None,
                        }
                    },
                    "spec": {"replicas": max(wanted, 1)},
                },
            )
        return True

    def _existing_statefulset(self, namespace: str, name: str, verb: str) -> client.V1StatefulSet:
        # The namespace first: without it the worker holds no rights there at all (they come
        # with its RoleBinding inside), so reading the StatefulSet would be refused, not missing.
        found = self.host.read_namespace(namespace)
        statefulset = None if found is None else self.host.read_statefulset(namespace, name)
        if statefulset is None:
            raise BackendError(
                f"The demo's vCluster ({name}) does not exist any more, so it cannot be {verb}.",
                transient=False,
            )
        return statefulset

    # Archiving.

    def snapshot(self, name: str, location: str) -> SnapshotProgress:
        """Request a snapshot to `location` (first call) and follow it (later calls)."""
        namespace = self._namespace(name)
        statefulset = self._existing_statefulset(namespace, name, "archived")
        if (statefulset.metadata.annotations or {}).get(naming.PAUSED) == "true":
            raise BackendError(
                "A paused vCluster cannot take a snapshot: it must run to save its state. "
                "Resume the demo first.",
                transient=False,
            )
        source = snapshots.with_credentials(location, self.cfg.snapshot_url)
        wanted = snapshots.canonical_url(source)
        requests = [
            (configmap, parsed)
            for configmap in self.host.list_configmaps(namespace, snapshots.request_selector(name))
            if (parsed := snapshots.parse_request(configmap)) is not None and parsed.url == wanted
        ]
        if not requests:
            secret = self.host.create_secret(
                namespace, snapshots.options_secret(name, namespace, source)
            )
            self.host.create_configmap(
                namespace,
                snapshots.request_configmap(
                    secret.metadata.name, name, namespace, source, self.now()
                ),
            )
            return SnapshotProgress(SnapshotPhase.RUNNING, location, "Snapshot requested.")
        oldest = datetime.min.replace(tzinfo=UTC)
        _configmap, newest = max(requests, key=lambda pair: pair[1].created or oldest)
        phase, message = snapshots.progress_phase(newest)
        if phase == SnapshotPhase.FAILED:
            # Clear the failed request, so a later attempt at the same location starts afresh.
            self.host.delete_configmap(namespace, newest.name)
            self.host.delete_secret(namespace, newest.name)
        return SnapshotProgress(phase, location, message)

    def _release_snapshot_requests(self, namespace: str, name: str) -> None:
        """Take the snapshot controller's finalizer off this demo's snapshot request ConfigMaps
        (only that finalizer, only this vCluster's requests), as the controller would have once
        they were done or deleted: once it is uninstalled, they would keep the namespace
        Terminating for ever."""
        for configmap in self.host.list_configmaps(namespace, snapshots.request_selector(name)):
            patch = snapshots.finalizer_release(configmap)
            if patch is None:
                continue
            self.host.patch_configmap(namespace, configmap.metadata.name, patch)

    # Deleting.

    def delete(self, name: str) -> bool:
        """Remove the cluster in vCluster's safe order; True once nothing is left."""
        namespace = self._namespace(name)
        found = self.host.read_namespace(namespace)
        if found is None:
            return True
        self._check_ours(found)
        if found.metadata.deletion_timestamp:
            return False
        # 1. Helm first: it also removes the cluster-wide RBAC objects the chart created.
        if self.host.list_secrets(namespace, f"owner=helm,name={name}"):
            self.helm.uninstall(name, namespace)
        # 2. The data volume claim: its retention policy is Retain, so Helm leaves it behind.
        pvc = self.host.read_pvc(namespace, naming.data_pvc(name))
        if pvc is not None:
            if not pvc.metadata.deletion_timestamp:
                self.host.delete_pvc(namespace, naming.data_pvc(name))
            return False
        # 3. Snapshot requests the vCluster left unfinished keep its controller's finalizer, and
        # would keep the namespace Terminating for ever. Released only now: the control plane that
        # would add it back is gone (its volume claim cannot go while a pod uses it), and not
        # later: the worker's rights here are a RoleBinding that goes with the namespace.
        self._release_snapshot_requests(namespace, name)
        # 4. The namespace, if it was made for this vCluster.
        if (found.metadata.annotations or {}).get(naming.CREATED_ANNOTATION) != "true":
            return True
        self.host.delete_namespace(namespace)
        return False

    def list_clusters(self) -> list[ManagedCluster]:
        """Every vCluster this portal instance created, found by its namespace labels."""
        clusters = []
        for namespace in self.host.list_namespaces(
            naming.portal_selector(self.cfg.portal_instance)
        ):
            labels = namespace.metadata.labels or {}
            name = labels.get(naming.CLUSTER_LABEL)
            if name:
                clusters.append(
                    ManagedCluster(
                        name=name,
                        demo_id=labels.get(naming.DEMO_ID_LABEL, ""),
                        created_at=namespace.metadata.creation_timestamp,
                    )
                )
        return clusters

    # Access for prospects.

    def kubeconfig(self, name: str) -> str | None:
        """A kubeconfig for the demo's vCluster that works from outside, when both the template
        allows it and the operator exposes vCluster APIs (VCLUSTER_EXTERNAL_SERVER)."""
        if not self.cfg.external_server:
            return None
        namespace = self._namespace(name)
        found = self.host.read_namespace(namespace)
        if found is None:
            return None
        annotations = found.metadata.annotations or {}
        if annotations.get(naming.KUBECONFIG_DOWNLOAD_ANNOTATION) != "true":
            return None
        kubeconfig = self._secret_kubeconfig(namespace, naming.kubeconfig_secret(name))
        if kubeconfig is None:
            return None
        server = self.cfg.fill(self.cfg.external_server, name=name, namespace=namespace)
        for cluster in kubeconfig.get("clusters") or []:
            cluster.setdefault("cluster", {})["server"] = server
        return yaml.safe_dump(kubeconfig, sort_keys=False)
