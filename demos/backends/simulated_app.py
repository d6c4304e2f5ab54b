"""The sample app behind a simulated demo's live link.

Served on the demo's own host behind the gate, like a real demo's app (with DEMO_GATE off, at
/simulated/<cluster>/ on the portal, open to anyone with the address), and clearly labelled as
simulated. It shows only what the demo's own spec says, and answers 404 for unknown or paused
clusters, as a stopped app would.
"""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from demos.backends import get_backend


@require_GET
def simulated_app(request: HttpRequest, cluster_name: str) -> HttpResponse:
    if settings.DEMO_GATE and getattr(request, "demo_cluster", None) != cluster_name:
        # Behind the gate the app answers only on its own demo host (demos.gate.views.demo_app).
        raise Http404("No running simulated demo here.")
    backend = get_backend()
    state = backend.cluster_state(cluster_name) if backend.simulated else None
    if state is None:
        raise Http404("No running simulated demo here.")
    spec = state["spec"]
    return render(
        request,
        "demos/simulated_app.html",
        {
            "spec": spec,
            "cluster_name": cluster_name,
            "charts": spec.get("charts", []),
            "company": spec.get("variables", {}).get("PROSPECT_COMPANY", ""),
        },
    )
