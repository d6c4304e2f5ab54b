"""The parts of `make cluster-test` that need no cluster, run by `make test`.

The real-cluster suite cannot run here (no Docker), so what it is made of is checked instead:
the worker's access picked from the real rendered overlay, the worker kubeconfig loaded by the
real `kubernetes` client, the chart repository index consumed by real `helm` over HTTP, the
snapshot URL decoded by upstream's rules, the settings environment read by the real settings
module, the leftover check, and the script itself (bash syntax, shellcheck, wiring).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kubernetes import client, config

from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.values import example_spec, render_values
from tests.cluster import harness

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster-test"
HELM = ROOT / ".tools" / "bin" / "helm"
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"

needs_helm = pytest.mark.skipif(not HELM.is_file(), reason="run scripts/get-tools for helm")
needs_kubectl = pytest.mark.skipif(
    not KUBECTL.is_file(), reason="run scripts/get-tools for kubectl"
)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


@functools.cache
def rendered_dev_overlay() -> list[dict[str, Any]]:
    result = run([str(KUBECTL), "kustomize", str(ROOT / "k8s" / "overlays" / "dev")])
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


# --- The worker's access ----------------------------------------------------------------------


@needs_kubectl
class TestWorkerAccess:
    def test_takes_identity_rights_and_policies_and_nothing_that_runs(self) -> None:
        rendered = rendered_dev_overlay()
        picked = harness.worker_access_objects(rendered)
        kinds = [d["kind"] for d in picked]
        assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= set(kinds)
        assert not {"Deployment", "StatefulSet", "Job", "Service", "Secret", "ConfigMap"} & set(
            kinds
        ), "the portal's workloads need its image; the suite does not build it"
        # Whatever RBAC and admission the overlay renders (it is being split into namespaced
        # and cluster-wide parts), all of it is applied, none is dropped.
        for kind in harness.WORKER_ACCESS_KINDS:
            assert kinds.count(kind) == sum(1 for d in rendered if d["kind"] == kind), kind

    def test_apply_order_creates_before_it_refers(self) -> None:
        kinds = [d["kind"] for d in harness.worker_access_objects(rendered_dev_overlay())]
        assert kinds.index("Namespace") < kinds.index("ServiceAccount")
        assert kinds.index("ClusterRole") < kinds.index("ClusterRoleBinding")
        if "ValidatingAdmissionPolicyBinding" in kinds:
            assert kinds.index("ValidatingAdmissionPolicy") < kinds.index(
                "ValidatingAdmissionPolicyBinding"
            )

    def test_the_command_filters_stdin(self) -> None:
        rendered = yaml.safe_dump_all(rendered_dev_overlay())
        result = run(
            [sys.executable, "-m", "tests.cluster.harness", "worker-access"],
            input=rendered,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        names = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(result.stdout)}
        assert ("ServiceAccount", "portal-backend") in names


def test_refuses_an_overlay_without_the_worker_or_its_binding() -> None:
    account = {"kind": "ServiceAccount", "metadata": {"name": "portal-backend"}}
    role = {"kind": "ClusterRole", "metadata": {"name": "demo-portal-backend"}}
    binding = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "demo-portal-backend"},
        "subjects": [{"kind": "ServiceAccount", "name": "portal", "namespace": "demo-portal"}],
    }
    with pytest.raises(harness.HarnessError, match="no ServiceAccount portal-backend"):
        harness.worker_access_objects([role])
    with pytest.raises(harness.HarnessError, match="Nothing in the rendered overlay binds"):
        harness.worker_access_objects([account, role, binding, None])


# --- The worker's kubeconfig ------------------------------------------------------------------

ADMIN = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "kind-demos",
    "contexts": [
        {"name": "kind-demos", "context": {"cluster": "kind-demos", "user": "kind-demos"}},
        {"name": "other", "context": {"cluster": "other", "user": "other"}},
    ],
    "clusters": [
        {
            "name": "kind-demos",
            "cluster": {
                "server": "https://127.0.0.1:40123",
                "certificate-authority-data": base64.b64encode(b"not a real CA").decode(),
            },
        },
        {"name": "other", "cluster": {"server": "https://10.0.0.1:6443"}},
    ],
    "users": [
        {
            "name": "kind-demos",
            "user": {"client-certificate-data": "QUJD", "client-key-data": "REVG"},
        }
    ],
}


def test_admin_cluster_follows_the_context() -> None:
    assert harness.admin_cluster(ADMIN)["server"] == "https://127.0.0.1:40123"
    assert harness.admin_cluster(ADMIN, "other")["server"] == "https://10.0.0.1:6443"
    with pytest.raises(harness.HarnessError, match="'missing' is not in the kubeconfig"):
        harness.admin_cluster(ADMIN, "missing")


def test_worker_kubeconfig_carries_the_token_and_no_admin_credential() -> None:
    kubeconfig = harness.worker_kubeconfig(harness.admin_cluster(ADMIN), "tok.en-123\n")
    assert "client-certificate-data" not in json.dumps(kubeconfig)
    assert "client-key-data" not in json.dumps(kubeconfig)
    # The real client reads it as a bearer token for the admin kubeconfig's server.
    configuration = client.Configuration()
    config.load_kube_config_from_dict(kubeconfig, client_configuration=configuration)
    assert configuration.host == "https://127.0.0.1:40123"
    assert configuration.api_key == {"BearerToken": "Bearer tok.en-123"}
    assert configuration.cert_file is None
    with open(configuration.ssl_ca_cert, "rb") as ca:
        assert ca.read() == b"not a real CA"


@pytest.mark.parametrize("token", ["", "  \n", "two words"])
def test_worker_kubeconfig_refuses_a_bad_token(token: str) -> None:
    with pytest.raises(harness.HarnessError):
        harness.worker_kubeconfig({"server": "https://x"}, token)


def test_worker_kubeconfig_command(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text(yaml.safe_dump(ADMIN))
    (tmp_path / "token").write_text("abc\n")
    result = run(
        [
            sys.executable,
            "-m",
            "tests.cluster.harness",
            "worker-kubeconfig",
            "--admin-kubeconfig",
            str(tmp_path / "admin"),
            "--token-file",
            str(tmp_path / "token"),
        ],
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    loaded = yaml.safe_load(result.stdout)
    assert loaded["users"][0]["user"] == {"token": "abc"}


# --- The chart repository ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged_charts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HELM.is_file():
        pytest.skip("run scripts/get-tools for helm")
    folder = tmp_path_factory.mktemp("charts")
    for chart in sorted((ROOT / "k8s" / "charts").iterdir()):
        if (chart / "Chart.yaml").is_file():
            result = run([str(HELM), "package", str(chart), "--destination", str(folder)])
            assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture
def served(packaged_charts: Path) -> Iterator[str]:
    """The packages and their index over plain HTTP, as the in-cluster nginx serves them."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(packaged_charts)
    )
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    (packaged_charts / "index.yaml").write_text(
        harness.chart_index(sorted(packaged_charts.glob("*.tgz")), url)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()


def test_chart_index_lists_every_sample_chart_with_its_digest(packaged_charts: Path) -> None:
    packages = sorted(packaged_charts.glob("*.tgz"))
    index = yaml.safe_load(harness.chart_index(packages, "http://charts.test.svc/"))
    charts = {p.name for p in (ROOT / "k8s" / "charts").iterdir() if (p / "Chart.yaml").is_file()}
    assert set(index["entries"]) == charts
    for package in packages:
        name = package.name.rsplit("-", 1)[0]
        (entry,) = index["entries"][name]
        assert entry["urls"] == [f"http://charts.test.svc/{package.name}"]
        assert entry["digest"] == hashlib.sha256(package.read_bytes()).hexdigest()
        assert package.name == f"{entry['name']}-{entry['version']}.tgz"


def test_helm_installs_from_the_index_as_vclusters_deploy_controller_does(
    served: str, tmp_path: Path
) -> None:
    # vCluster runs helm with --repo <url> --version <v>: the same lookup through the index.
    result = run(
        [
            str(HELM),
            "template",
            "shop",
            "webshop",
            "--repo",
            served,
            "--version",
            "0.1.0",
            "--set",
            "host=demo.example.test",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "demo.example.test" in result.stdout
    pulled = run([str(HELM), "pull", "webshop-db", "--repo", served, "-d", str(tmp_path)])
    assert pulled.returncode == 0, pulled.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["webshop-db-0.1.0.tgz"]


def test_index_command_refuses_what_a_configmap_cannot_hold(tmp_path: Path) -> None:
    chart = tmp_path / "big"
    (chart / "files").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: big\nversion: 1.0.0\n")
    (chart / "files" / "blob").write_bytes(os.urandom(harness.CONFIGMAP_LIMIT_BYTES))
    with tarfile.open(tmp_path / "big-1.0.0.tgz", "w:gz") as archive:
        archive.add(chart, arcname="big")
    result = run(
        [sys.executable, "-m", "tests.cluster.harness", "index", str(tmp_path), "http://x"],
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "more than a ConfigMap holds" in result.stderr


def test_index_refuses_a_file_that_is_no_chart(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "junk-1.tgz", "w:gz") as archive:
        archive.add(Path(__file__), arcname="junk/readme.txt")
    with pytest.raises(harness.HarnessError, match="not a chart package"):
        harness.chart_index([tmp_path / "junk-1.tgz"], "http://x")


# --- Archives in MinIO ------------------------------------------------------------------------


def decode_as_upstream(url: str) -> dict[str, Any]:
    """S3 options as vCluster v0.36.1 reads them, written from upstream's rules independently:
    pkg/snapshot/options/options.go (`PopulateStructFromMap`: base64 via StdEncoding after
    spaces become "+", `strconv.ParseBool`) over the `url` tags of `S3Options` in
    vendor/github.com/loft-sh/api/v4/pkg/snapshot/options.go."""
    tags = {
        "skip-client-credentials": "bool",
        "access-key-id": "base64",
        "secret-access-key": "base64",
        "session-token": "base64",
        "region": "str",
        "profile": "str",
        "url": "base64",
        "public-url": "base64",
        "force-path-style": "bool",
        "insecure-skip-tls-verify": "bool",
    }
    parts = urlsplit(url)
    options: dict[str, Any] = {"bucket": parts.hostname, "key": parts.path.lstrip("/")}
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        assert key in tags, f"upstream (strict) refuses unknown option {key}"
        value = values[0]
        if tags[key] == "base64":
            value = base64.b64decode(value.replace(" ", "+").strip(), validate=True).decode()
            options[key] = value.strip()
        elif tags[key] == "bool":
            options[key] = {"1": True, "t": True, "true": True, "0": False, "false": False}[
                value.strip().lower()
            ]
        else:
            options[key] = value.strip()
    return options


@pytest.mark.parametrize("secret", ["0123456789abcdef", "needs+padding/and=?", "ab>>?"])
def test_snapshot_url_decodes_with_upstreams_rules(secret: str) -> None:
    endpoint = "http://minio.demo-portal-test.svc.cluster.local:9000"
    url = harness.snapshot_url("archives", endpoint, "test-user", secret)
    filled = url.format(name="demo-abc", date="20260301-120000")
    assert decode_as_upstream(filled) == {
        "bucket": "archives",
        "key": "demo-abc-20260301-120000.tar.gz",
        "region": "us-east-1",
        "force-path-style": True,
        "url": endpoint,
        "access-key-id": "test-user",
        "secret-access-key": secret,
    }


def test_snapshot_url_is_a_valid_portal_setting() -> None:
    url = harness.snapshot_url("archives", "http://minio:9000", "u", "p")
    assert VClusterSettings(snapshot_url=url).problems() == []
    with pytest.raises(harness.HarnessError):
        harness.snapshot_url("archives", "minio:9000", "u", "p")


# --- The portal's settings under test ---------------------------------------------------------


def environment(https_port: int = 8443) -> dict[str, str]:
    return harness.settings_environment(
        worker_kubeconfig_path="/srv/portal/worker.kubeconfig",
        base_domain="127.0.0.1.nip.io",
        https_port=https_port,
        snapshot_url=harness.snapshot_url("archives", "http://minio:9000", "u", "p"),
        vcluster_cli="/usr/local/bin/vcluster",
        helm_bin="/usr/local/bin/helm",
    )


def test_settings_environment_is_read_by_the_real_settings_module() -> None:
    program = (
        "import json, django; django.setup()\n"
        "from dataclasses import asdict\n"
        "from demos.backends.vcluster.config import VClusterSettings\n"
        "print(json.dumps(asdict(VClusterSettings.from_django())))\n"
    )
    env = {**os.environ, **environment(), "DJANGO_SETTINGS_MODULE": "portal.settings_test"}
    result = run([sys.executable, "-c", program], cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    cfg = json.loads(result.stdout.strip().splitlines()[-1])
    assert cfg["kubeconfig"] == "/srv/portal/worker.kubeconfig"
    assert cfg["in_cluster"] is False
    assert cfg["api_server"] == "https://{name}-api.{base_domain}:8443"
    assert cfg["api_ingress_host"] == "{name}-api.{base_domain}"
    assert cfg["http_check_verify_tls"] is False
    assert cfg["network_policy"] is False
    assert cfg["vcluster_cli"] == "/usr/local/bin/vcluster"
    assert cfg["portal_instance"] == "cluster-test"


def test_the_vcluster_certificate_covers_the_host_the_suite_connects_to() -> None:
    env = environment()
    cfg = VClusterSettings(
        base_domain=env["DEMO_BASE_DOMAIN"],
        api_server=env["VCLUSTER_API_SERVER"],
        api_ingress_host=env["VCLUSTER_API_INGRESS_HOST"],
    )
    values = render_values(example_spec("demo-abc"), cfg)
    sans = values["controlPlane"]["proxy"]["extraSANs"]
    host = urlsplit(cfg.fill(cfg.api_server, name="demo-abc", namespace="vcluster-demo-abc"))
    assert host.hostname == "demo-abc-api.127.0.0.1.nip.io"
    assert host.hostname in sans


def test_standard_https_port_leaves_urls_without_a_port() -> None:
    assert environment(443)["VCLUSTER_API_SERVER"] == "https://{name}-api.{base_domain}"
    assert harness.entry_url("a.b", 443) == "https://a.b/"
    assert harness.entry_url("a.b", 8443) == "https://a.b:8443/"
    with pytest.raises(harness.HarnessError):
        environment(0)


# --- Nothing left behind ----------------------------------------------------------------------


def _named(name: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, **extra}


def test_leftovers_are_empty_after_a_clean_delete() -> None:
    assert (
        harness.leftovers(
            name="demo-abc",
            namespace="vcluster-demo-abc",
            namespaces=[_named("default"), _named("vcluster-demo-xyz")],
            cluster_roles=[_named("vc-demo-xyz-v-vcluster-demo-xyz"), _named("admin")],
            cluster_role_bindings=[_named("vc-demo-abcd-v-vcluster-demo-abcd")],
            persistent_volumes=[
                _named(
                    "pvc-1",
                    spec={"claimRef": {"namespace": "vcluster-demo-xyz", "name": "data-xyz-0"}},
                    status={"phase": "Bound"},
                )
            ],
        )
        == []
    )


def test_leftovers_name_each_thing_left() -> None:
    found = harness.leftovers(
        name="demo-abc",
        namespace="vcluster-demo-abc",
        namespaces=[_named("vcluster-demo-abc")],
        cluster_roles=[_named("vc-demo-abc-v-vcluster-demo-abc")],
        cluster_role_bindings=[_named("vc-demo-abc-v-vcluster-demo-abc")],
        persistent_volumes=[
            _named(
                "pvc-9",
                spec={"claimRef": {"namespace": "vcluster-demo-abc", "name": "data-demo-abc-0"}},
                status={"phase": "Released"},
            )
        ],
    )
    assert found == [
        "namespace vcluster-demo-abc",
        "ClusterRole vc-demo-abc-v-vcluster-demo-abc",
        "ClusterRoleBinding vc-demo-abc-v-vcluster-demo-abc",
        "PersistentVolume pvc-9 (Released) of claim vcluster-demo-abc/data-demo-abc-0",
    ]


# --- The script and its wiring ----------------------------------------------------------------


def test_script_is_valid_bash() -> None:
    result = run(["bash", "-n", str(SCRIPT)])
    assert result.returncode == 0, result.stderr
    assert os.access(SCRIPT, os.X_OK), "scripts/cluster-test must be executable"


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="apt-get install shellcheck")
def test_script_passes_shellcheck() -> None:
    result = run(["shellcheck", "-x", str(SCRIPT)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_script_calls_only_harness_commands_that_exist() -> None:
    used = set(re.findall(r"^\s*(?:.*\|\s*|.*<\(\s*)?harness ([a-z-]+)", SCRIPT.read_text(), re.M))
    used |= set(re.findall(r"\$\(harness ([a-z-]+)", SCRIPT.read_text()))
    result = run([sys.executable, "-m", "tests.cluster.harness", "--help"], cwd=ROOT)
    known = set(re.search(r"\{([a-z,-]+)\}", result.stdout).group(1).split(","))  # type: ignore[union-attr]
    assert used, "the script uses the harness"
    assert used <= known, used - known


def test_script_cleans_up_and_runs_the_cluster_suite() -> None:
    text = SCRIPT.read_text()
    assert "trap cleanup EXIT" in text
    assert "KEEP_CLUSTER:-0" in text
    assert re.search(r'"\$pytest" tests/cluster -m cluster', text)
    assert re.search(r'ingress_nginx_chart_version="\d+\.\d+\.\d+"', text), "pinned"
    assert re.search(r"minio:RELEASE\.\d{4}-", text), "pinned MinIO image"
    assert "enable-ssl-passthrough=true" in text


def test_make_cluster_test_runs_the_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M)
    assert phony
    assert "cluster-test" in phony.group(1).split()
    assert re.search(r"^cluster-test:.*\n\t@?scripts/cluster-test$", makefile, re.M)


def test_check_domain_explains_a_name_that_does_not_resolve() -> None:
    result = run(
        [sys.executable, "-m", "tests.cluster.harness", "check-domain", "example.invalid"],
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "DEMO_TEST_BASE_DOMAIN" in result.stderr


def test_the_cluster_suite_is_skipped_without_a_cluster_and_says_how_to_run_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEMO_TEST_KUBECONFIG"}
    result = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/cluster/test_vcluster_cluster.py",
            "-m",
            "cluster",
            "-rs",
            "-q",
        ],
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 skipped" in result.stdout
    assert "make cluster-test" in result.stdout
