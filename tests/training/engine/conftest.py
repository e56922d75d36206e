from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import FAST_WORKER_ENV


@pytest.fixture
def fast_workers(settings: Any) -> dict[str, str]:
    """Fast heartbeat and reaper settings, here and (the dict returned) for workers."""
    settings.TRAINING_HEARTBEAT_INTERVAL_SECONDS = 1
    settings.TRAINING_HEARTBEAT_STALE_SECONDS = 5
    settings.WORKER_PRESENCE_INTERVAL_SECONDS = 1
    return dict(FAST_WORKER_ENV)
