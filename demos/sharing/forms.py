"""The salesperson's form for a new prospect link."""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from django import forms
from django.utils import timezone

from demos.sales.account import is_zone, zone_label


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
        choices=[(FOLLOW, "When the demo ends"), (FIXED, "At a set time")],
        initial=FOLLOW,
        widget=forms.RadioSelect,
        label="Ends",
        help_text="A link that ends with the demo also lasts through its extensions.",
    )
    # Required only for a set time, which `clean` checks: the browser cannot know the choice.
    expires_at = forms.DateTimeField(
        required=False,
        label="Time (UTC)",
        help_text="Needed for “At a set time”: when the link stops working, before the demo ends.",
        # The person's local time; static/js/portal.js fills in the two hidden fields below (the
        # moment in UTC, and the zone it was read in) and names the zone in use in the label.
        widget=forms.DateTimeInput(
            attrs={
                "type": "datetime-local",
                "data-utc-field": "expires_at_utc",
                "data-zone-field": "time_zone",
            }
        ),
    )
    expires_at_utc = forms.CharField(required=False, widget=forms.HiddenInput)
    time_zone = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: object, time_zone: str = "", **kwargs: object) -> None:
        """`time_zone`: the zone the person chose (demos.sales.account), in which a time sent
        without the browser's help is read; "" reads it in UTC, as the label then says."""
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.profile_zone = time_zone if is_zone(time_zone) else ""
        if self.profile_zone:
            self.fields["expires_at"].label = f"Time ({zone_label(self.profile_zone)})"

    def clean(self) -> dict[str, object]:
        data = super().clean()
        if data.get("ends") == self.FIXED:
            data["expires_at"] = self._moment(data)
        if data.get("ends") == self.FIXED and not data.get("expires_at"):
            self.add_error(
                "expires_at",
                "Choose when the link stops working, or pick “When the demo ends”.",
            )
        return data

    def _moment(self, data: dict[str, object]) -> datetime | None:
        """The chosen moment: the browser's UTC reading of the local time when it sent one,
        else the time as typed, in the person's zone (or UTC)."""
        sent_utc = str(data.get("expires_at_utc") or "")
        if sent_utc:
            try:
                moment = datetime.fromisoformat(sent_utc)
            except ValueError:
                moment = None
            return moment if moment and timezone.is_aware(moment) else None
        typed = data.get("expires_at")
        if not isinstance(typed, datetime):
            return None
        # Django read the field in the server's zone (UTC); the person meant their own.
        wall_clock = timezone.make_naive(typed, timezone.UTC) if timezone.is_aware(typed) else typed
        return timezone.make_aware(wall_clock, self._typed_in())

    def _typed_in(self) -> tzinfo:
        return ZoneInfo(self.profile_zone) if self.profile_zone else timezone.UTC

    def display_zone(self) -> tzinfo:
        """The zone to write times in for this person: their own, else the one their browser
        said it used, else UTC."""
        if self.profile_zone:
            return ZoneInfo(self.profile_zone)
        sent = str(getattr(self, "cleaned_data", {}).get("time_zone") or "")
        return ZoneInfo(sent) if is_zone(sent) else timezone.UTC

    def chosen_expiry(self) -> datetime | None:
        if self.cleaned_data.get("ends") != self.FIXED:
            return None
        value: datetime = self.cleaned_data["expires_at"]
        return value.astimezone(timezone.UTC)
