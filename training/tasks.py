"""The training app's actors, gathered here for django-dramatiq's autodiscovery.

Dataset validation and exports live in ``training.dataset_tasks``; the training
engine's actors in ``training.engine``.
"""

from training.dataset_tasks import validate_dataset  # noqa: F401 - registers the actor
from training.engine.actors import train_session

__all__ = ["train_session"]
