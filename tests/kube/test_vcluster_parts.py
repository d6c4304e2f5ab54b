"""The backend's small pure parts: reading pod states and vCluster's status into messages,
API error mapping, names (snapshot URLs: test_vcluster_snapshots.py)."""

from __future__ import annotations

from typing import Any

import pytest
from host_player import container_status, pod_body
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from demos.backends.base import BackendError, ChartPhase
from demos.backends.vcluster import naming, observe
from demos.backends.vcluster.kube import api_error


def pod(**container: Any) -> client.V1Pod:
    body = pod_body("web-1", labels={}, containers=[container_status("web", "shop:1", **container)])
    return client.V1Pod.from_dict(body)


class TestPodFindings:
    def test_a_running_pod_has_nothing_to_say(self) -> None:
        assert observe.pod_finding(pod(), "Chart `shop`") is None

    @pytest.mark.parametrize("reason", ["ImagePullBackOff", "InvalidImageName"])
    def test_image_pull_failures_are_fatal(self, reason: str) -> None:
        finding = observe.pod_finding(pod(waiting=reason), "Chart `shop`")

        assert finding == observe.Finding(
            "Chart `shop` failed: image pull error for shop:1.",
            True,
            f"pod web-1, container web: {reason}",
        )

    def test_a_missing_secret_is_fatal_and_says_which(self) -> None:
        finding = observe.pod_finding(
            pod(waiting="CreateContainerConfigError", waiting_message='secret "db" not found'),
            "Chart `shop`",
        )

        assert finding is not None
        assert finding.fatal
        assert finding.message == (
            'Chart `shop` failed: container `web` cannot start: secret "db" not found.'
        )

    def test_the_cli_readiness_rule(self) -> None:
        assert observe.pod_is_ready(pod())
        assert not observe.pod_is_ready(pod(waiting="ContainerCreating"))
        assert not observe.pod_is_ready(None)

    def test_pods_are_described_for_the_log(self) -> None:
        text = observe.describe_pods([pod(waiting="CrashLoopBackOff", restarts=4)])

        assert text == "pod web-1: Running; web waiting (CrashLoopBackOff), not ready, 4 restarts"


class TestDeployStatus:
    def configmap(self, status: str | None) -> client.V1ConfigMap:
        annotations = {naming.DEPLOY_STATUS_ANNOTATION: status} if status is not None else {}
        return client.V1ConfigMap(metadata=client.V1ObjectMeta(annotations=annotations))

    def test_charts_are_matched_by_release_or_chart_name(self) -> None:
        # As deploy.go's encodeStatus writes it: JSON, Failed entries are retried (start.go).
        status = observe.deploy_status(
            self.configmap(
                '{"phase":"Failed","reason":"InstallFailed","message":"timed out","charts":['
                '{"name":"shop","namespace":"shop","phase":"Success"},'
                '{"name":"webshop-db","namespace":"shop","phase":"Failed",'
                '"reason":"InstallFailed","message":"timed out"}],"manifests":{"phase":"Success"}}'
            )
        )
        charts = [
            {"name": "shop", "chart": "webshop", "namespace": "shop"},
            {"name": "shop-db", "chart": "webshop-db", "namespace": "shop"},
            {"name": "extra", "chart": "extra", "namespace": ""},
        ]

        progress = observe.chart_progress(charts, status)

        assert [(p.name, p.namespace, p.phase, p.message) for p in progress] == [
            ("shop", "shop", ChartPhase.SUCCESS, ""),
            ("shop-db", "shop", ChartPhase.RETRYING, "InstallFailed timed out"),
            ("extra", "default", ChartPhase.PENDING, ""),
        ]

    def test_no_configmap_or_annotation_means_no_status(self) -> None:
        assert observe.deploy_status(None) is None
        assert observe.deploy_status(self.configmap(None)) is None

    def test_an_unreadable_status_is_kept_for_the_log(self) -> None:
        status = observe.deploy_status(self.configmap("phase: [broken"))

        assert status is not None
        assert status.phase == "Unknown"


class TestIngressUrls:
    def test_https_only_for_hosts_with_tls(self) -> None:
        ingresses = [
            client.V1Ingress(
                spec=client.V1IngressSpec(
                    rules=[
                        client.V1IngressRule(host="shop.demos.example.com"),
                        client.V1IngressRule(host="admin.demos.example.com"),
                        client.V1IngressRule(host="*.demos.example.com"),
                        client.V1IngressRule(),
                    ],
                    tls=[client.V1IngressTLS(hosts=["shop.demos.example.com"])],
                )
            )
        ]

        assert observe.ingress_urls(ingresses) == [
            "https://shop.demos.example.com/",
            "http://admin.demos.example.com/",
        ]

    def test_only_the_demos_ingress_class_when_one_is_set(self) -> None:
        ingresses = [
            client.V1Ingress(
                spec=client.V1IngressSpec(
                    ingress_class_name=name, rules=[client.V1IngressRule(host=f"{name}.example")]
                )
            )
            for name in ("nginx", "internal", None)
        ]

        assert observe.ingress_urls(ingresses, "nginx") == [
            "http://nginx.example/",
            "http://None.example/",
        ]


class TestWhoFailed:
    charts = [
        {"name": "shop", "namespace": "shop"},
        {"name": "shop-db", "namespace": "shop"},
        {"name": "metrics", "namespace": "monitoring"},
    ]

    def synced(self, namespace: str, instance: str = "") -> client.V1Pod:
        return client.V1Pod(
            metadata=client.V1ObjectMeta(
                name="x",
                labels={"app.kubernetes.io/instance": instance} if instance else {},
                annotations={naming.OBJECT_NAMESPACE_ANNOTATION: namespace},
            )
        )

    def test_by_release_label_then_by_namespace(self) -> None:
        assert observe.chart_of_pod(self.synced("shop", "shop-db"), self.charts) == (
            "Chart `shop-db`"
        )
        assert observe.chart_of_pod(self.synced("monitoring"), self.charts) == ("Chart `metrics`")
        assert observe.chart_of_pod(self.synced("shop"), self.charts) == (
            "One of the charts `shop`, `shop-db`"
        )
        assert observe.chart_of_pod(self.synced("tools"), self.charts) == (
            "Pod tools/x in the demo"
        )


class TestApiErrors:
    @pytest.mark.parametrize(
        ("status", "transient"),
        [
            (0, True),
            (401, False),
            (403, False),
            (409, True),
            (422, False),
            (429, True),
            (500, True),
        ],
    )
    def test_which_failures_are_worth_retrying(self, status: int, transient: bool) -> None:
        error = api_error(ApiException(status=status, reason="x"), "read StatefulSet a/b")

        assert error.transient is transient

    def test_connection_errors_are_transient(self) -> None:
        error = api_error(ConnectionRefusedError(), "list pods in a")

        assert error.transient
        assert error.message == "The host cluster's API cannot be reached (list pods in a)."


class TestNames:
    @pytest.mark.parametrize("name", ["Demo-1", "1demo", "demo_1", "demo-", "x" * 64])
    def test_invalid_cluster_names_are_refused(self, name: str) -> None:
        with pytest.raises(BackendError, match="cannot be a vCluster name"):
            naming.check_cluster_name(name, "vcluster-")

    def test_a_namespace_that_would_be_too_long(self) -> None:
        with pytest.raises(BackendError, match="longer than 63 characters"):
            naming.check_cluster_name("d" * 60, "vcluster-")

    def test_labels_skip_values_kubernetes_would_refuse(self) -> None:
        labels = naming.portal_labels("prod", "demo-1", "not a label value!", "webshop")

        assert naming.DEMO_ID_LABEL not in labels
        assert labels[naming.TEMPLATE_LABEL] == "webshop"
