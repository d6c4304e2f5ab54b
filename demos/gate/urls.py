"""The gate's pages on the portal's own host (`gate` namespace)."""

from django.urls import path

from demos.gate import views

app_name = "gate"

urlpatterns = [
    path("check/", views.check, name="check"),
    path("signin/", views.signin, name="signin"),
    path("waking/<uuid:public_id>/", views.waking, name="waking"),
]
