from django.urls import path

from demos import views

app_name = "demos"

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("demos/<uuid:public_id>/", views.demo_detail, name="detail"),
    path("simulated/<slug:cluster_name>/", views.simulated_app, name="simulated_app"),
]
