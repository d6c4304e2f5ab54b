from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from demos.access import get_demo_for_user
from demos.models import DemoTemplate


@login_required
def catalog(request: HttpRequest) -> HttpResponse:
    templates = DemoTemplate.objects.filter(enabled=True).prefetch_related("charts")
    return render(request, "demos/catalog.html", {"templates": templates})


@login_required
def demo_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    demo = get_demo_for_user(request.user, public_id)
    return render(request, "demos/detail.html", {"demo": demo})
