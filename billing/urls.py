from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.account, name="account"),
    path("statement.csv", views.statement, name="statement"),
    path("spending-cap/", views.monthly_spending_cap, name="monthly_spending_cap"),
    path("models/<int:model_id>/", views.model_billing, name="model_billing"),
    path("models/<int:model_id>/cost-report.csv", views.model_cost_report, name="model_cost_report"),
]
