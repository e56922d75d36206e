from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from hubsite import views
from hubsite.rate_limits import PASSWORD_RESETS, limit_posts, refuse_after_login_failures

urlpatterns = [
    path("", views.landing, name="landing"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/signup/", views.signup, name="signup"),
    # Rate-limited ahead of the same views in django.contrib.auth.urls (hubsite/rate_limits.py).
    path("accounts/login/", refuse_after_login_failures(auth_views.LoginView.as_view()), name="login"),
    path(
        "accounts/password_reset/",
        limit_posts(*PASSWORD_RESETS)(auth_views.PasswordResetView.as_view()),
        name="password_reset",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("api.urls")),
    path("account/api-keys/", include("api.page_urls")),
    path("billing/stripe/", include("billing.stripe.urls")),
    path("billing/", include("billing.urls")),
    path("plans/", include("billing.plans.urls")),
    path("", include("training.urls")),
    path("admin/login/", refuse_after_login_failures(admin.site.login)),  # the admin's login, same limits
    path("admin/", admin.site.urls),
]
