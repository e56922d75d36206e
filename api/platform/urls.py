"""Paths fixed by ultralytics' client (they hang off ``ULTRALYTICS_PLATFORM_URL``)."""

from django.urls import URLPattern, URLResolver, path

from api.platform import datasets, remote

urlpatterns: list[URLPattern | URLResolver] = [
    # Remote training (remote.py): ultralytics' platform callbacks and checkpoint uploads.
    path("webhooks/training/metrics", remote.training_metrics, name="platform_training_metrics"),
    path("webhooks/models/upload", remote.model_upload, name="platform_model_upload"),
    path("webhooks/models/upload/<str:token>", remote.upload_put, name="platform_upload_put"),
    # ul:// datasets (datasets.py): the export ultralytics asks for, and the signed NDJSON
    # and images it names.
    path("datasets/<str:owner>/<str:slug>/export", datasets.export, name="platform-dataset-export"),
    path("platform/datasets/<uuid:uid>/<slug:version>/dataset.ndjson", datasets.ndjson, name="platform-dataset-ndjson"),
    path(
        "platform/datasets/<uuid:uid>/<slug:version>/images/<int:index>",
        datasets.image,
        name="platform-dataset-image",
    ),
]
