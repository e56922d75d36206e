from django.contrib import admin
from django.urls import include, path

from hubsite import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("home/", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("billing/stripe/", include("billing.stripe_urls")),
    path("billing/", include("billing.urls")),
    path("", include("training.urls")),
    path("admin/", admin.site.urls),
]
