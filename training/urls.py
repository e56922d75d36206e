from __future__ import annotations

from django.urls import path

from training.views import compare, datasets, evaluation, exports, home, models, predict, train, weights

app_name = "training"
urlpatterns = [
    path("home/", home.home, name="home"),
    path("datasets/", datasets.dataset_list, name="dataset_list"),
    path("datasets/upload/", datasets.dataset_upload, name="dataset_upload"),
    path("datasets/<uuid:uid>/", datasets.dataset_detail, name="dataset_detail"),
    path("datasets/<uuid:uid>/rename/", datasets.dataset_rename, name="dataset_rename"),
    path("datasets/<uuid:uid>/delete/", datasets.dataset_delete, name="dataset_delete"),
    path("datasets/<uuid:uid>/validate/", datasets.dataset_validate_again, name="dataset_validate_again"),
    path("datasets/<uuid:uid>/download/", datasets.dataset_download, name="dataset_download"),
    path("datasets/<uuid:uid>/samples/<int:index>.jpg", datasets.dataset_sample, name="dataset_sample"),
    path("models/", models.model_list, name="model_list"),
    path("models/new/", models.model_create, name="model_create"),
    path("models/compare/", compare.model_compare, name="model_compare"),
    path("models/<uuid:uid>/", models.model_detail, name="model_detail"),
    path("models/<uuid:uid>/rename/", models.model_rename, name="model_rename"),
    path("models/<uuid:uid>/weights/<str:kind>/", models.model_weights, name="model_weights"),
    path("train/", train.train_wizard, name="train_wizard"),
    path("models/<uuid:uid>/train/", train.train_page, name="train_page"),
    path("models/<uuid:uid>/train/panel/", train.panel, name="train_panel"),
    path("models/<uuid:uid>/train/estimate/", train.estimate, name="train_estimate"),
    path("models/<uuid:uid>/train/start/", train.start, name="train_start"),
    path("models/<uuid:uid>/train/pay-now/", train.pay_now, name="train_pay_now"),
    path("models/<uuid:uid>/train/stop/", train.stop, name="train_stop"),
    path("models/<uuid:uid>/train/charts/", train.charts, name="train_charts"),
    path("models/<uuid:uid>/exports/<str:export_format>/", exports.export, name="export"),
    path("models/<uuid:uid>/exports/<str:export_format>/download/", exports.export_download, name="export_download"),
    path("models/<uuid:uid>/evaluation/", evaluation.evaluate, name="evaluate"),
    path(
        "models/<uuid:uid>/evaluation/pictures/<int:index>.jpg",
        evaluation.evaluation_picture,
        name="evaluation_picture",
    ),
    path(
        "models/<uuid:uid>/evaluation/summary.<str:file_format>",
        evaluation.evaluation_summary,
        name="evaluation_summary",
    ),
    path("models/<uuid:uid>/predict/", predict.predict_start, name="predict_start"),
    path("models/<uuid:uid>/predict/<slug:token>/", predict.predict_result, name="predict_result"),
    path("models/<uuid:uid>/predict/<slug:token>/again/", predict.predict_rerun, name="predict_rerun"),
    path("models/<uuid:uid>/predict/<slug:token>/image.jpg", predict.predict_image, name="predict_image"),
    path("models/<uuid:uid>/predict/<slug:token>/save/", predict.predict_save, name="predict_save"),
    path("models/<uuid:uid>/predictions/<int:pk>.jpg", predict.saved_prediction_image, name="saved_prediction_image"),
    path(
        "models/<uuid:uid>/predictions/<int:pk>/delete/",
        predict.saved_prediction_delete,
        name="saved_prediction_delete",
    ),
    path("weights/", weights.weights_list, name="weights_list"),
    path("weights/upload/", weights.weights_upload, name="weights_upload"),
    path("weights/<uuid:uid>/", weights.weights_detail, name="weights_detail"),
    path("weights/<uuid:uid>/delete/", weights.weights_delete, name="weights_delete"),
]
