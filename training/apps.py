from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"

    def ready(self) -> None:
        from django.conf import settings

        from billing.signals import balance_credited
        from hubsite.jobs import register_periodic
        from training import payments  # noqa: F401 - connects the Pay Now receivers
        from training.datasets.task import give_up_lost_validations
        from training.evaluation import give_up_lost_evaluations
        from training.remote.silence import end_silent_sessions
        from training.remote.uploads import give_up_lost_remote_checks
        from training.sessions import reap_stale_sessions, resume_paused_after_top_up
        from training.weights.task import give_up_lost_checks

        balance_credited.connect(resume_paused_after_top_up, dispatch_uid="training-resume-after-top-up")
        register_periodic(
            "training.reap_stale_sessions",
            reap_stale_sessions,
            every=lambda: settings.TRAINING_REAPER_INTERVAL_SECONDS,
            at_boot=False,
        )
        register_periodic("training.give_up_lost_validations", give_up_lost_validations, every=lambda: 300)
        register_periodic("training.give_up_lost_checks", give_up_lost_checks, every=lambda: 300)
        register_periodic("training.give_up_lost_evaluations", give_up_lost_evaluations, every=lambda: 300)
        register_periodic("training.end_silent_remote_sessions", end_silent_sessions, every=lambda: 300)
        register_periodic("training.give_up_lost_remote_checks", give_up_lost_remote_checks, every=lambda: 300)
