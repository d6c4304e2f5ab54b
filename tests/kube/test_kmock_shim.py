"""The test-support shim closes kmock 0.8's gaps (see TESTING.md), through the real client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kmock_shim import EmulatorThread, matches_field_selector, matches_label_selector
from kubernetes import client, watch

pytestmark = pytest.mark.kube


@pytest.fixture
def api() -> Iterator[client.CoreV1Api]:
    with EmulatorThread() as emulator:
        yield client.CoreV1Api(emulator.api_client())


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


def test_deleting_a_namespace_deletes_its_contents(api: client.CoreV1Api) -> None:
    api.create_namespace({"metadata": {"name": "team-a"}})
    api.create_namespaced_config_map("team-a", {"metadata": {"name": "settings"}})

    api.delete_namespace("team-a")

    assert api.list_namespaced_config_map("team-a").items == []


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
