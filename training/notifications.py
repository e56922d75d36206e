"""E-mails to the owner when a session ends."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from training.models import TrainingSession

logger = logging.getLogger(__name__)

SUBJECTS: dict[str, str] = {
    TrainingSession.Status.COMPLETED: "Training completed: {model}",
    TrainingSession.Status.FAILED: "Training failed: {model}",
    TrainingSession.Status.PAUSED: "Training paused, balance too low: {model}",
    TrainingSession.Status.STOPPED: "Training stopped: {model}",
}


def notify_session_ended(session_id: int) -> None:
    """Tell the owner how the session ended. A Stop the user pressed needs no mail."""
    session = TrainingSession.objects.select_related("model", "owner").get(pk=session_id)
    user_stopped = session.status == TrainingSession.Status.STOPPED and session.stop_requested_at is not None
    if session.status not in SUBJECTS or user_stopped:
        return
    link = settings.SITE_URL + reverse("training:model_detail", args=[session.model.uid])
    lines = [
        f"Your model {session.model.name} on {session.instance_type.name}: {session.get_status_display().lower()}.",
        f"Epochs completed: {session.model.epochs_completed} of {session.target_epochs}.",
    ]
    if session.status_detail:
        lines.append(session.status_detail)
    if session.failure_reason:
        lines.append(f"Reason: {session.failure_reason}")
    lines.append(f"Weights and logs: {link}")
    try:
        send_mail(
            # A header is one line: a name with line breaks would make the mail fail.
            SUBJECTS[session.status].format(model=" ".join(session.model.name.split())),
            "\n\n".join(lines),
            None,
            [session.owner.email],
        )
    except Exception:  # mail trouble must never undo a state change
        logger.exception("could not e-mail the owner of session %s", session_id)
