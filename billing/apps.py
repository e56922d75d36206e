from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_save

        from billing.signals import create_account

        post_save.connect(create_account, sender=settings.AUTH_USER_MODEL, dispatch_uid="billing_create_account")
