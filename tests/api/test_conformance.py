"""Property-based conformance: schemathesis generates requests for every operation of
every spec, valid and invalid, and each answer must be in the spec and never a 5xx.

Every other check runs: status codes, content types, headers and bodies as documented,
negative data rejected. The app runs with response validation on, so a body that strays from its schema is a 500
and fails here too. Examples per operation are bounded to keep the suite fast.
"""

from __future__ import annotations

import pytest
import schemathesis

from specs import OPS_SPEC, SPECS_DIR, served_documents
from tests.support.fuzzing import conforms
from tests.support.hub import Hub
from tests.support.scopes import ALIMENTATION_SCOPES, ALL_SCOPES

# Every contract in specs/, as the app serves them: ``openapi.json`` under its base path.
SERVED_SPECS = [f"{base}/openapi.json" for _, _, base in served_documents()]
FEED_SPEC = "/relais/alimentation/v1/openapi.json"
# The root API's spec is not served (see relais/app.py): it is loaded from its file.
MAX_EXAMPLES = 40


@pytest.mark.parametrize("spec", [*SERVED_SPECS, OPS_SPEC])
def test_every_operation_conforms(hub: Hub, spec: str) -> None:
    # Every scope the contracts declare, so that generated calls reach the handlers; the
    # producer feed's scopes belong to a producer's client.
    if spec == FEED_SPEC:
        token = hub.token("ft-naq", ALIMENTATION_SCOPES)
    else:
        token = hub.token(scope=" ".join(ALL_SCOPES))
    if spec == OPS_SPEC:
        schema = schemathesis.openapi.from_path(SPECS_DIR / OPS_SPEC)
        schema.app = hub.client.app
    else:
        schema = schemathesis.openapi.from_asgi(spec, hub.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert operations, f"no operation in {spec}"
    for operation in operations:
        conforms(operation, lambda: {"Authorization": f"Bearer {token}"}, max_examples=MAX_EXAMPLES)
