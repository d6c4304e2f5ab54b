"""Forms salespeople fill in: starting a demo, restoring an archived one, and its team."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django import forms
from django.core.validators import RegexValidator

from demos.durations import format_duration
from demos.engine.lifecycle import MIN_LIFETIME
from demos.models import DemoTemplate

# Lifetimes offered when starting, cut to what the template allows. The template's own default
# and maximum are always offered too.
_LIFETIME_STEPS = tuple(
    timedelta(minutes=m) for m in (30, 60, 120, 240, 480, 24 * 60, 2 * 24 * 60, 7 * 24 * 60)
)


def new_start_token() -> str:
    """A random value the start form carries, so a double submit starts one demo, not two."""
    return secrets.token_urlsafe(16)


def lifetime_choices(template: DemoTemplate) -> list[tuple[int, str]]:
    options = {step for step in _LIFETIME_STEPS if step <= template.max_lifetime}
    options |= {template.default_lifetime, template.max_lifetime}
    return [
        (
            int(option.total_seconds()),
            format_duration(option) + (" (default)" if option == template.default_lifetime else ""),
        )
        for option in sorted(options)
        if MIN_LIFETIME <= option <= template.max_lifetime
    ]


class _StartTokenForm(forms.Form):
    start_token = forms.CharField(
        widget=forms.HiddenInput,
        validators=[RegexValidator(r"^[A-Za-z0-9_-]{16,64}$", "Reload the page and try again.")],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["start_token"].initial = new_start_token()


class StartDemoForm(_StartTokenForm):
    prospect_company = forms.CharField(
        label="Prospect company",
        max_length=100,
        required=False,
        help_text="Optional. The demo greets them by name.",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    prospect_name = forms.CharField(
        label="Prospect name",
        max_length=100,
        required=False,
        help_text="Optional.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    lifetime = forms.TypedChoiceField(
        label="Runs for", coerce=int, help_text="You can extend it later."
    )

    def __init__(self, *args: Any, template: DemoTemplate, **kwargs: Any) -> None:
        # Several start forms share the catalog page: prefix their ids so labels stay unique.
        kwargs.setdefault("auto_id", f"start-{template.slug}-%s")
        super().__init__(*args, **kwargs)
        self.template = template
        self.fields["lifetime"].choices = lifetime_choices(template)
        self.fields["lifetime"].initial = int(template.default_lifetime.total_seconds())

    @property
    def chosen_lifetime(self) -> timedelta:
        return timedelta(seconds=self.cleaned_data["lifetime"])


class RestoreSnapshotForm(_StartTokenForm):
    """Only the start token: restoring twice by a double click makes one demo."""


class PersonField(forms.CharField):
    """A portal person, picked from the list or typed as a name, email address or user name."""

    def clean(self, value: Any) -> Any:
        from demos.sales.team import find_person

        text = super().clean(value)
        person = find_person(text)
        if person is None:
            raise forms.ValidationError(
                f"Nobody in the portal goes by “{text}”. Pick a name from the list, or type "
                "their email address."
            )
        return person


class AddColleagueForm(forms.Form):
    person = PersonField(
        label="Colleague",
        max_length=300,
        help_text="Type a name or email address and pick from the list.",
        widget=forms.TextInput(attrs={"list": "portal-people", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "colleague-%s")
        super().__init__(*args, **kwargs)


class HandOverForm(forms.Form):
    person = PersonField(
        label="New owner",
        max_length=300,
        help_text="The demo becomes theirs, and counts as one of their demo slots.",
        widget=forms.TextInput(attrs={"list": "portal-people", "autocomplete": "off"}),
    )
    stay_on = forms.BooleanField(
        label="Keep the current owner on as a colleague",
        required=False,
        initial=True,
        help_text="They keep seeing and acting on the demo after handing it over.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "hand-over-%s")
        super().__init__(*args, **kwargs)
