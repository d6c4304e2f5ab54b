"""Snapshots: the storage options parsed from VCLUSTER_SNAPSHOT_URL as vCluster 0.36.1 parses
them, refused at start-up when vCluster would refuse them, the request pair the backend creates
and follows through upstream's controller (snapshot_controller.py), and delete releasing the
controller's finalizer so the namespace can go.

Upstream references are to loft-sh/vcluster at tag v0.36.1 (commit 0c3bb166):
- `Parse` and `Validate`: pkg/snapshot/options.go:46-105, 127-153;
- `PopulateStructFromMap`: pkg/snapshot/options/options.go:17-125 (url tags, `base64` option,
  first value only, TrimSpace of strings, strconv.ParseBool for booleans without trimming,
  unknown keys refused when strict);
- the structs and their JSON: vendor/github.com/loft-sh/api/v4/pkg/snapshot/options.go:3-126
  (`Options` sections have no omitempty, their fields do; `GetURL`, :22-41);
- the Secret and ConfigMap: vendor/.../snapshot/resources.go:26-98, pkg/snapshot/request.go:24-66.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from django.core.exceptions import ImproperlyConfigured
from host_player import HostPlayer
from kmock_shim import EmulatorThread
from kube_support import CLUSTER, NAMESPACE, BackendFactory
from snapshot_controller import FINALIZER, SnapshotController, unmarshal_options

from demos.backends.base import BackendError, SnapshotPhase
from demos.backends.vcluster import snapshots
from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.config import VClusterSettings
from demos.checks import check_vcluster_settings

EMPTY = {"s3": {}, "container": {}, "oci": {}, "azure": {}, "file": {}}


def b64(value: str) -> str:
    """A value for a base64-tagged option, percent-encoded so `+`, `/` and `=` survive."""
    return quote(base64.b64encode(value.encode()).decode(), safe="")


def options(kind: str, **section: Any) -> dict[str, Any]:
    """`Options` as json.Marshal writes it: every section, only the `kind` one filled."""
    return {"type": kind, **EMPTY, kind: section}


class TestOptionsAsUpstreamParsesThem:
    @pytest.mark.parametrize(
        ("url", "expected", "request_url"),
        [
            (
                "container:///data/snapshots/demo.tar.gz",
                options("container", path="/data/snapshots/demo.tar.gz"),
                "container:///data/snapshots/demo.tar.gz",
            ),
            (
                "s3://demo-archives/demo.tar.gz?region=eu-west-1",
                options("s3", bucket="demo-archives", key="demo.tar.gz", region="eu-west-1"),
                "s3://demo-archives/demo.tar.gz",
            ),
            # An S3-compatible store: booleans are JSON booleans, base64 options decoded.
            (
                "s3://demos/a.tar.gz?region=us-east-1&force-path-style=true"
                f"&url={b64('http://minio.minio:9000')}&access-key-id={b64('minio')}"
                f"&secret-access-key={b64('s3cr3t/+=')}",
                options(
                    "s3",
                    bucket="demos",
                    key="a.tar.gz",
                    **{
                        "access-key-id": "minio",
                        "secret-access-key": "s3cr3t/+=",
                        "region": "us-east-1",
                        "url": "http://minio.minio:9000",
                        "force-path-style": True,
                    },
                ),
                "s3://demos/a.tar.gz",
            ),
            # An unescaped `+` becomes a space in the query; upstream turns it back into `+`.
            (
                "s3://b/k?secret-access-key=Pj4+",
                options("s3", bucket="b", key="k", **{"secret-access-key": ">>>"}),
                "s3://b/k",
            ),
            # Percent-decoding of the key and of values; strings trimmed; ParseBool's spellings;
            # false is left out (omitempty).
            (
                "s3://b/dir%2Fa%20b.tar.gz?region=%20eu-west-1%20&insecure-skip-tls-verify=1"
                "&force-path-style=F&checksum-algorithm=CRC32",
                options(
                    "s3",
                    bucket="b",
                    key="dir/a b.tar.gz",
                    region="eu-west-1",
                    **{"insecure-skip-tls-verify": True, "checksum-algorithm": "CRC32"},
                ),
                "s3://b/dir/a b.tar.gz",
            ),
            # OCI: user and password from the URL (percent-decoded), path.Join cleans the path.
            (
                "oci://robot:s3cr%40t@registry.example.com:5000/archives//demo-1:20260301",
                options(
                    "oci",
                    repository="registry.example.com:5000/archives/demo-1:20260301",
                    username="robot",
                    password="s3cr@t",
                ),
                "oci://registry.example.com:5000/archives/demo-1:20260301",
            ),
            # ... or from the query, where the password is base64.
            (
                f"oci://ghcr.io/acme/archives:1?username=bot&password={b64('tok=en')}"
                "&skip-client-credentials=true",
                options(
                    "oci",
                    repository="ghcr.io/acme/archives:1",
                    username="bot",
                    password="tok=en",
                    **{"skip-client-credentials": True},
                ),
                "oci://ghcr.io/acme/archives:1",
            ),
        ],
    )
    def test_the_json_upstream_would_hold(
        self, url: str, expected: dict[str, Any], request_url: str
    ) -> None:
        assert snapshots.storage_options(url) == expected
        assert list(snapshots.storage_options(url)) == ["type", *EMPTY]  # Go's field order
        assert snapshots.canonical_url(url) == request_url
        assert snapshots.url_problem(url) == ""

    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            # Upstream refuses these.
            ("s3://b/k?force-path-style=yes", "option `force-path-style` must be true or false"),
            # ParseBool gets the value untrimmed.
            ("s3://b/k?force-path-style=true%20", "must be true or false"),
            ("s3://b/k?endpoint=http://minio", "does not know the option(s) `endpoint`"),
            ("oci://ghcr.io/a:1?insecure=true", "does not know the option(s) `insecure`"),
            ("s3://b/k?url=https://minio.example.com", "option `url` must be base64-encoded"),
            ("s3://b/", "the key is missing"),
            ("s3://bucket-only", "the key is missing"),
            ("s3:///key", "the bucket name is missing"),
            ("container://relative/path", "relative paths are not supported"),
            ("oci://", "use oci://registry/repository:tag"),
            ("ftp://x/y", "use one of s3://, oci://, container://"),
            # Upstream would silently ignore these; the portal refuses them.
            ("s3://b/k?region=a&region=b", "option `region` is given 2 times"),
            ("s3://b/k?region=eu;x=1", "separated by `&`, not `;`"),
            ("s3://b/k?region=%zz", "option `region` has an invalid %-escape"),
            ("s3://b/k#part", "#fragment"),
            ("s3://user:pw@b/k", "s3:// takes no user"),
            ("container:///x.tar.gz?compress=1", "container:// takes no options"),
        ],
    )
    def test_what_upstream_would_not_take_is_refused(self, url: str, problem: str) -> None:
        assert problem in snapshots.url_problem(url)
        with pytest.raises(BackendError, match="VCLUSTER_SNAPSHOT_URL") as raised:
            snapshots.storage_options(url)
        assert problem in raised.value.message
        assert not raised.value.transient

    def test_refusals_never_show_credentials(self) -> None:
        url = f"s3://b/k?secret-access-key={b64('hunter2')}&bogus=1"

        with pytest.raises(BackendError) as raised:
            snapshots.storage_options(url)

        assert b64("hunter2") not in raised.value.message
        assert raised.value.message.startswith("The snapshot destination s3://b/k is not usable")

    def test_the_controller_would_accept_the_typed_json_and_not_raw_strings(self) -> None:
        """The typed JSON fits `Options` (json.Unmarshal); what the portal used to write, raw
        query strings, does not (resources.go:120-138)."""
        typed = snapshots.storage_options("s3://b/k?force-path-style=true")

        assert unmarshal_options(json.dumps(typed).encode()) == ""
        raw = {"type": "s3", "s3": {"bucket": "b", "key": "k", "force-path-style": "true"}}
        assert unmarshal_options(json.dumps(raw).encode()) == (
            "json: cannot unmarshal string into Go struct field S3Options.s3.force-path-style "
            "of type bool"
        )


class TestLocationsAndPhases:
    def test_credentials_stay_out_of_locations_and_come_back_from_the_template(self) -> None:
        configured = "oci://robot:s3cret@registry.example.com/archives/{name}:{date}"

        assert snapshots.public_url("oci://robot:s3cret@registry.example.com:5000/a/d:1") == (
            "oci://registry.example.com:5000/a/d:1"
        )
        assert (
            snapshots.with_credentials("oci://registry.example.com/archives/demo-1:1", configured)
            == "oci://robot:s3cret@registry.example.com/archives/demo-1:1"
        )
        assert snapshots.with_credentials("oci://elsewhere.io/x:1", configured) == (
            "oci://elsewhere.io/x:1"
        )

    def test_credential_options_stay_out_of_locations_and_come_back(self) -> None:
        keys = f"access-key-id={b64('minio')}&secret-access-key={b64('s3cr3t')}"
        configured = f"s3://demos/{{name}}.tar.gz?region=us-east-1&{keys}&force-path-style=true"
        filled = configured.format(name="demo-1")

        location = snapshots.public_url(filled)

        assert location == "s3://demos/demo-1.tar.gz?region=us-east-1&force-path-style=true"
        back = snapshots.with_credentials(location, configured)
        assert snapshots.storage_options(back) == snapshots.storage_options(filled)

    @pytest.mark.parametrize(
        ("phase", "expected"),
        [
            ("", SnapshotPhase.RUNNING),
            ("CreatingEtcdBackup", SnapshotPhase.RUNNING),
            ("Completed", SnapshotPhase.COMPLETED),
            ("PartiallyFailed", SnapshotPhase.COMPLETED),
            ("Failed", SnapshotPhase.FAILED),
            ("Canceled", SnapshotPhase.FAILED),
        ],
    )
    def test_phases(self, phase: str, expected: SnapshotPhase) -> None:
        """Upstream's request phases (vendor/.../pkg/snapshot/request.go:9-24)."""
        request = snapshots.SnapshotRequest("r", "container:///x", phase, "", None)

        assert snapshots.progress_phase(request)[0] == expected


class TestRefusedAtStartUp:
    """A bad VCLUSTER_SNAPSHOT_URL stops start-up (from_django, the demos.E002 check), naming
    the variable and the option, not the first archive."""

    def test_a_bad_option_is_named_with_the_variable(self) -> None:
        problems = VClusterSettings(
            snapshot_url="s3://archives/{name}-{date}.tar.gz?region=eu-west-1&force-path-style=yes"
        ).problems()

        assert problems == [
            "VCLUSTER_SNAPSHOT_URL='s3://archives/{name}-{date}.tar.gz' is not usable: option "
            "`force-path-style` must be true or false, not 'yes'."
        ]

    def test_unknown_options_and_credentials(self) -> None:
        [problem] = VClusterSettings(
            snapshot_url=f"s3://archives/{{name}}.tar.gz?access-key-id={b64('AKIA1')}&endpoint=x"
        ).problems()

        assert problem.startswith("VCLUSTER_SNAPSHOT_URL='s3://archives/{name}.tar.gz' is not")
        assert "does not know the option(s) `endpoint` for s3://" in problem
        assert b64("AKIA1") not in problem

    @pytest.mark.parametrize(
        "url",
        [
            "s3://archives/{name}-{date}.tar.gz?region=eu-west-1",
            "oci://robot:s3cret@registry.example.com/archives/{name}:{date}",
            "container:///data/{name}.tar.gz",
        ],
    )
    def test_good_destinations_pass(self, url: str) -> None:
        assert VClusterSettings(snapshot_url=url).problems() == []

    def test_start_up_stops(self, settings: Any) -> None:
        settings.DEMO_BACKEND = "vcluster"
        settings.VCLUSTER_SNAPSHOT_URL = "s3://archives/{name}.tar.gz?force-path-style=on"

        with pytest.raises(ImproperlyConfigured, match="VCLUSTER_SNAPSHOT_URL"):
            VClusterSettings.from_django()
        [error] = check_vcluster_settings(None)
        assert error.id == "demos.E002"
        assert "option `force-path-style` must be true or false" in error.msg


def start(backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]) -> None:
    """Apply, and play a control plane that came up."""
    backend.apply(spec)
    player.run_control_plane(CLUSTER)


@pytest.fixture
def controller(host: EmulatorThread) -> SnapshotController:
    return SnapshotController(host.api_client(), CLUSTER)


@pytest.mark.kube
class TestSnapshot:
    LOCATION = f"container:///data/snapshots/{CLUSTER}.tar.gz"

    def test_it_creates_the_request_pair_once_and_follows_its_phase(
        self,
        make_backend: BackendFactory,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
        controller: SnapshotController,
    ) -> None:
        backend = make_backend(clock=lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        start(backend, player, spec)

        progress = backend.snapshot(CLUSTER, self.LOCATION)
        assert (progress.phase, progress.location) == (SnapshotPhase.RUNNING, self.LOCATION)

        [request] = player.snapshot_requests(CLUSTER)
        name = request.metadata.name
        assert name.startswith(f"{CLUSTER}-snapshot-request-")
        labels = {
            "vcluster.loft.sh/snapshot-request": "",
            "vcluster.loft.sh/vcluster-name": CLUSTER,
            "vcluster.loft.sh/vcluster-namespace": NAMESPACE,
        }
        assert request.metadata.labels == labels
        assert json.loads(request.data["snapshotRequest"]) == {
            "metadata": {"name": name, "creationTimestamp": "2026-03-01T12:00:00Z"},
            "spec": {"url": self.LOCATION},
            "status": {"error": {}},
        }
        secret = host.objects["v1/secrets", NAMESPACE, name]
        assert secret["metadata"]["labels"] == labels
        assert json.loads(base64.b64decode(secret["data"]["snapshotOptions"])) == options(
            "container", path=f"/data/snapshots/{CLUSTER}.tar.gz"
        )

        assert backend.snapshot(CLUSTER, self.LOCATION).phase == SnapshotPhase.RUNNING
        assert len(player.snapshot_requests(CLUSTER)) == 1

        controller.step()  # the finalizer
        controller.step()  # CreatingEtcdBackup
        assert player.snapshot_requests(CLUSTER)[0].metadata.finalizers == [FINALIZER]
        progress = backend.snapshot(CLUSTER, self.LOCATION)
        assert (progress.phase, progress.message) == (
            SnapshotPhase.RUNNING,
            "Saving the cluster's state.",
        )

        controller.run()
        assert backend.snapshot(CLUSTER, self.LOCATION).phase == SnapshotPhase.COMPLETED
        [request] = player.snapshot_requests(CLUSTER)
        assert not request.metadata.finalizers
        assert not host.exists("v1/secrets", NAMESPACE, name)

    def test_typed_s3_options_complete_where_raw_strings_failed(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
        controller: SnapshotController,
    ) -> None:
        """`force-path-style=true` (an S3-compatible store) must reach the controller as a
        JSON boolean, or its json.Unmarshal fails the request (controller.go:292-296)."""
        start(backend, player, spec)
        location = f"s3://demo-archives/{CLUSTER}.tar.gz?region=eu-west-1&force-path-style=true"

        backend.snapshot(CLUSTER, location)
        [request] = player.snapshot_requests(CLUSTER)
        secret = host.objects["v1/secrets", NAMESPACE, request.metadata.name]
        assert json.loads(base64.b64decode(secret["data"]["snapshotOptions"]))["s3"] == {
            "bucket": "demo-archives",
            "key": f"{CLUSTER}.tar.gz",
            "region": "eu-west-1",
            "force-path-style": True,
        }
        assert json.loads(request.data["snapshotRequest"])["spec"]["url"] == (
            f"s3://demo-archives/{CLUSTER}.tar.gz"
        )
        controller.run()

        assert backend.snapshot(CLUSTER, location).phase == SnapshotPhase.COMPLETED

    def test_credentials_reach_the_request_but_not_the_stored_location(
        self,
        make_backend: BackendFactory,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
    ) -> None:
        backend = make_backend(
            snapshot_url=f"s3://demos/{{name}}.tar.gz?access-key-id={b64('minio')}"
            f"&secret-access-key={b64('s3cr3t')}&force-path-style=true"
        )
        start(backend, player, spec)

        location = backend.snapshot_location(CLUSTER)
        backend.snapshot(CLUSTER, location)

        assert location == f"s3://demos/{CLUSTER}.tar.gz?force-path-style=true"
        [request] = player.snapshot_requests(CLUSTER)
        secret = host.objects["v1/secrets", NAMESPACE, request.metadata.name]
        s3 = json.loads(base64.b64decode(secret["data"]["snapshotOptions"]))["s3"]
        assert (s3["access-key-id"], s3["secret-access-key"]) == ("minio", "s3cr3t")

    def test_a_failed_snapshot_is_reported_and_cleared_for_a_retry(
        self,
        backend: VClusterBackend,
        player: HostPlayer,
        spec: dict[str, Any],
        controller: SnapshotController,
    ) -> None:
        start(backend, player, spec)
        backend.snapshot(CLUSTER, self.LOCATION)
        controller.storage_error = "no space left on device"
        controller.run()

        progress = backend.snapshot(CLUSTER, self.LOCATION)

        assert progress.phase == SnapshotPhase.FAILED
        assert progress.message.endswith("failed to run snapshot client: no space left on device")
        assert player.snapshot_requests(CLUSTER) == []
        assert backend.snapshot(CLUSTER, self.LOCATION).phase == SnapshotPhase.RUNNING
        assert len(player.snapshot_requests(CLUSTER)) == 1

    def test_options_the_controller_cannot_read_fail_the_request_as_upstream(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
        controller: SnapshotController,
    ) -> None:
        """The controller's own refusal of options it cannot unmarshal reaches the demo with
        upstream's whole error chain (controller.go:146-172, 183-187, 292-296)."""
        start(backend, player, spec)
        backend.snapshot(CLUSTER, self.LOCATION)
        [request] = player.snapshot_requests(CLUSTER)
        name = request.metadata.name
        raw = {"type": "s3", "s3": {"bucket": "b", "key": "k", "force-path-style": "true"}}
        player.core.patch_namespaced_secret(
            name,
            NAMESPACE,
            {"data": {"snapshotOptions": base64.b64encode(json.dumps(raw).encode()).decode()}},
            _content_type="application/merge-patch+json",
        )
        controller.run()

        progress = backend.snapshot(CLUSTER, self.LOCATION)

        where = f"{NAMESPACE}/{name}"
        assert (progress.phase, progress.message) == (
            SnapshotPhase.FAILED,
            f"failed to reconcile etcd backup creation for snapshot request {where}: failed to "
            f"unmarshal vcluster snapshot request from ConfigMap {where}: failed to unmarshal "
            "snapshot options: json: cannot unmarshal string into Go struct field "
            "S3Options.s3.force-path-style of type bool",
        )

    def test_a_paused_cluster_cannot_take_a_snapshot(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        start(backend, player, spec)
        backend.pause(CLUSTER)

        with pytest.raises(BackendError, match="Resume the demo first"):
            backend.snapshot(CLUSTER, self.LOCATION)


@pytest.mark.kube
class TestDeleteDuringASnapshot:
    """The snapshot controller's finalizer stays on an unfinished request once the vCluster is
    uninstalled (only the controller removes it, controllerbase.go:86-124): delete must take it
    off, or the namespace stays Terminating for ever."""

    LOCATION = f"container:///data/snapshots/{CLUSTER}.tar.gz"

    def deleted(self, backend: VClusterBackend, rounds: int = 6) -> bool:
        return any(backend.delete(CLUSTER) for _ in range(rounds))

    def snapshot_in_progress(
        self,
        backend: VClusterBackend,
        player: HostPlayer,
        spec: dict[str, Any],
        controller: SnapshotController,
    ) -> str:
        start(backend, player, spec)
        backend.snapshot(CLUSTER, self.LOCATION)
        controller.step()  # the finalizer
        controller.step()  # CreatingEtcdBackup
        [request] = player.snapshot_requests(CLUSTER)
        assert request.metadata.finalizers == [FINALIZER]
        return str(request.metadata.name)

    def test_the_namespace_goes_once_the_finalizer_is_released(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
        controller: SnapshotController,
    ) -> None:
        self.snapshot_in_progress(backend, player, spec, controller)

        assert self.deleted(backend)
        assert not controller.running()
        assert [key for key, obj in host.objects.items() if not obj.deleted] == []

    def test_only_this_demos_requests_and_only_upstreams_finalizer(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
        controller: SnapshotController,
    ) -> None:
        request = self.snapshot_in_progress(backend, player, spec, controller)
        other = "example.com/keep-until-audited"
        merge = "application/merge-patch+json"
        player.core.patch_namespaced_config_map(
            request,
            NAMESPACE,
            {"metadata": {"finalizers": [FINALIZER, other]}},
            _content_type=merge,
        )
        player.core.create_namespaced_config_map(
            NAMESPACE,
            {"metadata": {"name": "audit", "finalizers": [FINALIZER]}, "data": {"a": "b"}},
        )

        assert not self.deleted(backend)

        kept = host.objects["v1/configmaps", NAMESPACE, request]
        assert kept["metadata"]["finalizers"] == [other]
        assert host.objects["v1/configmaps", NAMESPACE, "audit"]["metadata"]["finalizers"] == [
            FINALIZER
        ]
        assert host.objects["v1/namespaces", None, NAMESPACE]["metadata"]["deletionTimestamp"]

        # Their owners let go; then the namespace finishes.
        for name, left in ((request, []), ("audit", [])):
            player.core.patch_namespaced_config_map(
                name, NAMESPACE, {"metadata": {"finalizers": left}}, _content_type=merge
            )
        assert self.deleted(backend)
