"""Property-based API test against the served OpenAPI document (in-process ASGI): no 5xx, and
every response matches the spec. Few examples per operation keep it well under a minute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from breakwater.config import load_config
from breakwater.server.app import create_app

EXAMPLES_PER_OPERATION = 10
ENDLESS = {"/v1/realtime/sse"}  # an endless stream; covered by tests/realtime/test_sse.py
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_api_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    """No generated request gets a 5xx; status, content type and body match the spec."""
    config = load_config(None, env={}, overrides={"data": tmp_path / "data"})
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(config))
    tested = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        if operation.path in ENDLESS:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(checks=CHECKS)

        conforms()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /v1/auth/login" in tested and "POST /v1/sync/push" in tested
