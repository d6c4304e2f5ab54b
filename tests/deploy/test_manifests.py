"""The k8s/ tree renders, validates against the Kubernetes schemas, and follows the house rules.

No cluster needed: `kubectl kustomize` renders each overlay and `kubernetes-validate` checks every
object offline against the OpenAPI schemas of the Kubernetes versions below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from demos.backends.vcluster.config import VClusterSettings

from .support import (
    OVERLAYS,
    ROOT,
    TREES,
    config_data,
    containers,
    env_sources,
    find,
    image_name,
    name_of,
    of_kind,
    pod_spec,
    portal_containers,
    render,
    workloads,
)

# The oldest and the newest Kubernetes minor versions still supported upstream, both shipped
# with kubernetes-validate 1.37. Strict schemas reject unknown fields, so a typo such as
# `imagePullPolicy` spelt wrong fails here rather than being dropped silently by the API server.
KUBERNETES_VERSIONS = ("1.35", "1.37")

# Kinds without a namespace that k8s/ renders.
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}

# Where the image expects scratch space (the mount path, not a file this test writes).
SCRATCH = "/tmp"  # noqa: S108

ENTRYPOINT = (ROOT / "docker-entrypoint.sh").read_text()
SETTINGS = (ROOT / "portal" / "settings.py").read_text()
# Read by portal/settings.py too, each named by a field of VClusterSettings.
VCLUSTER_SETTINGS = {variable.name for variable in VClusterSettings.variables()}


@pytest.fixture(params=TREES)
def tree(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return f"overlays/{request.param}"


def test_it_has_the_expected_overlays() -> None:
    assert {"dev", "production"} <= set(OVERLAYS)


class TestRendering:
    def test_it_renders(self, tree: str) -> None:
        objects = render(tree)
        assert objects, f"k8s/{tree} rendered nothing"

    @pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
    def test_every_object_validates_against_the_schemas(self, tree: str, version: str) -> None:
        problems = []
        for obj in render(tree):
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path)
                problems.append(f"{name_of(obj)}: {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{name_of(obj)}: {exc.message}")
        assert not problems, "\n".join(problems)

    def test_names_are_unique(self, tree: str) -> None:
        seen = [
            (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
            for obj in render(tree)
        ]
        assert len(seen) == len(set(seen))

    def test_every_namespaced_object_is_in_the_portal_namespace(self, tree: str) -> None:
        stray = [
            name_of(obj)
            for obj in render(tree)
            if obj["kind"] not in CLUSTER_SCOPED
            and obj["metadata"].get("namespace") != "demo-portal"
        ]
        assert not stray

    def test_cluster_scoped_objects_carry_no_namespace(self, tree: str) -> None:
        # kustomize does not know admission policies are cluster-scoped and would give them the
        # `namespace:` of the kustomization (k8s/cluster-scoped undoes that in every tree).
        placed = [
            name_of(obj)
            for obj in render(tree)
            if obj["kind"] in CLUSTER_SCOPED and "namespace" in obj["metadata"]
        ]
        assert not placed

    def test_no_secret_values_are_committed(self, tree: str) -> None:
        # Secrets are created by the operator (docs/deploying.md); the manifests only refer to them.
        assert not of_kind(render(tree), "Secret")


class TestContainers:
    def test_every_container_has_requests_and_limits(self, tree: str) -> None:
        missing = [
            f"{c.label}: {section}.{resource}"
            for c in containers(render(tree))
            for section in ("requests", "limits")
            for resource in ("cpu", "memory")
            if resource not in c.spec.get("resources", {}).get(section, {})
        ]
        assert not missing

    def test_long_running_containers_have_liveness_and_readiness_probes(self, tree: str) -> None:
        # Init containers cannot have probes, and the migration Job is bounded by its deadline
        # instead (see test_the_migration_job_is_bounded).
        missing = [
            f"{c.label}: {probe}"
            for c in containers(render(tree))
            if c.long_running
            for probe in ("livenessProbe", "readinessProbe")
            if not ({"exec", "httpGet"} & set(c.spec.get(probe, {})))
        ]
        assert not missing

    def test_every_container_runs_as_non_root(self, tree: str) -> None:
        problems = []
        for c in containers(render(tree)):
            pod_context = c.pod.get("securityContext", {})
            context = {**pod_context, **c.spec.get("securityContext", {})}
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{c.label}: runAsNonRoot is not true")
            if context.get("runAsUser", 1) == 0:
                problems.append(f"{c.label}: runAsUser is 0")
        assert not problems, "\n".join(problems)

    def test_every_container_is_locked_down(self, tree: str) -> None:
        problems = []
        for c in containers(render(tree)):
            own = c.spec.get("securityContext", {})
            seccomp = own.get("seccompProfile") or c.pod.get("securityContext", {}).get(
                "seccompProfile"
            )
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{c.label}: allowPrivilegeEscalation is not false")
            if own.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{c.label}: readOnlyRootFilesystem is not true")
            if own.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{c.label}: capabilities do not drop ALL")
            if own.get("capabilities", {}).get("add"):
                problems.append(f"{c.label}: adds capabilities")
            if own.get("privileged"):
                problems.append(f"{c.label}: privileged")
            if (seccomp or {}).get("type") != "RuntimeDefault":
                problems.append(f"{c.label}: seccompProfile is not RuntimeDefault")
        for workload in workloads(render(tree)):
            pod = pod_spec(workload)
            for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
                if pod.get(host_namespace):
                    problems.append(f"{name_of(workload)}: {host_namespace}")
        assert not problems, "\n".join(problems)

    def test_portal_containers_get_a_writable_tmp(self, tree: str) -> None:
        # The root filesystem is read-only; Python, helm and gunicorn still need scratch space.
        for c in portal_containers(render(tree)):
            mounts = {m["mountPath"]: m["name"] for m in c.spec.get("volumeMounts", [])}
            assert SCRATCH in mounts, c.label
            volumes = {v["name"]: v for v in c.pod["volumes"]}
            assert "emptyDir" in volumes[mounts[SCRATCH]], c.label

    def test_third_party_images_are_pinned_to_a_release(self, tree: str) -> None:
        for c in containers(render(tree)):
            if image_name(c.spec["image"]).endswith("demo-portal"):
                continue
            tag = c.spec["image"].rsplit(":", 1)[-1]
            assert re.match(r"\d+\.\d+", tag), f"{c.label}: {c.spec['image']} is not pinned"

    def test_overlays_pin_the_portal_image_tag(self, overlay: str) -> None:
        for c in portal_containers(render(overlay)):
            assert not c.spec["image"].endswith(":latest"), c.label


class TestPortalProcesses:
    def test_each_process_runs_a_command_the_entrypoint_knows(self, tree: str) -> None:
        known = set(re.findall(r"^([a-z-]+)\)$", ENTRYPOINT, flags=re.MULTILINE))
        assert {"web", "worker", "cron", "migrate", "wait-for-migrations"} <= known
        for c in portal_containers(render(tree)):
            assert c.spec["args"][0] in known, c.label

    def test_the_web_serves_on_port_8000_behind_a_service(self, tree: str) -> None:
        objects = render(tree)
        web = find(objects, "Deployment", "portal-web")
        container = pod_spec(web)["containers"][0]
        assert container["args"] == ["web"]
        assert container["ports"] == [{"name": "http", "containerPort": 8000}]
        service = find(objects, "Service", "portal-web")
        assert (
            service["spec"]["selector"].items()
            <= web["spec"]["template"]["metadata"]["labels"].items()
        )
        backend = find(objects, "Ingress", "portal")["spec"]["rules"][0]["http"]["paths"][0]
        assert backend["backend"]["service"]["name"] == "portal-web"

    def test_web_probes_use_healthz_with_an_allowed_host(self, tree: str) -> None:
        objects = render(tree)
        allowed = config_data(objects)["ALLOWED_HOSTS"].split(",")
        container = pod_spec(find(objects, "Deployment", "portal-web"))["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            http = container[probe]["httpGet"]
            # /readyz would fail every web pod at once when cron or the workers are down.
            assert http["path"] == "/healthz", probe
            host = {h["name"]: h["value"] for h in http.get("httpHeaders", [])}.get("Host")
            # Django answers 400 to a Host it does not know, and the kubelet sends the pod's IP.
            assert host in allowed, f"{probe} sends Host {host!r}, not in ALLOWED_HOSTS"

    def test_worker_and_cron_probe_with_the_probe_command(self, tree: str) -> None:
        objects = render(tree)
        for name in ("portal-worker", "portal-cron"):
            container = pod_spec(find(objects, "Deployment", name))["containers"][0]
            for probe in ("livenessProbe", "readinessProbe"):
                command = container[probe]["exec"]["command"]
                assert command[:3] == ["python", "manage.py", "probe"], f"{name} {probe}"
                assert {"--redis", "--database"} & set(command), f"{name} {probe}"

    def test_the_cron_runs_exactly_once(self, tree: str) -> None:
        objects = render(tree)
        cron = find(objects, "Deployment", "portal-cron")
        assert cron["spec"]["replicas"] == 1
        assert cron["spec"]["strategy"] == {"type": "Recreate"}
        scaled = {
            hpa["spec"]["scaleTargetRef"]["name"]
            for hpa in of_kind(objects, "HorizontalPodAutoscaler")
        }
        assert "portal-cron" not in scaled

    def test_the_migration_job_is_bounded(self, tree: str) -> None:
        job = find(render(tree), "Job", "portal-migrate")
        assert pod_spec(job)["containers"][0]["args"] == ["migrate"]
        assert pod_spec(job)["restartPolicy"] == "Never"
        assert 0 < job["spec"]["activeDeadlineSeconds"] <= 3600
        assert job["spec"]["backoffLimit"] <= 5

    def test_long_running_portal_pods_wait_for_migrations(self, tree: str) -> None:
        for workload in workloads(render(tree)):
            if workload["metadata"]["name"] not in {"portal-web", "portal-worker", "portal-cron"}:
                continue
            init = pod_spec(workload)["initContainers"]
            assert [c["args"] for c in init] == [["wait-for-migrations"]], name_of(workload)

    def test_the_web_has_a_disruption_budget(self, tree: str) -> None:
        objects = render(tree)
        budget = find(objects, "PodDisruptionBudget", "portal-web")
        web = find(objects, "Deployment", "portal-web")
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selector.items() <= web["spec"]["template"]["metadata"]["labels"].items()
        assert "maxUnavailable" in budget["spec"] or "minAvailable" in budget["spec"]

    def test_only_the_worker_gets_a_service_account_token(self, tree: str) -> None:
        for workload in workloads(render(tree)):
            pod = pod_spec(workload)
            mounted = pod.get("automountServiceAccountToken", True)
            is_worker = workload["metadata"]["name"] == "portal-worker"
            assert mounted is is_worker, name_of(workload)
            if is_worker:
                assert pod["serviceAccountName"] == "portal-backend"

    def test_settings_come_from_the_configmap_and_the_secret_key_from_a_file(
        self, tree: str
    ) -> None:
        objects = render(tree)
        data = config_data(objects)
        secret_dir = data["SECRET_KEY_FILE"].rsplit("/", 1)[0]
        # The worker seals kubeconfigs and the web unseals them: both read the keys from there.
        assert data["SEALING_KEYS_FILE"].rsplit("/", 1)[0] == secret_dir
        for c in portal_containers(objects):
            refs = [e["configMapRef"]["name"] for e in c.spec["envFrom"]]
            assert refs, c.label
            assert all(r.startswith("portal-config") for r in refs), c.label
            mounts = {m["mountPath"]: m["name"] for m in c.spec["volumeMounts"]}
            volume = {v["name"]: v for v in c.pod["volumes"]}[mounts[secret_dir]]
            assert volume["secret"]["secretName"] == "portal-secrets", c.label
            assert "SECRET_KEY" not in env_sources(c), c.label
            assert "SEALING_KEYS" not in env_sources(c), c.label

    def test_every_configmap_key_is_a_setting_the_portal_reads(self, tree: str) -> None:
        # A renamed setting would otherwise leave a key here that nothing reads.
        for key in config_data(render(tree)):
            name = key.removesuffix("_FILE")
            read = f'"{name}"' in SETTINGS or name in VCLUSTER_SETTINGS
            assert read or f"${{{name}:-" in ENTRYPOINT, key

    def test_the_portal_starts_with_these_settings(self, tree: str, tmp_path: Path) -> None:
        # Every value parses (booleans, numbers, lists) and the deploy checks find no error.
        secret_key = tmp_path / "SECRET_KEY"
        secret_key.write_text("x" * 64)
        sealing_keys = tmp_path / "SEALING_KEYS"
        sealing_keys.write_text("ZGVwbG95LWNoZWNrLW9ubHktc2VhbGluZy1rZXktMzI=\n")
        env = {
            "PATH": os.environ["PATH"],
            **config_data(render(tree)),
            "SECRET_KEY_FILE": str(secret_key),
            "SEALING_KEYS_FILE": str(sealing_keys),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    def test_nothing_secret_is_in_the_configmap(self, tree: str) -> None:
        for key, value in config_data(render(tree)).items():
            assert not re.search(r"PASSWORD|TOKEN|SECRET_KEY$", key), key
            assert urlsplit(value).password is None, key


class TestDevOverlay:
    def test_it_runs_postgres_and_redis_in_the_cluster(self) -> None:
        objects = render("overlays/dev")
        find(objects, "StatefulSet", "postgres")
        find(objects, "Deployment", "redis")
        services = {s["metadata"]["name"] for s in of_kind(objects, "Service")}
        # Both URLs carry a password, so neither may sit in the ConfigMap.
        assert not {"DATABASE_URL", "REDIS_URL"} & set(config_data(objects))
        for c in portal_containers(objects):
            env = env_sources(c)
            names = [e["name"] for e in c.spec["env"]]
            for url_name, password in (
                ("DATABASE_URL", "POSTGRES_PASSWORD"),
                ("REDIS_URL", "REDIS_PASSWORD"),
            ):
                url = urlsplit(env[url_name]["value"])
                assert url.hostname in services, c.label
                assert url.password == f"$({password})", f"{c.label}: {url_name}"
                assert env[password]["valueFrom"]["secretKeyRef"] == {
                    "name": "portal-secrets",
                    "key": password,
                }, c.label
                # $(VAR) expands only from variables defined before it.
                assert names.index(password) < names.index(url_name), c.label

    def test_redis_requires_the_password_from_the_secret(self) -> None:
        pod = pod_spec(find(render("overlays/dev"), "Deployment", "redis"))
        redis = pod["containers"][0]
        env = {e["name"]: e for e in redis["env"]}
        for name in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "portal-secrets", "key": "REDIS_PASSWORD"}, name
        script = " ".join(redis["args"])
        # The password reaches redis-server through a config file, never its command line.
        assert "requirepass %s" in script
        assert '"$REDIS_PASSWORD"' in script
        assert "exec redis-server /run/redis/redis.conf" in script
        assert "--requirepass" not in script
        mounts = {m["mountPath"]: m["name"] for m in redis["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[mounts["/run/redis"]]["emptyDir"]["medium"] == "Memory"
        # The probes authenticate through REDISCLI_AUTH; a bare `redis-cli ping` would get NOAUTH.
        for probe in ("readinessProbe", "livenessProbe"):
            assert "redis-cli ping" in " ".join(redis[probe]["exec"]["command"])

    def test_it_uses_the_simulated_backend(self) -> None:
        assert config_data(render("overlays/dev"))["DEMO_BACKEND"] == "simulated"


class TestProductionOverlay:
    def test_database_and_redis_come_from_the_secret(self) -> None:
        objects = render("overlays/production")
        assert not {"DATABASE_URL", "REDIS_URL"} & set(config_data(objects))
        for c in portal_containers(objects):
            env = env_sources(c)
            for name in ("DATABASE_URL", "REDIS_URL"):
                ref = env[name]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "portal-secrets", "key": name}, c.label

    def test_web_and_worker_autoscale(self) -> None:
        objects = render("overlays/production")
        targets = {
            hpa["spec"]["scaleTargetRef"]["name"]: hpa
            for hpa in of_kind(objects, "HorizontalPodAutoscaler")
        }
        assert set(targets) == {"portal-web", "portal-worker"}
        for name, hpa in targets.items():
            assert hpa["spec"]["minReplicas"] >= 2, name
            # A replica count in the Deployment would reset the autoscaler on every apply.
            assert "replicas" not in find(objects, "Deployment", name)["spec"], name

    def test_it_uses_the_vcluster_backend_in_cluster(self) -> None:
        data = config_data(render("overlays/production"))
        assert data["DEMO_BACKEND"] == "vcluster"
        assert data["VCLUSTER_IN_CLUSTER"] == "true"

    def test_the_portal_is_served_over_tls(self) -> None:
        objects = render("overlays/production")
        ingress = find(objects, "Ingress", "portal")
        host = ingress["spec"]["rules"][0]["host"]
        assert any(host in tls["hosts"] for tls in ingress["spec"]["tls"])
        data = config_data(objects)
        assert host in data["ALLOWED_HOSTS"].split(",")
        assert f"https://{host}" in data["CSRF_TRUSTED_ORIGINS"].split(",")
        assert "SECURE_SSL_REDIRECT" not in data
