"""The Plans page and its upgrade and manage buttons, mounted at ``plans/``."""

from django.urls import path

from billing.plans import views

app_name = "plans"

urlpatterns = [
    path("", views.index, name="index"),
]
