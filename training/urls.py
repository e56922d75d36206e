from __future__ import annotations

from django.urls import path

from training import views
from training.session_urls import urlpatterns as session_urlpatterns

app_name = "training"

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/upload/", views.dataset_upload, name="dataset_upload"),
    path("datasets/<uuid:uid>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<uuid:uid>/rename/", views.dataset_rename, name="dataset_rename"),
    path("datasets/<uuid:uid>/delete/", views.dataset_delete, name="dataset_delete"),
    path("datasets/<uuid:uid>/download/", views.dataset_download, name="dataset_download"),
    path("datasets/<uuid:uid>/samples/<int:index>.jpg", views.dataset_sample, name="dataset_sample"),
    path("models/", views.model_list, name="model_list"),
    path("models/new/", views.model_create, name="model_create"),
    path("models/<uuid:uid>/", views.model_detail, name="model_detail"),
    path("models/<uuid:uid>/rename/", views.model_rename, name="model_rename"),
    path("models/<uuid:uid>/weights/<str:kind>/", views.model_weights, name="model_weights"),
]

urlpatterns += session_urlpatterns
