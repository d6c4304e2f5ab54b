"""The vcluster.yaml the backend renders, and its check against the vCluster chart's schema
(read from ../shared/reference/vcluster/ when that folder exists)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured
from upstream.chart import SCHEMA

from demos.backends.base import BackendError
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.values import (
    check_values,
    example_spec,
    merge,
    render_values,
    to_yaml,
    validate_overrides,
)


def settings(**changes: Any) -> VClusterSettings:
    return VClusterSettings(**changes)


class TestRender:
    def test_it_renders_everything_a_demo_needs(self) -> None:
        spec = example_spec("demo-7")
        values = render_values(spec, settings(storage_class="fast", base_domain="demos.acme.io"))

        plane = values["controlPlane"]
        assert plane["distro"] == {"k8s": {"enabled": True, "version": "v1.35.0"}}
        assert plane["backingStore"] == {"database": {"embedded": {"enabled": True}}}
        assert plane["statefulSet"]["image"] == {
            "registry": "ghcr.io",
            "repository": "loft-sh/vcluster-oss",
        }
        assert plane["statefulSet"]["resources"] == {"requests": {"cpu": "200m", "memory": "256Mi"}}
        assert plane["statefulSet"]["persistence"] == {
            "volumeClaim": {"enabled": True, "size": "5Gi", "storageClass": "fast"}
        }
        labels = plane["statefulSet"]["labels"]
        assert labels["demo-portal/demo-id"] == spec["demo_id"]
        assert plane["statefulSet"]["pods"]["labels"] == labels
        assert values["policies"]["podSecurityStandard"] == "baseline"
        quota = values["policies"]["resourceQuota"]["quota"]
        assert {key: quota[key] for key in ("requests.cpu", "requests.memory", "count/pods")} == {
            "requests.cpu": "4",
            "requests.memory": "8Gi",
            "count/pods": 50,
        }
        assert values["policies"]["limitRange"]["enabled"] is True
        assert values["policies"]["networkPolicy"] == {"enabled": False}
        assert values["sync"] == {
            "toHost": {"ingresses": {"enabled": True}},
            "fromHost": {"ingressClasses": {"enabled": True}},
        }
        assert values["exportKubeConfig"] == {
            "additionalSecrets": [
                {
                    "name": "vc-portal-demo-7",
                    "server": "https://demo-7.vcluster-demo-7:443",
                    "context": "demo-7",
                }
            ]
        }
        assert values["experimental"]["deploy"]["vcluster"]["helm"] == [
            {
                "chart": {
                    "name": "webshop",
                    "repo": "oci://registry.example.com/demo-charts",
                    "version": "0.1.0",
                },
                "release": {"name": "shop", "namespace": "shop"},
                "timeout": "300s",
                "values": "host: demo-7.demos.example.com\n",
            }
        ]

    def test_the_certificate_covers_every_name_the_worker_and_prospects_use(self) -> None:
        values = render_values(
            example_spec("demo-7"),
            settings(
                api_server="https://{name}.{namespace}.svc:443",
                external_server="https://{name}-api.{base_domain}",
                api_ingress_host="{name}-api.{base_domain}",
                base_domain="demos.acme.io",
                ingress_class="nginx",
            ),
        )

        assert values["controlPlane"]["proxy"]["extraSANs"] == [
            "demo-7.vcluster-demo-7.svc",
            "demo-7.vcluster-demo-7.svc.cluster.local",
            "demo-7-api.demos.acme.io",
        ]
        assert values["controlPlane"]["ingress"] == {
            "enabled": True,
            "host": "demo-7-api.demos.acme.io",
            "spec": {"ingressClassName": "nginx"},
        }

    def test_no_charts_means_no_deploy_section(self) -> None:
        values = render_values(example_spec(charts=[]), settings())

        assert "experimental" not in values

    def test_overrides_merge_deeply_and_null_removes(self) -> None:
        spec = example_spec(
            vcluster_overrides={
                "controlPlane": {"statefulSet": {"resources": {"limits": {"memory": "1Gi"}}}},
                "policies": {"limitRange": None, "networkPolicy": {"enabled": True}},
            }
        )

        values = render_values(spec, settings())

        assert values["controlPlane"]["statefulSet"]["resources"] == {
            "requests": {"cpu": "200m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        }
        assert "limitRange" not in values["policies"]
        assert values["policies"]["networkPolicy"] == {"enabled": True}

    def test_merge_does_not_touch_its_inputs(self) -> None:
        base = {"a": {"b": [1]}}
        merged = merge(base, {"a": {"c": 2}})
        merged["a"]["b"].append(3)

        assert base == {"a": {"b": [1]}}

    def test_the_yaml_reads_well_and_round_trips(self) -> None:
        values = render_values(example_spec(), settings())
        text = to_yaml(values)

        assert yaml.safe_load(text) == values
        assert "values: |" in text
        assert "&id" not in text, "no YAML anchors"


class TestSchema:
    def test_the_rendered_values_validate(self) -> None:
        check_values(render_values(example_spec(), settings()), settings(values_schema=str(SCHEMA)))

    def test_an_unknown_key_is_named_with_its_path(self) -> None:
        spec = example_spec(vcluster_overrides={"controlPlane": {"foo": True}})

        with pytest.raises(BackendError) as raised:
            check_values(render_values(spec, settings()), settings(values_schema=str(SCHEMA)))

        assert raised.value.message.startswith("vcluster.yaml: controlPlane.foo is not allowed")
        assert not raised.value.transient

    def test_a_wrong_type_is_named_with_its_path(self) -> None:
        spec = example_spec(vcluster_overrides={"sync": {"toHost": {"ingresses": {"enabled": 1}}}})

        with pytest.raises(BackendError) as raised:
            check_values(render_values(spec, settings()), settings(values_schema=str(SCHEMA)))

        assert raised.value.message.startswith(
            "vcluster.yaml: sync.toHost.ingresses.enabled: 1 is not of type 'boolean'."
        )

    def test_without_a_schema_nothing_is_checked(self) -> None:
        check_values({"anything": True}, settings())

    def test_an_unreadable_schema_is_a_clear_error(self, tmp_path: Path) -> None:
        broken = tmp_path / "values.schema.json"
        broken.write_text("{not json")

        with pytest.raises(BackendError, match="cannot be read"):
            check_values({}, settings(values_schema=str(broken)))


class TestValidateOverrides:
    """The pure check the admin form calls on a template's overrides."""

    def test_good_overrides_have_no_problems(self) -> None:
        text = (
            "controlPlane:\n  statefulSet:\n    resources:\n      limits:\n        memory: 1Gi\n"
            "sync:\n  toHost:\n    services:\n      enabled: true\n"
        )

        assert validate_overrides(text, settings(values_schema=str(SCHEMA))) == []

    def test_every_problem_is_listed(self) -> None:
        problems = validate_overrides(
            {"controlPlane": {"foo": 1}, "sleep": {"auto": {"afterInactivity": "1h"}}},
            settings(values_schema=str(SCHEMA)),
        )

        assert problems == [
            "vCluster overrides: sleep is not allowed: sleep needs the paid vCluster Platform; "
            "the portal pauses demos itself.",
            "vCluster overrides: controlPlane.foo cannot be set by template admins: it changes "
            "how the control plane runs on the host cluster.",
        ]

    def test_a_superuser_layer_is_still_checked_against_the_schema(self) -> None:
        problems = validate_overrides(
            {"controlPlane": {"foo": 1}}, settings(values_schema=str(SCHEMA)), unsafe=True
        )

        assert problems == [
            "vcluster.yaml: controlPlane.foo is not allowed (no such setting in this vCluster "
            "version; check the spelling and nesting)."
        ]

    def test_invalid_yaml(self) -> None:
        assert validate_overrides("a: [1, 2", settings()) == [
            "vCluster overrides: invalid YAML at line 1, column 9: expected ',' or ']', but got "
            "'<stream end>'."
        ]

    def test_not_a_mapping(self) -> None:
        assert validate_overrides("- a\n- b\n", settings()) == [
            "vCluster overrides: expected a YAML mapping (key: value)."
        ]

    def test_paid_datastores_are_refused_without_a_schema(self) -> None:
        problems = validate_overrides(
            {"controlPlane": {"backingStore": {"etcd": {"embedded": {"enabled": True}}}}},
            settings(),
        )

        assert problems == [
            "vCluster overrides: controlPlane.backingStore.etcd is not allowed: embedded etcd "
            "is a paid vCluster feature; demos use the embedded SQLite datastore."
        ]

    def test_the_data_volume_cannot_be_switched_off(self) -> None:
        overrides = {
            "controlPlane": {"statefulSet": {"persistence": {"volumeClaim": {"enabled": False}}}}
        }

        problems = validate_overrides(overrides, settings())

        assert "volumeClaim.enabled cannot be false" in problems[0]

    def test_it_reads_the_portal_settings_by_default(self, settings: Any) -> None:
        settings.VCLUSTER_VALUES_SCHEMA = ""

        assert validate_overrides("") == []


class TestSettings:
    def test_bad_templates_and_urls_are_named(self, settings: Any) -> None:
        settings.VCLUSTER_API_SERVER = "http://{name}.{nmespace}:443"
        settings.VCLUSTER_SNAPSHOT_URL = "ftp://archive/{name}"

        with pytest.raises(ImproperlyConfigured) as raised:
            VClusterSettings.from_django()

        message = str(raised.value)
        assert (
            "VCLUSTER_API_SERVER='http://{name}.{nmespace}:443' uses unknown placeholder" in message
        )
        assert "must be an https:// URL" in message
        assert "VCLUSTER_SNAPSHOT_URL='ftp://archive/{name}' must start with one of" in message

    def test_a_missing_schema_file_is_named(self, settings: Any, tmp_path: Path) -> None:
        settings.VCLUSTER_VALUES_SCHEMA = str(tmp_path / "missing.json")

        with pytest.raises(ImproperlyConfigured, match="VCLUSTER_VALUES_SCHEMA"):
            VClusterSettings.from_django()

    def test_the_defaults_are_sound(self) -> None:
        assert VClusterSettings().problems() == []

    def test_the_portal_picks_this_backend_by_setting(self, settings: Any) -> None:
        from demos.backends import get_backend
        from demos.backends.vcluster.backend import VClusterBackend

        settings.DEMO_BACKEND = "vcluster"
        get_backend.cache_clear()
        try:
            backend = get_backend()
        finally:
            get_backend.cache_clear()

        assert isinstance(backend, VClusterBackend)
        assert (backend.label, backend.simulated, backend.can_restore) == ("vCluster", False, False)


def test_a_template_built_here_validates(db: None) -> None:
    """A template as an admin would write it, through the real spec rendering."""
    from demos.engine.specs import render_spec
    from demos.models import Demo, DemoTemplate, TemplateChart

    template = DemoTemplate.objects.create(
        slug="webshop-check",
        name="Web shop",
        vcluster_overrides="controlPlane:\n  statefulSet:\n    resources:\n"
        "      limits:\n        memory: 2Gi\n",
    )
    TemplateChart.objects.create(
        template=template,
        repository="oci://registry.example.com/demo-charts",
        chart="webshop",
        version="0.1.0",
        release_name="shop",
        namespace="shop",
        values="host: ${DEMO_HOST}\nbanner: Hello ${PROSPECT_COMPANY}\n",
    )
    demo = Demo(template=template, cluster_name="demo-0a1b2c3d", prospect_company='Acme: "Inc"')

    values = render_values(render_spec(demo), settings())

    check_values(values, settings(values_schema=str(SCHEMA)))
    chart = values["experimental"]["deploy"]["vcluster"]["helm"][0]
    assert yaml.safe_load(chart["values"])["banner"] == 'Hello Acme: "Inc"'


def test_every_seeded_sample_template_validates(db: None) -> None:
    from demos import seed
    from demos.engine.specs import render_spec
    from demos.models import Demo, DemoTemplate

    seed.seed_templates()
    templates = list(DemoTemplate.objects.all())
    assert templates

    for index, template in enumerate(templates):
        demo = Demo(template=template, cluster_name=f"demo-seed{index}")
        values = render_values(render_spec(demo), settings())
        check_values(values, settings(values_schema=str(SCHEMA)))
