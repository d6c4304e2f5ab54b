"""Running `helm` for the vCluster chart: exact argument lists, no shell, explicit timeouts, and
Helm's errors turned into messages a person can act on.

The process runner is injectable so tests can assert the exact command and values file without a
cluster; production uses `run_process`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from demos.backends.base import BackendError
from demos.backends.vcluster.config import VClusterSettings

# Extra seconds the process gets beyond Helm's own --timeout before it is killed.
PROCESS_GRACE_SECONDS = 30


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    def __call__(
        self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
    ) -> ProcessResult: ...


def run_process(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
) -> ProcessResult:
    """Run `argv` (never through a shell) and capture its output; `env` adds variables."""
    try:
        completed = subprocess.run(  # noqa: S603 - argv is a list built by this module
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **env} if env else None,
        )
    except FileNotFoundError:
        raise BackendError(
            f"`{argv[0]}` was not found. Run scripts/get-tools, or set VCLUSTER_HELM_BIN "
            "(VCLUSTER_CLI for restores) to the program's path.",
            transient=False,
        ) from None
    except PermissionError:
        raise BackendError(f"`{argv[0]}` cannot be executed (permission denied).") from None
    except subprocess.TimeoutExpired as exc:
        raise BackendError(
            f"`{os.path.basename(argv[0])} {argv[1]}` did not finish within {int(timeout)} "
            "seconds; it will be retried.",
            detail=_text(exc.stderr) or _text(exc.stdout),
            transient=True,
        ) from None
    return ProcessResult(completed.returncode, completed.stdout, completed.stderr)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


# (fragment of Helm's error output, transient?, headline). First match wins.
_HELM_ERRORS: tuple[tuple[str, bool, str], ...] = (
    (
        "another operation (install/upgrade/rollback) is in progress",
        True,
        "Another Helm operation on this demo is still running; it will be retried.",
    ),
    ("kubernetes cluster unreachable", True, "The host cluster cannot be reached right now."),
    ("connection refused", True, "The host cluster or chart repository refused the connection."),
    ("i/o timeout", True, "The host cluster or chart repository did not answer in time."),
    ("context deadline exceeded", True, "Helm timed out talking to the host cluster."),
    ("tls handshake timeout", True, "Helm timed out talking to the host cluster."),
    ("no such host", True, "A host name could not be resolved (chart repository or cluster)."),
    ("toomanyrequests", True, "The chart registry is rate limiting downloads."),
    ("failed to fetch", True, "The vCluster chart could not be downloaded."),
    ("looks like", True, "The vCluster chart repository could not be reached."),
    ("internal error", True, "The host cluster's API server reported an internal error."),
    (
        "values don't meet the specifications of the schema",
        False,
        "The vCluster chart rejected this demo's vcluster.yaml.",
    ),
    ("execution error at", False, "The vCluster chart refused this demo's vcluster.yaml."),
    ("exceeded quota", False, "The host namespace's resource quota refused the vCluster."),
    ("is forbidden", False, "The portal's service account is not allowed to install vClusters."),
    ("forbidden:", False, "The portal's service account is not allowed to install vClusters."),
    (
        "invalid ownership metadata",
        False,
        "Objects of another Helm release are in the way of this vCluster.",
    ),
)


def describe_failure(
    action: str, result: ProcessResult, hint: str = "", program: str = "helm"
) -> BackendError:
    """A readable BackendError for a failed `<program> <action>`; its output goes in detail."""
    output = (result.stderr or result.stdout).strip()
    lowered = output.lower()
    last_line = output.splitlines()[-1] if output else f"exit code {result.returncode}"
    if "not found" in lowered and ("chart" in lowered or "version" in lowered):
        return BackendError(
            f"Helm could not find the vCluster chart: {last_line} {hint}".strip(),
            detail=output,
            transient=False,
        )
    for fragment, transient, headline in _HELM_ERRORS:
        if fragment in lowered:
            return BackendError(
                f"{headline} ({program} {action}: {last_line})", detail=output, transient=transient
            )
    return BackendError(f"{program} {action} failed: {last_line}", detail=output, transient=False)


class Helm:
    """The Helm commands the backend runs, for one configuration."""

    def __init__(self, cfg: VClusterSettings, runner: Runner = run_process) -> None:
        self.cfg = cfg
        self.runner = runner

    def _cluster_flags(self) -> list[str]:
        flags: list[str] = []
        if self.cfg.kubeconfig:
            flags += ["--kubeconfig", self.cfg.kubeconfig]
        if self.cfg.context:
            flags += ["--kube-context", self.cfg.context]
        return flags

    def _chart_flags(self) -> list[str]:
        repo = self.cfg.chart_repo.rstrip("/")
        if repo.startswith("oci://"):
            return [f"{repo}/{self.cfg.chart_name}"]
        return [self.cfg.chart_name, "--repo", repo]

    def upgrade_install_argv(self, name: str, namespace: str, values_path: str) -> list[str]:
        return [
            self.cfg.helm_bin,
            "upgrade",
            "--install",
            name,
            *self._chart_flags(),
            "--version",
            self.cfg.chart_version,
            "--namespace",
            namespace,
            "--values",
            values_path,
            "--timeout",
            f"{self.cfg.helm_timeout_seconds}s",
            *self._cluster_flags(),
        ]

    def uninstall_argv(self, name: str, namespace: str) -> list[str]:
        return [
            self.cfg.helm_bin,
            "uninstall",
            name,
            "--namespace",
            namespace,
            "--timeout",
            f"{self.cfg.helm_timeout_seconds}s",
            *self._cluster_flags(),
        ]

    def _run(self, argv: list[str]) -> ProcessResult:
        return self.runner(argv, self.cfg.helm_timeout_seconds + PROCESS_GRACE_SECONDS)

    def upgrade_install(self, name: str, namespace: str, values_yaml: str) -> None:
        """Install or upgrade release `name` of the vCluster chart with `values_yaml`."""
        # A private temporary file: chart values may hold demo passwords.
        handle, path = tempfile.mkstemp(prefix=f"vcluster-{name}-", suffix=".yaml")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(values_yaml)
            result = self._run(self.upgrade_install_argv(name, namespace, path))
        finally:
            os.unlink(path)
        if result.returncode != 0:
            raise describe_failure(
                "upgrade --install",
                result,
                hint=f"(VCLUSTER_CHART_REPO={self.cfg.chart_repo}, "
                f"VCLUSTER_CHART_VERSION={self.cfg.chart_version})",
            )

    def uninstall(self, name: str, namespace: str) -> None:
        """Uninstall release `name`; a release that is already gone is fine."""
        result = self._run(self.uninstall_argv(name, namespace))
        output = (result.stderr + result.stdout).lower()
        if result.returncode != 0 and "not found" not in output:
            raise describe_failure("uninstall", result)
