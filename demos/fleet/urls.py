"""Routes of the fleet pages (sales managers and template admins), included by demos.urls."""

from django.urls import path

from demos.fleet import views

urlpatterns = [
    path("fleet/", views.overview, name="fleet"),
    path("fleet/bulk/", views.bulk_action, name="fleet_bulk"),
    path("fleet/activity/", views.activity, name="fleet_activity"),
    path("fleet/export/demos.csv", views.export_demos, name="fleet_export_demos"),
    path("fleet/export/visits.csv", views.export_visits, name="fleet_export_visits"),
]
