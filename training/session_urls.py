"""Training sessions and exports; part of the ``training`` namespace (see training/urls.py)."""

from django.urls import path

from training import session_views

urlpatterns = [
    path("train/", session_views.train_wizard, name="train_wizard"),
    path("models/<uuid:uid>/train/", session_views.train_page, name="train_page"),
    path("models/<uuid:uid>/train/panel/", session_views.panel, name="train_panel"),
    path("models/<uuid:uid>/train/estimate/", session_views.estimate, name="train_estimate"),
    path("models/<uuid:uid>/train/start/", session_views.start, name="train_start"),
    path("models/<uuid:uid>/train/pay-now/", session_views.pay_now, name="train_pay_now"),
    path("models/<uuid:uid>/train/stop/", session_views.stop, name="train_stop"),
    path("models/<uuid:uid>/train/charts/", session_views.charts, name="train_charts"),
    path("models/<uuid:uid>/exports/<str:export_format>/", session_views.export, name="export"),
    path(
        "models/<uuid:uid>/exports/<str:export_format>/download/",
        session_views.export_download,
        name="export_download",
    ),
]
