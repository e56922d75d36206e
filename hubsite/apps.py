from django.apps import AppConfig


class HubsiteConfig(AppConfig):
    name = "hubsite"
    verbose_name = "hubsite accounts"

    def ready(self) -> None:
        from hubsite import rate_limits  # noqa: F401 - connects the failed-login counter
