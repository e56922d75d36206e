"""Every endpoint in the OpenAPI schema, fed what schemathesis generates from it
(valid and invalid bodies, parameters and ids) with a live key of every scope:
nothing is a server error, and every error is the API's JSON shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from tests.api.conftest import KeyClient

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@pytest.fixture
def requests_keep_the_test_transaction(db: None) -> Iterator[None]:
    """As Django's test client does: a request ending must not close the connection
    that holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_is_a_server_error(case: Any, requests_keep_the_test_transaction: None, api_client: KeyClient) -> None:
    response = case.call(headers={"Authorization": f"Bearer {api_client.key}"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("code"), str), body
        assert isinstance(body.get("message"), str), body
