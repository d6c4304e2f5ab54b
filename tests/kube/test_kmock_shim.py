"""The test-support shim closes kmock 0.8's gaps (listed in kmock_shim.py) and plays the namespace
lifecycle, checked through the real `kubernetes` client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from kmock_shim import (
    ApiRequest,
    EmulatorThread,
    KubeEmulator,
    matches_field_selector,
    matches_label_selector,
)
from kubernetes import client, watch

pytestmark = pytest.mark.kube


MERGE_PATCH = "application/merge-patch+json"
FINALIZER = "example.com/cleanup"


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as running:
        yield running


@pytest.fixture
def api(emulator: EmulatorThread) -> client.CoreV1Api:
    return client.CoreV1Api(emulator.api_client())


def test_namespaces_can_be_created_read_listed_and_deleted(api: client.CoreV1Api) -> None:
    created = api.create_namespace({"metadata": {"name": "team-a", "labels": {"tier": "demo"}}})

    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    assert api.read_namespace("team-a").metadata.labels == {"tier": "demo"}
    assert [n.metadata.name for n in api.list_namespace(label_selector="tier=demo").items] == [
        "team-a"
    ]
    api.delete_namespace("team-a")
    with pytest.raises(client.ApiException) as raised:
        api.read_namespace("team-a")
    assert raised.value.status == 404


def test_namespace_requests_reach_the_authorizer_as_the_namespaces_resource(
    emulator: EmulatorThread, api: client.CoreV1Api
) -> None:
    seen: list[ApiRequest] = []

    def authorize(_emulator: KubeEmulator, request: ApiRequest) -> str | None:
        seen.append(request)
        return None

    emulator.set_authorizer(authorize)
    api.create_namespace({"metadata": {"name": "team-a"}})
    api.list_namespace()
    api.read_namespace("team-a")
    api.patch_namespace_status("team-a", {"status": {}}, _content_type=MERGE_PATCH)
    api.delete_namespace("team-a")

    assert [(r.method, r.plural, r.namespace, r.name, r.subresource) for r in seen] == [
        ("POST", "namespaces", None, None, None),
        ("GET", "namespaces", None, None, None),
        ("GET", "namespaces", None, "team-a", None),
        ("PATCH", "namespaces", None, "team-a", "status"),
        ("DELETE", "namespaces", None, "team-a", None),
    ]
    assert seen[0].group == ""
    assert seen[0].body["metadata"]["name"] == "team-a"


def test_a_refusal_is_a_403_status(emulator: EmulatorThread, api: client.CoreV1Api) -> None:
    emulator.set_authorizer(lambda _emulator, request: f"no {request.method} for you")

    with pytest.raises(client.ApiException) as raised:
        api.read_namespace("team-a")

    assert raised.value.status == 403
    assert "no GET for you" in raised.value.body


def test_new_namespaces_are_active(api: client.CoreV1Api) -> None:
    created = api.create_namespace({"metadata": {"name": "team-a"}})

    assert created.status.phase == "Active"
    assert created.spec.finalizers == ["kubernetes"]


def test_deleting_a_namespace_deletes_its_contents(api: client.CoreV1Api) -> None:
    api.create_namespace({"metadata": {"name": "team-a"}})
    api.create_namespaced_config_map("team-a", {"metadata": {"name": "settings"}})
    api.create_namespaced_config_map("team-b", {"metadata": {"name": "settings"}})

    api.delete_namespace("team-a")

    assert api.list_namespaced_config_map("team-a").items == []
    assert [c.metadata.name for c in api.list_namespaced_config_map("team-b").items] == ["settings"]


class TestANamespaceWithFinalizersInside:
    """Kubernetes' namespace lifecycle: contents holding finalizers keep a deleted namespace
    Terminating, and it goes with the last of them."""

    @pytest.fixture
    def terminating(self, api: client.CoreV1Api) -> client.V1Namespace:
        api.create_namespace({"metadata": {"name": "team-a"}})
        for name, finalizers in (("held", [FINALIZER]), ("free", [])):
            api.create_namespaced_config_map(
                "team-a", {"metadata": {"name": name, "finalizers": finalizers}}
            )
        api.delete_namespace("team-a")
        return api.read_namespace("team-a")

    def release(self, api: client.CoreV1Api) -> None:
        api.patch_namespaced_config_map(
            "held", "team-a", {"metadata": {"finalizers": []}}, _content_type=MERGE_PATCH
        )

    def test_it_stays_terminating_with_what_holds_finalizers(
        self, api: client.CoreV1Api, terminating: client.V1Namespace
    ) -> None:
        assert terminating.metadata.deletion_timestamp is not None
        assert terminating.status.phase == "Terminating"
        [held] = api.list_namespaced_config_map("team-a").items
        assert held.metadata.name == "held"
        assert held.metadata.deletion_timestamp is not None

    def test_nothing_new_can_be_created_in_it(
        self, api: client.CoreV1Api, terminating: client.V1Namespace
    ) -> None:
        with pytest.raises(client.ApiException) as raised:
            api.create_namespaced_secret("team-a", {"metadata": {"name": "late"}})

        assert raised.value.status == 403
        assert json.loads(raised.value.body)["message"] == (
            'secrets "late" is forbidden: unable to create new content in namespace team-a '
            "because it is being terminated"
        )

    def test_changing_or_deleting_it_again_does_not_end_it(
        self, api: client.CoreV1Api, terminating: client.V1Namespace
    ) -> None:
        api.patch_namespace(
            "team-a", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE_PATCH
        )
        api.delete_namespace("team-a")

        still = api.read_namespace("team-a")
        assert still.status.phase == "Terminating"
        assert still.metadata.labels["a"] == "b"

    def test_it_goes_when_the_last_finalizer_is_removed(
        self, api: client.CoreV1Api, terminating: client.V1Namespace
    ) -> None:
        self.release(api)

        assert api.list_namespaced_config_map("team-a").items == []
        with pytest.raises(client.ApiException) as raised:
            api.read_namespace("team-a")
        assert raised.value.status == 404

    def test_its_own_finalizers_hold_it_too(self, api: client.CoreV1Api) -> None:
        api.create_namespace({"metadata": {"name": "team-b", "finalizers": [FINALIZER]}})
        api.delete_namespace("team-b")
        assert api.read_namespace("team-b").status.phase == "Terminating"

        api.patch_namespace("team-b", {"metadata": {"finalizers": []}}, _content_type=MERGE_PATCH)

        assert [n.metadata.name for n in api.list_namespace().items] == []

    def test_watchers_see_it_happen(
        self, api: client.CoreV1Api, terminating: client.V1Namespace
    ) -> None:
        events: list[tuple[str, str]] = []

        def follow() -> None:
            stream = watch.Watch().stream(api.list_namespace, _request_timeout=5)
            for event in stream:
                events.append((event["type"], event["object"].metadata.name))
                if event["type"] == "DELETED":
                    return

        follower = threading.Thread(target=follow)
        follower.start()
        time.sleep(0.3)
        self.release(api)
        follower.join(5)

        assert events == [("ADDED", "team-a"), ("DELETED", "team-a")]


def test_creates_fill_in_what_the_server_would(api: client.CoreV1Api) -> None:
    secret = api.create_namespaced_secret(
        "team-a", {"metadata": {"generateName": "request-"}, "data": {}}
    )

    assert secret.metadata.name.startswith("request-")
    assert len(secret.metadata.name) == 13
    assert secret.metadata.namespace == "team-a"


def test_creates_answer_201(api: client.CoreV1Api) -> None:
    _created, status, _headers = api.create_namespaced_config_map_with_http_info(
        "team-a", {"metadata": {"name": "settings"}}
    )

    assert status == 201


def test_put_replaces(api: client.CoreV1Api) -> None:
    api.create_namespaced_config_map("team-a", {"metadata": {"name": "s"}, "data": {"a": "1"}})

    replaced = api.replace_namespaced_config_map(
        "s", "team-a", {"metadata": {"name": "s"}, "data": {"b": "2"}}
    )

    assert replaced.data == {"b": "2"}
    assert api.read_namespaced_config_map("s", "team-a").data == {"b": "2"}


def test_label_and_field_selectors_filter_lists(api: client.CoreV1Api) -> None:
    for name, labels in [("a", {"app": "web", "tier": "1"}), ("b", {"app": "db"}), ("c", {})]:
        api.create_namespaced_config_map("ns", {"metadata": {"name": name, "labels": labels}})

    def names(**selector: str) -> list[str]:
        return sorted(
            c.metadata.name for c in api.list_namespaced_config_map("ns", **selector).items
        )

    assert names(label_selector="app=web") == ["a"]
    assert names(label_selector="app") == ["a", "b"]
    assert names(label_selector="!app") == ["c"]
    assert names(label_selector="app in (web, db),tier!=2") == ["a", "b"]
    assert names(field_selector="metadata.name=b") == ["b"]


def test_the_version_endpoint_with_a_slash(api: client.CoreV1Api) -> None:
    assert client.VersionApi(api.api_client).get_code().major == "1"


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("a=1", True),
        ("a==1", True),
        ("a!=1", False),
        ("a notin (2,3)", True),
        ("b notin (2)", True),
        ("b in (2)", False),
        ("a,!b", True),
    ],
)
def test_label_selector_semantics(selector: str, matches: bool) -> None:
    assert matches_label_selector({"a": "1"}, selector) is matches


def test_field_selector_semantics() -> None:
    event = {"involvedObject": {"kind": "Pod", "name": "x"}}

    assert matches_field_selector(event, "involvedObject.kind=Pod,involvedObject.name!=y")
    assert not matches_field_selector(event, "involvedObject.kind!=Pod")


def test_watches_see_objects_created_through_namespaced_urls(api: client.CoreV1Api) -> None:
    events: list[tuple[str, str]] = []

    def follow() -> None:
        stream = watch.Watch().stream(api.list_namespaced_config_map, "team-a", _request_timeout=5)
        for event in stream:
            events.append((event["type"], event["object"].metadata.name))
            return

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.3)
    api.create_namespaced_config_map("team-a", {"metadata": {"name": "settings"}})
    follower.join(5)

    assert events == [("ADDED", "settings")]
