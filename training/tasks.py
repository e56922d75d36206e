"""The training app's actors, gathered here for django-dramatiq's autodiscovery.

Dataset validation lives in ``training.datasets.task``, the uploaded-weights check in
``training.weights.task``; exports and the training
engine's actors in ``training.engine``.
"""

from training.datasets.task import validate_dataset  # noqa: F401 - registers the actor
from training.engine.actors import train_session
from training.remote.uploads import check_remote_upload  # noqa: F401 - registers the actor
from training.weights.task import validate_weights  # noqa: F401 - registers the actor

__all__ = ["train_session"]
