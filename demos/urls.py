from django.urls import path

from demos import views

app_name = "demos"

urlpatterns = [
    path("", views.catalog, name="catalog"),
]
