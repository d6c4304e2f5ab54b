"""vCluster settings: one definition (the fields of `VClusterSettings`) that the environment,
the Django settings and the documentation all follow."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from demos.backends.vcluster.config import Variable, VClusterSettings
from portal import settings as portal_settings
from tests.conftest import ROOT

VARIABLES = VClusterSettings.variables()
NAMES = [variable.name for variable in VARIABLES]


def _documented(path: str) -> dict[str, str]:
    """Each variable's row in a configuration table of `path`: name to its Default cell."""
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \|", (ROOT / path).read_text(), re.M)
    return dict(rows)


class TestOneDefinition:
    def test_every_field_comes_from_one_setting(self) -> None:
        settings_of = [f.metadata["setting"] for f in fields(VClusterSettings)]
        assert len(set(settings_of)) == len(settings_of)
        # The portal-wide settings the backend reads (declared in portal/settings.py).
        assert [name for name in settings_of if not name.startswith("VCLUSTER_")] == [
            "DEMO_BASE_DOMAIN",
            "DEMO_GATE",
            "DEMO_GATE_CONTROLLER",
            "DEMO_GATE_AUTH_URL",
            "DEMO_GATE_PORTAL_SERVICE",
            "DEMO_GATE_PORTAL_PORT",
            "SITE_URL",
        ]
        assert sorted(NAMES) == sorted(n for n in settings_of if n.startswith("VCLUSTER_"))

    def test_the_portal_settings_hold_each_variable(self) -> None:
        for name in NAMES:
            assert hasattr(django_settings, name), name
        built = VClusterSettings.from_django()
        for f in fields(VClusterSettings):
            assert getattr(built, f.name) == getattr(django_settings, f.metadata["setting"])

    def test_one_django_setting_can_be_overridden(self, settings: Any, tmp_path: Any) -> None:
        schema = tmp_path / "values.schema.json"
        schema.write_text("{}")
        settings.VCLUSTER_VALUES_SCHEMA = str(schema)
        settings.VCLUSTER_EXTRA_SANS = ["api.example.com"]
        settings.DEMO_BASE_DOMAIN = "demos.example.com"

        built = VClusterSettings.from_django()

        assert built.values_schema == str(schema)
        assert built.extra_sans == ("api.example.com",)
        assert built.base_domain == "demos.example.com"

    def test_bad_values_are_still_refused(self, settings: Any) -> None:
        settings.VCLUSTER_POD_SECURITY_STANDARD = "lenient"
        with pytest.raises(ImproperlyConfigured, match="VCLUSTER_POD_SECURITY_STANDARD"):
            VClusterSettings.from_django()


def _variable(name: str) -> Variable:
    return next(variable for variable in VARIABLES if variable.name == name)


class TestEnvironment:
    """Each variable read from the environment by its field's type (portal/settings.py)."""

    @pytest.mark.parametrize(
        ("name", "raw", "value"),
        [
            ("VCLUSTER_NETWORK_POLICY", "yes", True),
            ("VCLUSTER_HTTP_CHECK", "off", False),
            ("VCLUSTER_CLI_TIMEOUT", "45", 45),
            (
                "VCLUSTER_EXTRA_SANS",
                " a.example.com, ,b.example.com ",
                ("a.example.com", "b.example.com"),
            ),
            ("VCLUSTER_IMAGE_REGISTRY", " mirror.example.com ", "mirror.example.com"),
        ],
    )
    def test_it_is_typed_by_its_field(
        self, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, value: object
    ) -> None:
        monkeypatch.setenv(name, raw)
        assert portal_settings._vcluster_setting(_variable(name)) == value

    def test_unset_it_is_the_fields_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for variable in VARIABLES:
            monkeypatch.delenv(variable.name, raising=False)
            if variable.name != "VCLUSTER_HELM_BIN":  # the bundled helm, when fetched
                assert portal_settings._vcluster_setting(variable) == variable.default

    @pytest.mark.parametrize(
        ("name", "raw", "message"),
        [
            ("VCLUSTER_HELM_TIMEOUT", "soon", "VCLUSTER_HELM_TIMEOUT='soon' is not a whole number"),
            ("VCLUSTER_CLI_TIMEOUT", "5", "VCLUSTER_CLI_TIMEOUT=5 must be at least 30"),
            ("VCLUSTER_IN_CLUSTER", "maybe", "VCLUSTER_IN_CLUSTER='maybe' is not a boolean"),
        ],
    )
    def test_a_bad_value_is_named(
        self, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, message: str
    ) -> None:
        monkeypatch.setenv(name, raw)
        with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
            portal_settings._vcluster_setting(_variable(name))


class TestDocumentation:
    @pytest.mark.parametrize("path", ["docs/vcluster.md", "README.md"])
    def test_every_variable_has_a_row_with_its_default(self, path: str) -> None:
        documented = _documented(path)
        for variable in VARIABLES:
            assert variable.name in documented, f"{variable.name} is not in {path}'s table"
            cell = documented[variable.name]
            default = variable.default
            if default in ("", ()):
                assert cell.startswith("empty"), (variable.name, cell)
            else:
                shown = str(default).lower() if isinstance(default, bool) else str(default)
                assert f"`{shown}`" in cell, (variable.name, cell)
