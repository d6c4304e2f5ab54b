"""The salesperson's prospect-link routes (part of the `demos` namespace)."""

from django.urls import path

from demos.views import share

urlpatterns = [
    path("demos/<uuid:public_id>/share/", share.share_panel, name="share_panel"),
    path("demos/<uuid:public_id>/share/new/", share.create_link, name="create_link"),
    path(
        "demos/<uuid:public_id>/share/<int:link_id>/revoke/",
        share.revoke_link,
        name="revoke_link",
    ),
]
