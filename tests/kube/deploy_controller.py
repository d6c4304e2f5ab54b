"""vCluster's deploy controller, as it runs inside a vCluster at v0.36.1, played through the API.

It installs the charts of `experimental.deploy.vcluster.helm` after start-up and reports progress
in the annotation `vcluster.loft.sh/status` of ConfigMap kube-system/vcluster-deploy. Upstream, in
loft-sh/vcluster at tag v0.36.1:

- `pkg/controllers/deploy/start.go` (RegisterInitManifestsController): `DeployInitManifests`
  once, then `DeployHelmCharts` in a loop that sleeps 10 s after each error and stops at the
  first success. A failed chart is therefore not final: the next attempt may succeed.
- `pkg/controllers/deploy/deploy.go`:
  - `apply` creates the ConfigMap when there is something to deploy, runs one step, and always
    finishes with `UpdateConfigMap`;
  - `ProcessInitManifests` with no manifests sets the manifests' phase to Success;
  - `ProcessHelmChart` walks the charts in order and returns at the first failure
    (`setChartStatus(..., StatusFailed, InstallError, err.Error())`), so later charts are not
    listed yet; a chart whose release exists and whose config hash is unchanged is skipped;
    a success writes the entry via `setChartStatusLastApplied` (phase Success, reason and
    message cleared, `lastAppliedChartConfigHash` = md5 of the chart's JSON);
  - `UpdateConfigMap`: phase Failed (with that reason and message) when the manifests or any
    listed chart is not Success; else Failed with reason Unknown if the step returned an error;
    else Pending while fewer charts are listed than configured, Success when all are;
  - `encodeStatus` writes the status with `json.Marshal` (Go field order, `omitempty`; the
    `manifests` struct is never omitted), `types.go` has the field names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client

from demos.backends.vcluster import naming

INSTALL_ERROR = "InstallFailed"  # deploy.go: InstallError


def _go_json(status: Mapping[str, Any]) -> str:
    """What Go's json.Marshal writes for `Status`: compact, struct field order, omitempty."""

    def compact(fields: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
        return {key: fields[key] for key in order if fields.get(key)}

    chart_order = ("name", "namespace", "phase", "reason", "message", "lastAppliedChartConfigHash")
    document = compact(status, ("phase", "reason", "message"))
    charts = [compact(chart, chart_order) for chart in status.get("charts", [])]
    if charts:
        document["charts"] = charts
    document["manifests"] = compact(
        status.get("manifests", {}), ("phase", "reason", "message", "lastAppliedManifests")
    )
    return json.dumps(document, separators=(",", ":"))


class DeployController:
    """One vCluster's deploy controller; `attempt` is one pass of start.go's retry loop."""

    def __init__(self, api: client.ApiClient, values: Mapping[str, Any]) -> None:
        self.core = client.CoreV1Api(api)
        deploy = values.get("experimental", {}).get("deploy", {}).get("vcluster", {})
        self.charts: list[Mapping[str, Any]] = list(deploy.get("helm") or [])
        self.manifests: str = deploy.get("manifests") or ""
        self.status: dict[str, Any] = {"charts": [], "manifests": {}}
        self.installed: set[tuple[str, str]] = set()
        self.started = False

    def start(self) -> None:
        """DeployInitManifests: create the ConfigMap and mark the (absent) manifests done."""
        if not self.charts and not self.manifests:
            return
        self.status["manifests"] = {"phase": "Success"}
        self._write(last_error="")
        self.started = True

    def attempt(self, failures: Mapping[str, str] | None = None) -> bool:
        """One DeployHelmCharts pass. `failures` maps a release name to the error its install
        gives this time. True when every chart is installed (the loop would stop)."""
        if not self.started:
            self.start()
        failures = failures or {}
        error = ""
        for chart in self.charts:
            release = (chart["release"]["name"], chart["release"].get("namespace") or "default")
            entry = self._entry(release)
            if release in self.installed and entry.get("lastAppliedChartConfigHash") == _hash(
                chart
            ):
                continue
            if release[0] in failures:
                error = failures[release[0]]
                entry.update(phase="Failed", reason=INSTALL_ERROR, message=error)
                break
            self.installed.add(release)
            entry.update(phase="Success", reason="", message="")
            entry["lastAppliedChartConfigHash"] = _hash(chart)
        self._write(last_error=error)
        return not error

    def _entry(self, release: tuple[str, str]) -> dict[str, Any]:
        for entry in self.status["charts"]:
            if (entry["name"], entry["namespace"]) == release:
                return entry
        entry = {"name": release[0], "namespace": release[1]}
        self.status["charts"].append(entry)
        return entry

    def _write(self, *, last_error: str) -> None:
        status = self.status
        status.update(phase="Pending", reason="", message="")
        broken = None
        if status["manifests"].get("phase") != "Success":
            broken = status["manifests"]
        else:
            broken = next((c for c in status["charts"] if c.get("phase") != "Success"), None)
        if broken is not None:
            status.update(
                phase="Failed", reason=broken.get("reason", ""), message=broken.get("message", "")
            )
        elif last_error:
            status.update(phase="Failed", reason="Unknown", message=last_error)
        elif len(status["charts"]) == len(self.charts):
            status["phase"] = "Success"
        self._patch(_go_json(status))

    def _patch(self, annotation: str) -> None:
        namespace, name = naming.DEPLOY_CONFIGMAP
        body = {
            "metadata": {
                "name": name,
                "annotations": {naming.DEPLOY_STATUS_ANNOTATION: annotation},
            }
        }
        try:
            self.core.create_namespaced_config_map(namespace, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            self.core.patch_namespaced_config_map(
                name, namespace, body, _content_type="application/merge-patch+json"
            )

    def annotation(self) -> dict[str, Any]:
        """The annotation as the backend reads it (for assertions)."""
        namespace, name = naming.DEPLOY_CONFIGMAP
        configmap = self.core.read_namespaced_config_map(name, namespace)
        return json.loads(configmap.metadata.annotations[naming.DEPLOY_STATUS_ANNOTATION])


def _hash(chart: Mapping[str, Any]) -> str:
    # deploy.go getHashedConfig: md5 of the chart entry's JSON.
    return hashlib.md5(
        json.dumps(chart, sort_keys=True).encode(), usedforsecurity=False
    ).hexdigest()
