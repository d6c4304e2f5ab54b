from django.urls import include, path

from bench import views

urlpatterns = [
    path("bench/trivial/", views.trivial, name="bench_trivial"),
    path("bench/trivial-signed-in/", views.trivial_signed_in, name="bench_trivial_signed_in"),
    path("", include("portal.urls")),
]
