"""Property-based conformance: schemathesis generates requests for every operation of
every spec, valid and invalid, and each answer must be in the spec and never a 5xx.

Every other check runs: status codes, content types, headers and bodies as documented,
negative data rejected. The app runs with response validation on, so a body that strays from its schema is a 500
and fails here too. Examples per operation are bounded to keep the suite fast.
"""

from __future__ import annotations

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from relais.app import api_specs
from specs import SPECS_DIR
from tests.e2e.conftest import Hub


def _served_spec(name: str) -> str:
    """Where the app serves a spec: ``openapi.json`` under the document's base path."""
    document = yaml.safe_load((SPECS_DIR / name).read_text(encoding="utf-8"))
    return f"{document['servers'][0]['url']}/openapi.json"


# Every contract in specs/, as the app serves them (see relais.app.api_specs).
SERVED_SPECS = [_served_spec(name) for name in api_specs()]
# The root API's spec is not served (see relais/app.py): load it from its file.
OPS_SPEC = "relais-ops-v1.yaml"
MAX_EXAMPLES = 40


@pytest.mark.parametrize("spec", [*SERVED_SPECS, OPS_SPEC])
def test_every_operation_conforms(hub: Hub, spec: str) -> None:
    token = hub.token()
    if spec == OPS_SPEC:
        schema = schemathesis.openapi.from_path(SPECS_DIR / OPS_SPEC)
        schema.app = hub.client.app
    else:
        schema = schemathesis.openapi.from_asgi(spec, hub.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert operations, f"no operation in {spec}"
    for operation in operations:
        strategy = operation.as_strategy()

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=strategy)
        def check(case: schemathesis.Case) -> None:
            # Schema-valid is not always acceptable: a NIR with a wrong key, a wrong client
            # secret or an unknown jeton match their schemas and are rightly refused (4xx).
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"},
                excluded_checks=[positive_data_acceptance],
            )

        check()
