"""Routes of the fleet pages (sales managers and template admins), included by demos.urls."""

from django.urls import path

from demos.views import fleet

urlpatterns = [
    path("fleet/", fleet.overview, name="fleet"),
    path("fleet/bulk/", fleet.bulk_action, name="fleet_bulk"),
    path("fleet/activity/", fleet.activity, name="fleet_activity"),
    path("fleet/export/demos.csv", fleet.export_demos, name="fleet_export_demos"),
    path("fleet/export/visits.csv", fleet.export_visits, name="fleet_export_visits"),
]
