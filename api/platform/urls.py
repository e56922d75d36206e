"""Paths fixed by ultralytics' client (they hang off ``ULTRALYTICS_PLATFORM_URL``)."""

from django.urls import URLPattern, URLResolver, path

from api.platform import remote

urlpatterns: list[URLPattern | URLResolver] = []

# Remote training (api/platform/remote.py): ultralytics' platform callbacks.
urlpatterns += [
    path("webhooks/training/metrics", remote.training_metrics, name="platform_training_metrics"),
    path("webhooks/models/upload", remote.model_upload, name="platform_model_upload"),
    path("webhooks/models/upload/<str:token>", remote.upload_put, name="platform_upload_put"),
]
