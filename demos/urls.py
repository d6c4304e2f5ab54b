"""The portal's pages under the `demos` namespace, one block per capability."""

from django.urls import include, path

from demos.backends.simulated_app import simulated_app
from demos.sales import account, actions, catalog, opening, pages

app_name = "demos"
urlpatterns = [
    path("", catalog.catalog, name="catalog"),
    path("templates/<slug:slug>/start/", catalog.start, name="start"),
    path("templates/accents.css", catalog.template_accents, name="template_accents"),
    path("demos/", pages.my_demos, name="my_demos"),
    path("demos/<uuid:public_id>/", pages.demo_detail, name="detail"),
    path("demos/<uuid:public_id>/status/", pages.demo_status, name="status"),
    path("demos/<uuid:public_id>/open/", opening.open_for_member, name="open"),
    path("demos/<uuid:public_id>/actions/<slug:action>/", actions.demo_action, name="action"),
    path(
        "demos/<uuid:public_id>/snapshots/<int:snapshot_id>/restore/",
        actions.restore,
        name="restore",
    ),
    path("account/", account.account, name="account"),
    path("simulated/<slug:cluster_name>/", simulated_app, name="simulated_app"),
    path("", include("demos.fleet.urls")),
    path("studio/", include("demos.studio.urls")),
    path("", include("demos.sharing.urls")),
]
