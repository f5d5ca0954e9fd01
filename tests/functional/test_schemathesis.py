"""schemathesis against the live OpenAPI spec of `predictor serve`: no 5xx, every answer as documented.

Operations are driven with hypothesis directly: schemathesis' pytest plugin (`from_fixture`) does not run
under pytest 9 here.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 20


def test_live_api_conforms_to_its_spec(server: str) -> None:
    api = schemathesis.openapi.from_url(f"{server}/docs/openapi.json")
    failures: list[str] = []
    tested = 0
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def conforms(case) -> None:
            case.call_and_validate(base_url=server, checks=CHECKS)

        try:
            conforms()
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {exc}"[:2000])
        tested += 1
    assert tested >= 20
    assert not failures, "\n\n".join(failures)
