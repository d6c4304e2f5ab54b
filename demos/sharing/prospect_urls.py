"""Prospect pages: reached with a share link's token, no account."""

from django.urls import path

from demos.sharing import prospect

app_name = "prospect"

urlpatterns = [
    path("<str:token>/", prospect.landing, name="landing"),
    path("<str:token>/status/", prospect.status, name="status"),
    path("<str:token>/open/", prospect.open_demo, name="open"),
    path("<str:token>/more-time/", prospect.more_time, name="more_time"),
    path("<str:token>/kubeconfig/", prospect.kubeconfig, name="kubeconfig"),
]
