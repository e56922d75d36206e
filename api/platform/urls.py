"""Paths fixed by ultralytics' client (they hang off ``ULTRALYTICS_PLATFORM_URL``)."""

from django.urls import URLPattern, URLResolver, path

from api.platform import datasets

urlpatterns: list[URLPattern | URLResolver] = []

# ul:// datasets: the export ultralytics asks for, and the signed NDJSON and images it names.
urlpatterns += [
    path("datasets/<str:owner>/<str:slug>/export", datasets.export, name="platform-dataset-export"),
    path("platform/datasets/<uuid:uid>/<slug:version>/dataset.ndjson", datasets.ndjson, name="platform-dataset-ndjson"),
    path(
        "platform/datasets/<uuid:uid>/<slug:version>/images/<int:index>",
        datasets.image,
        name="platform-dataset-image",
    ),
]
