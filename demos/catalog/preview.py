"""The admin's preview of a template: the complete vcluster.yaml a demo of it would get.

Rendered for a made-up sample demo with the same functions a real start uses (`render_spec`, then
the vCluster backend's `render_values`), so what the admin reads is what Helm would receive.
Nothing is saved and no cluster is touched.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from demos.backends.base import BackendError
from demos.engine.specs import SpecError, personal_variables_used, render_spec
from demos.models import Demo, DemoTemplate

SAMPLE_CLUSTER_NAME = "demo-0sample00"
SAMPLE_DEMO_ID = uuid.UUID("00000000-0000-4000-8000-00000000cafe")


@dataclass
class TemplatePreview:
    template: DemoTemplate
    variables: dict[str, str] = field(default_factory=dict)
    vcluster_yaml: str = ""
    spec_yaml: str = ""
    error: str = ""
    problems: list[str] = field(default_factory=list)
    schema: str = ""
    personal_variables: list[str] = field(default_factory=list)


def sample_demo(template: DemoTemplate) -> Demo:
    """An unsaved demo of `template`, started by a sample salesperson for a sample prospect."""
    owner = get_user_model()(
        username="sam.sales", first_name="Sam", last_name="Sales", email="sam@example.com"
    )
    return Demo(
        template=template,
        template_version=template.version,
        owner=owner,
        public_id=SAMPLE_DEMO_ID,
        prospect_name="Pat Prospect",
        prospect_company="Example Corp",
        cluster_name=SAMPLE_CLUSTER_NAME,
    )


def preview_template(*, template: DemoTemplate, demo: Demo | None = None) -> TemplatePreview:
    """Render `template` (as saved, or an unsaved copy holding edited content) for `demo`, the
    sample demo unless given. Problems are reported in the result, never raised."""
    preview = TemplatePreview(
        template=template, personal_variables=sorted(personal_variables_used(template))
    )
    try:
        spec = render_spec(demo or sample_demo(template))
    except SpecError as exc:
        preview.error = str(exc)
        return preview
    preview.variables = spec["variables"]
    preview.spec_yaml = yaml.safe_dump(_without_variables(spec), sort_keys=False)

    from demos.backends.vcluster.config import VClusterSettings
    from demos.backends.vcluster.values import (
        load_validator,
        override_problems,
        render_values,
        schema_errors,
        to_yaml,
    )

    try:
        cfg = VClusterSettings.from_django()
    except ImproperlyConfigured as exc:
        preview.error = f"The vCluster settings are not valid, so nothing can be rendered: {exc}"
        return preview
    preview.problems = override_problems(spec)
    if preview.problems:
        # Never show a vcluster.yaml the portal would refuse to install.
        return preview
    values = render_values(spec, cfg)
    preview.vcluster_yaml = to_yaml(values)
    if cfg.values_schema:
        preview.schema = cfg.values_schema
        try:
            preview.problems += schema_errors(values, load_validator(cfg.values_schema))
        except BackendError as exc:
            preview.problems.append(exc.message)
    return preview


def _without_variables(spec: dict[str, Any]) -> dict[str, Any]:
    # The variables are shown in their own table; repeating them in the spec adds only noise.
    return {key: value for key, value in spec.items() if key != "variables"}
