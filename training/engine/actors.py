"""Training actors. A training worker consumes one instance type's queue,
``train.<slug>``, one message at a time (``--processes 1 --threads 1``)."""

from __future__ import annotations

import dramatiq

from hubsite.jobs import light_actor
from training.evaluation import EVALUATE_MODEL_ACTOR, EVALUATION_TIME_LIMIT_MS
from training.exports import EXPORT_MODEL_ACTOR
from training.predictions import PREDICT_ACTOR, PREDICT_QUEUE
from training.presence import new_worker_id
from training.sessions import TRAIN_SESSION_ACTOR

# Sessions run for hours: no Dramatiq retries (the reaper requeues a lost session,
# failing it only after a bounded number of lost claims in a row without a completed
# epoch) and a time limit far above any session.
TRAINING_TIME_LIMIT_MS = 14 * 24 * 3600 * 1000
# A prediction takes well under a second once the model is loaded; the limit leaves
# room for loading it and for a first copy of the dataset (validation pictures), and
# ends before the user's one-at-a-time slot is freed (store.PENDING_SECONDS).
PREDICT_TIME_LIMIT_MS = 80 * 1000


@dramatiq.actor(
    actor_name=TRAIN_SESSION_ACTOR, queue_name="train.cpu", max_retries=0, time_limit=TRAINING_TIME_LIMIT_MS
)
def train_session(session_id: int) -> None:
    """Train one session. Sent by name through ``training.sessions.enqueue_training``,
    which routes it to the session's instance-type queue; this worker applies the
    options above to it. The worker id names this process, whose presence tells the
    reaper it is alive."""
    from training.engine.runner import run_session

    run_session(session_id, new_worker_id())


@light_actor(actor_name=EXPORT_MODEL_ACTOR, time_limit_ms=15 * 60 * 1000, max_retries=1)
def export_model(export_id: int) -> None:
    """Export a model's best weights to one of ``Export.Format``, on the light queue.
    Sent by name from ``training.exports.request_export``."""
    from training.engine.exports import run_export

    run_export(export_id)


# No retry: an evaluation that failed fails the same way again, and one stopped by the
# time limit would only run as long again (``give_up_lost_evaluations`` records it).
@light_actor(actor_name=EVALUATE_MODEL_ACTOR, time_limit_ms=EVALUATION_TIME_LIMIT_MS, max_retries=0)
def evaluate_model(evaluation_id: int) -> None:
    """Evaluate a model's best weights on its validation split, on the light queue. Sent
    by name from ``training.evaluation.request_evaluation``; never billed."""
    from training.engine.evaluation import run_evaluation

    run_evaluation(evaluation_id)


@dramatiq.actor(actor_name=PREDICT_ACTOR, queue_name=PREDICT_QUEUE, max_retries=0, time_limit=PREDICT_TIME_LIMIT_MS)
def predict_picture(token: str) -> None:
    """Run one Predict tab prediction, on its own queue so it never waits behind an
    export. No retries: the user is waiting, and can press again. Sent by name from
    ``training.predictions.services``."""
    from training.engine.predictions import run_prediction

    run_prediction(token)
