"""The salesperson's prospect-link routes (part of the `demos` namespace)."""

from django.urls import path

from demos.sharing import views

urlpatterns = [
    path("demos/<uuid:public_id>/share/", views.share_panel, name="share_panel"),
    path("demos/<uuid:public_id>/share/new/", views.create_link, name="create_link"),
    path("demos/<uuid:public_id>/share/<int:link_id>/", views.show_link, name="share_link"),
    path(
        "demos/<uuid:public_id>/share/<int:link_id>/email/",
        views.email_link,
        name="email_link",
    ),
    path(
        "demos/<uuid:public_id>/share/<int:link_id>/revoke/",
        views.revoke_link,
        name="revoke_link",
    ),
]
