from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"

    def ready(self) -> None:
        from billing.signals import balance_credited
        from training import payments  # noqa: F401 - connects the Pay Now receivers
        from training.sessions import resume_paused_after_top_up

        balance_credited.connect(resume_paused_after_top_up, dispatch_uid="training-resume-after-top-up")
