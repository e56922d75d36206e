from __future__ import annotations

import pytest
import redis
from django.conf import settings


@pytest.fixture(autouse=True)
def _no_predictions_kept(redis_client: redis.Redis) -> None:
    """Each test starts and ends with no pictures, jobs or queued messages in Redis
    (redis_client deletes the namespace's keys when the test ends)."""
    for key in redis_client.scan_iter(f"{settings.DRAMATIQ_NAMESPACE}*"):
        redis_client.delete(key)
    return
