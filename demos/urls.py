"""The portal's pages under the `demos` namespace, one block per capability."""

from django.urls import include, path

from demos import branding, profiles
from demos.backends.simulated_app import simulated_app
from demos.sales import account, actions, catalog, more_time, opening, pages, team_pages

app_name = "demos"
urlpatterns = [
    path("", catalog.catalog, name="catalog"),
    path("templates/<slug:slug>/start/", catalog.start, name="start"),
    path("templates/accents.css", catalog.template_accents, name="template_accents"),
    path("demos/", pages.my_demos, name="my_demos"),
    path("demos/<uuid:public_id>/", pages.demo_detail, name="detail"),
    path("demos/<uuid:public_id>/status/", pages.demo_status, name="status"),
    path("demos/<uuid:public_id>/open/", opening.open_for_member, name="open"),
    path("demos/<uuid:public_id>/actions/<slug:action>/", actions.demo_action, name="action"),
    path(
        "demos/<uuid:public_id>/snapshots/<int:snapshot_id>/restore/",
        actions.restore,
        name="restore",
    ),
    # Team work: colleagues, handing a demo over, and a prospect's request for more time.
    path("demos/<uuid:public_id>/team/", team_pages.team_page, name="team"),
    path("demos/<uuid:public_id>/team/add/", team_pages.add_colleague, name="add_colleague"),
    path(
        "demos/<uuid:public_id>/team/<int:user_id>/remove/",
        team_pages.remove_colleague,
        name="remove_colleague",
    ),
    path("demos/<uuid:public_id>/hand-over/", team_pages.hand_over, name="hand_over"),
    path(
        "demos/<uuid:public_id>/more-time/dismiss/",
        more_time.dismiss,
        name="dismiss_more_time",
    ),
    path("account/", account.account, name="account"),
    # What prospect pages show (public, at URLs that change with what they serve).
    path("brand/logo/<str:version>.png", branding.logo, name="brand_logo"),
    path("brand/<str:version>.css", branding.stylesheet, name="brand_stylesheet"),
    path("people/photo/<str:signed>.png", profiles.photo, name="profile_photo"),
    path("simulated/<slug:cluster_name>/", simulated_app, name="simulated_app"),
    path("", include("demos.fleet.urls")),
    path("studio/", include("demos.studio.urls")),
    path("", include("demos.sharing.urls")),
]
