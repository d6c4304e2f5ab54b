"""The salesperson's prospect-link routes (part of the `demos` namespace)."""

from django.urls import path

from demos.sharing import views

urlpatterns = [
    path("demos/<uuid:public_id>/share/", views.share_panel, name="share_panel"),
    path("demos/<uuid:public_id>/share/new/", views.create_link, name="create_link"),
    path(
        "demos/<uuid:public_id>/share/<int:link_id>/revoke/",
        views.revoke_link,
        name="revoke_link",
    ),
]
