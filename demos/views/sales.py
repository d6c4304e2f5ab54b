from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from demos.models import DemoTemplate


@login_required
def catalog(request: HttpRequest) -> HttpResponse:
    templates = DemoTemplate.objects.filter(enabled=True).prefetch_related("charts")
    return render(request, "demos/catalog.html", {"templates": templates})
