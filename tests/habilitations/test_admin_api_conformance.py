"""Schemathesis over the habilitations admin API with a real admin token (the hub operator's,
who may reach every operation): whatever it generates, each answer is documented, matches
its schema (responses are validated by the app too), and is never a 5xx.

The shared contract test only sees 401s here, since it sends a partner token.
"""

from __future__ import annotations

import schemathesis

from tests.habilitations.test_admin_api import make_staff
from tests.support.fuzzing import conforms
from tests.support.hub import Hub

MAX_EXAMPLES = 15


def test_every_admin_operation_conforms_for_an_authorised_caller(hub: Hub) -> None:
    staff = make_staff(hub)
    token = hub.admin_token(staff.operator)
    schema = schemathesis.openapi.from_asgi("/relais/habilitations/v1/openapi.json", hub.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 20
    for operation in operations:
        conforms(operation, lambda: {"Authorization": f"Bearer {token}"}, max_examples=MAX_EXAMPLES)
