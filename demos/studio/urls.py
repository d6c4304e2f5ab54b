"""Routes of the template studio, included by demos.urls under `studio/`."""

from django.urls import path

from demos.studio import views

TEMPLATE = "templates/<slug:slug>/"

urlpatterns = [
    path("", views.template_list, name="studio"),
    path("new/", views.new_template, name="studio_new"),
    path("new/preview/", views.preview_new, name="studio_preview_new"),
    path("import/", views.import_page, name="studio_import"),
    path(TEMPLATE, views.template_detail, name="studio_template"),
    path(f"{TEMPLATE}edit/", views.edit_template, name="studio_edit"),
    path(f"{TEMPLATE}preview/", views.preview_template, name="studio_preview"),
    path(f"{TEMPLATE}publish/", views.publish, name="studio_publish"),
    path(f"{TEMPLATE}discard/", views.discard, name="studio_discard"),
    path(f"{TEMPLATE}availability/", views.availability, name="studio_availability"),
    path(f"{TEMPLATE}put-back/", views.put_back, name="studio_put_back"),
    path(f"{TEMPLATE}compare/", views.compare, name="studio_compare"),
    path(f"{TEMPLATE}export.yaml", views.export, name="studio_export"),
    path(f"{TEMPLATE}versions/<int:number>/roll-back/", views.roll_back, name="studio_roll_back"),
    path(f"{TEMPLATE}test-launch/", views.start_launch, name="studio_test_launch"),
    path(f"{TEMPLATE}test-launches/<uuid:public_id>/", views.launch_detail, name="studio_launch"),
    path(
        f"{TEMPLATE}test-launches/<uuid:public_id>/delete/",
        views.launch_delete,
        name="studio_launch_delete",
    ),
]
