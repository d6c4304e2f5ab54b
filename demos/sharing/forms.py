"""The salesperson's form for a new prospect link."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.utils import timezone


class ShareLinkForm(forms.Form):
    FOLLOW, FIXED = "follow", "fixed"

    recipient = forms.CharField(
        max_length=200,
        label="For",
        help_text="Name and/or email of the prospect, so you can tell links apart.",
    )
    note = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional. Shown to the prospect on the demo's page.",
    )
    ends = forms.ChoiceField(
        choices=[(FOLLOW, "When the demo ends (also after extensions)"), (FIXED, "At a set time")],
        initial=FOLLOW,
        widget=forms.RadioSelect,
        label="Link works until",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Set time (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean(self) -> dict[str, object]:
        data = super().clean()
        if data.get("ends") == self.FIXED and not data.get("expires_at"):
            self.add_error("expires_at", "Choose when the link stops working.")
        return data

    def chosen_expiry(self) -> datetime | None:
        if self.cleaned_data.get("ends") != self.FIXED:
            return None
        value: datetime = self.cleaned_data["expires_at"]
        return value if timezone.is_aware(value) else timezone.make_aware(value, timezone.UTC)
