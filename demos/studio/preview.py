"""Preview of content that is not saved yet: the editor's form as it stands, for sample values
of the personal variables the admin chooses.

The same rendering as the admin's preview (demos.catalog.preview) and as a real start:
`render_spec` on a sample demo, then the vCluster backend's `render_values`.
"""

from __future__ import annotations

from django import forms

from demos.catalog.preview import TemplatePreview, preview_template, sample_demo
from demos.models import DemoTemplate


class SampleForm(forms.Form):
    """Who the sample demo is for: the values personal variables take in the preview."""

    sample_prospect_company = forms.CharField(
        label="Prospect company", max_length=100, required=False, initial="Example Corp"
    )
    sample_prospect_name = forms.CharField(
        label="Prospect name", max_length=100, required=False, initial="Pat Prospect"
    )
    sample_owner_name = forms.CharField(
        label="Salesperson's name", max_length=100, required=False, initial="Sam Sales"
    )
    sample_owner_email = forms.EmailField(
        label="Salesperson's email", required=False, initial="sam@example.com"
    )

    def sample(self) -> dict[str, str]:
        values = self.cleaned_data if self.is_valid() else {}
        return {name: values.get(name) or str(self.fields[name].initial) for name in self.fields}


def preview_content(template: DemoTemplate, sample: dict[str, str]) -> TemplatePreview:
    """Render `template` (an unsaved copy holding the edited content) for the sample values,
    exactly as the admin's preview renders a saved template."""
    demo = sample_demo(template)
    demo.prospect_company = sample["sample_prospect_company"]
    demo.prospect_name = sample["sample_prospect_name"]
    first, _, last = sample["sample_owner_name"].partition(" ")
    demo.owner.first_name, demo.owner.last_name = first, last
    demo.owner.email = sample["sample_owner_email"]
    return preview_template(template=template, demo=demo)
