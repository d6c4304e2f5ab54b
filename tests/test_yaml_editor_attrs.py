"""The YAML fields' textareas as the code editor (static/js/yaml_editor.js) finds them: marked
for the editor, with the line, column and message of a YAML error, and the editor's assets."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.template.loader import render_to_string
from django.test import Client

from demos.catalog.forms import DemoTemplateForm, TemplateChartForm
from demos.models import DemoTemplate
from tests.conftest import change_url, form_data

YAML_TEMPLATE_FIELDS = ("credentials", "vcluster_overrides", "unsafe_vcluster_overrides")
EDITOR_ASSETS = (
    "css/yaml_editor.css",
    "vendor/codemirror/codemirror-yaml.min.js",
    "js/yaml_editor.js",
)


def textarea(html: str, name: str) -> str:
    """The opening tag of the textarea for form field `name`."""
    match = re.search(rf'<textarea[^>]*\bname="{re.escape(name)}"[^>]*>', html)
    assert match, f"no textarea {name}"
    return match[0]


def attribute(tag: str, name: str) -> str | None:
    match = re.search(rf'\s{re.escape(name)}(?:="([^"]*)")?[\s>]', tag)
    if not match:
        return None
    return match[1] or ""


class TestTheWidgets:
    def test_it_marks_the_yaml_fields_for_the_editor_and_only_them(self) -> None:
        form = DemoTemplateForm()
        for name in YAML_TEMPLATE_FIELDS:
            tag = textarea(str(form[name]), name)
            assert attribute(tag, "data-yaml-editor") == ""
            assert attribute(tag, "spellcheck") == "false"
            assert attribute(tag, "data-yaml-error-line") is None
        for name in ("description", "instructions"):
            assert attribute(textarea(str(form[name]), name), "data-yaml-editor") is None

    def test_it_marks_chart_values_and_keeps_their_size(self) -> None:
        tag = textarea(str(TemplateChartForm()["values"]), "values")
        assert attribute(tag, "data-yaml-editor") == ""
        assert attribute(tag, "rows") == "6"

    @pytest.mark.django_db
    def test_it_gives_the_line_column_and_message_of_a_yaml_error(
        self, template: DemoTemplate
    ) -> None:
        data = form_data(template, credentials="Username: admin\n  Password: demo\n")
        form = DemoTemplateForm(data, instance=template)
        assert not form.is_valid()
        tag = textarea(str(form["credentials"]), "credentials")
        assert attribute(tag, "data-yaml-error-line") == "2"
        assert attribute(tag, "data-yaml-error-column") == "11"
        message = attribute(tag, "data-yaml-error-message")
        assert message is not None
        assert message.startswith("Credentials: invalid YAML at line 2, column 11:")
        assert attribute(tag, "aria-invalid") == "true"
        # Fields without an error carry no position.
        other = textarea(str(form["vcluster_overrides"]), "vcluster_overrides")
        assert attribute(other, "data-yaml-error-line") is None

    @pytest.mark.django_db
    def test_it_gives_no_line_for_an_error_without_one(self, template: DemoTemplate) -> None:
        form = DemoTemplateForm(
            form_data(template, credentials="Password: ${PASSWORD}\n"), instance=template
        )
        assert not form.is_valid()
        assert "unknown variable" in str(form.errors["credentials"])
        tag = textarea(str(form["credentials"]), "credentials")
        assert attribute(tag, "data-yaml-editor") == ""
        assert attribute(tag, "data-yaml-error-line") is None

    def test_it_escapes_the_message_in_the_attribute(self) -> None:
        form = TemplateChartForm({"release_name": "shop", "values": 'image: "shop" latest\n'})
        assert not form.is_valid()
        tag = textarea(str(form["values"]), "values")
        assert attribute(tag, "data-yaml-error-line") == "1"
        assert attribute(tag, "data-yaml-error-column") == "15"
        # PyYAML's wording has angle brackets and quotes: they arrive as entities.
        assert "but found &#x27;&lt;scalar&gt;&#x27;." in tag
        assert "<scalar>" not in tag


class TestTheAdminForm:
    def test_it_loads_the_editor_and_marks_the_yaml_fields(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        html = admin_client.get(change_url(template)).content.decode()
        for path in EDITOR_ASSETS:
            assert f"/static/{path}" in html
        for name in ("credentials", "vcluster_overrides", "charts-0-values", "charts-1-values"):
            assert attribute(textarea(html, name), "data-yaml-editor") == ""
        # A template admin sees the superusers' overrides as text, not as a field to edit.
        assert 'name="unsafe_vcluster_overrides"' not in html

    def test_a_saved_yaml_error_comes_back_with_its_line(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        data = form_data(template, **{"charts-1-values": "host: ${DEMO_HOST}\nimage: [oops\n"})
        response = admin_client.post(change_url(template), data)
        assert response.status_code == 200
        html = response.content.decode()
        tag = textarea(html, "charts-1-values")
        assert attribute(tag, "data-yaml-error-line") == "2"
        assert attribute(tag, "data-yaml-error-column") == "13"
        assert "Values of chart app1: invalid YAML at line 2, column 13" in (
            attribute(tag, "data-yaml-error-message") or ""
        )
        assert attribute(textarea(html, "charts-0-values"), "data-yaml-error-line") is None

    def test_a_superuser_edits_the_unsafe_overrides_in_the_editor(
        self, client: Client, template: DemoTemplate, admin_user: User
    ) -> None:
        client.force_login(admin_user)
        html = client.get(change_url(template)).content.decode()
        tag = textarea(html, "unsafe_vcluster_overrides")
        assert attribute(tag, "data-yaml-editor") == ""


class TestTheAssets:
    def test_the_partial_names_files_that_exist(self) -> None:
        html = render_to_string("forms/yaml_editor_assets.html")
        assert re.search(r'<link rel="stylesheet" href="/static/css/yaml_editor\.css">', html)
        scripts = re.findall(r'<script src="/static/([^"]+)" defer></script>', html)
        # The library before the code that uses it; `defer` keeps that order.
        assert scripts == list(EDITOR_ASSETS[1:])
        for path in EDITOR_ASSETS:
            assert finders.find(path), path

    def test_the_manifest_storage_takes_them(self, tmp_path: Path, settings: Any) -> None:
        """collectstatic's manifest storage follows url() and sourceMappingURL references and
        fails on one that is missing; the editor's files must pass it as they are."""
        settings.STATIC_ROOT = tmp_path
        for path in EDITOR_ASSETS:
            target = tmp_path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(finders.find(path), target)
        storage = ManifestStaticFilesStorage(location=tmp_path)
        found = {path: (storage, path) for path in EDITOR_ASSETS}
        results = list(storage.post_process(found))
        errors = [error for _, _, error in results if isinstance(error, Exception)]
        assert errors == []
        hashed = {name for name, _, processed in results if processed}
        assert set(EDITOR_ASSETS) <= hashed
        bundle = (tmp_path / EDITOR_ASSETS[1]).read_text()
        assert "sourceMappingURL" not in bundle
