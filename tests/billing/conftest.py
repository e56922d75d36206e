from __future__ import annotations

import pytest

from hubsite.models import User
from tests.factories import fund


@pytest.fixture
def funded_user(user: User) -> User:
    fund(user, 20_000_000)
    return user
