from django.urls import include, path

from demos import views

app_name = "demos"

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("demos/<uuid:public_id>/", views.demo_detail, name="detail"),
    path("demos/", views.my_demos, name="my_demos"),
    path("demos/<uuid:public_id>/status/", views.demo_status, name="status"),
    path("demos/<uuid:public_id>/actions/<slug:action>/", views.demo_action, name="action"),
    path(
        "demos/<uuid:public_id>/snapshots/<int:snapshot_id>/restore/",
        views.restore,
        name="restore",
    ),
    path("templates/<slug:slug>/start/", views.start, name="start"),
    path("templates/accents.css", views.template_accents, name="template_accents"),
    path("simulated/<slug:cluster_name>/", views.simulated_app, name="simulated_app"),
    path("", include("demos.urls_fleet")),
    path("", include("demos.urls_share")),
]
