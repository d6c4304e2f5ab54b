"""'Start again like this' on an ended demo: the start form, filled in as that demo was."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.http import urlencode

from demos.models import ENDED, Demo, DemoTemplate
from demos.sales.forms import lifetime_choices


def flagged_message(template: DemoTemplate) -> str:
    """Why a template taken out of the catalog after failed starts cannot be started."""
    return (
        f"“{template.name}” is not available right now: its last demos failed to start, and its "
        "admins have been told. Pick another demo, or try again later."
    )


@dataclass(frozen=True)
class StartAgain:
    url: str  # the start page, pre-filled; "" when the template cannot be started now
    refusal: str  # why not, in words; "" when it can


def start_again(demo: Demo) -> StartAgain | None:
    """What an ended demo offers for starting it again; None for a demo that has not ended.

    Reads only the demo and its template (loaded with it): no query.
    """
    if demo.status not in ENDED or demo.is_test_launch:
        return None
    template = demo.template
    if not template.enabled or template.published_version_id is None:
        return StartAgain(
            "",
            f"“{template.name}” is no longer offered in the catalog, so this demo cannot be "
            "started again. Pick another demo in the catalog.",
        )
    if template.flagged_at is not None:
        return StartAgain("", flagged_message(template))
    typed = {"prospect_company": demo.prospect_company, "prospect_name": demo.prospect_name}
    seconds = int(demo.lifetime.total_seconds())
    if seconds in {value for value, _ in lifetime_choices(template)}:
        typed["lifetime"] = str(seconds)
    query = urlencode({name: value for name, value in typed.items() if value})
    url = reverse("demos:start", args=[template.slug])
    return StartAgain(f"{url}?{query}" if query else url, "")
