"""The Plans page and its upgrade and manage buttons, mounted at ``plans/``."""

from django.urls import path

from billing.plans import views

app_name = "plans"

urlpatterns = [
    path("", views.index, name="index"),
    path("upgrade/<slug:slug>/", views.upgrade, name="upgrade"),
    path("manage/", views.manage, name="manage"),
    path("upgrade/done/<int:checkout_id>/", views.upgrade_success, name="upgrade_success"),
]
