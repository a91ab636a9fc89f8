"""schemathesis fuzzes the OpenAPI schema (valid and invalid requests, bounded): never a 5xx."""

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from serve_helpers import MODEL

FUZZ_CASES = 30  # per operation and mode


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_fuzzed_requests_never_get_a_server_error(server, mode):
    schema = schemathesis.openapi.from_url(server + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/models", "/health"}
    statuses: Counter = Counter()
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not len(operation.body):
            continue  # no body: nothing in the request can be made invalid (any path string is valid)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=FUZZ_CASES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
        )
        def call(case):
            if mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
                case.body["model"] = MODEL  # a valid request names the served model
            response = case.call(timeout=30)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error])

        call()
    assert statuses and max(statuses) < 500, statuses
    if mode is GenerationMode.NEGATIVE:
        assert set(statuses) == {400}  # every invalid body is refused as a bad request
