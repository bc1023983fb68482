"""Schemathesis against the test app: the runners of the suite's sweeps.

``conforms`` draws schema-valid cases of one operation and checks every answer is documented
and matches its schema, never a 5xx. ``first_5xx`` draws cases (valid ones, or invalid ones
with ``GenerationMode.NEGATIVE``), sends each with the caller's credentials, and names the
first case that got a 5xx. ``credentials`` gives the credentials each API takes. Every sweep
is derandomised (``repeatable``): a run is repeatable, a failure reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.audit.audit_api_support import cssi, rgc
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import AGENT, ALIMENTATION_SCOPES, ALL_SCOPES


def credentials(hub: Hub, base: str) -> dict[str, str]:
    """A valid bearer for the API at ``base`` and, for the partner APIs, a jeton and the agent."""
    if base.startswith("/relais/alimentation/"):
        return {"Authorization": f"Bearer {hub.token('ft-naq', ALIMENTATION_SCOPES)}", **AGENT}
    if base.startswith("/relais/audit/"):
        return cssi(hub)
    if base.startswith("/relais/"):
        return rgc(hub)
    token = hub.token(scope=" ".join(ALL_SCOPES))
    return {"Authorization": f"Bearer {token}", **AGENT, "ft-jeton-usager": hub.jeton(GIRONDE)}


def repeatable(max_examples: int) -> settings:
    """The sweeps' hypothesis settings: derandomised, no deadline (the app is called for real),
    no health check (slow data is expected), no example database between runs."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


def conforms(
    operation: schemathesis.APIOperation,
    headers: Callable[[], dict[str, str]],
    *,
    max_examples: int,
    prepare: Callable[[schemathesis.Case], None] = lambda case: None,
) -> None:
    """Every drawn case's answer is documented and matches its schema, never a 5xx (raises).

    Schema-valid is not always acceptable: a NIR with a wrong key, a wrong client secret or an
    unknown jeton match their schemas and are rightly refused (4xx), hence no acceptance check.
    ``headers`` is asked for each case (a jeton may be minted per call); ``prepare`` may adjust
    a case before it is sent.
    """

    @repeatable(max_examples)
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        prepare(case)
        case.call_and_validate(headers=headers(), excluded_checks=[positive_data_acceptance])

    check()


def first_5xx(
    operation: schemathesis.APIOperation,
    sent_with: dict[str, str],
    *,
    max_examples: int,
    mode: GenerationMode | None = None,
) -> str | None:
    """The first case of ``operation`` answered 5xx, in one line; None when none was.

    Derandomised, so a run is repeatable. Always a valid bearer, so that the input meets the
    checks past it; the other headers only where the case sent none (an invalid agent header
    the case drew stays invalid). An operation with nothing to draw (no parameter, no body,
    e.g. GET /moi in negative mode) has no case: None.
    """
    strategy = operation.as_strategy() if mode is None else operation.as_strategy(generation_mode=mode)

    @repeatable(max_examples)
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        sent = {key.lower() for key in (case.headers or {})} - {"authorization"}
        headers = {key: value for key, value in sent_with.items() if key.lower() not in sent}
        response = case.call(headers=headers)
        assert response.status_code < 500, (
            case.method,
            case.formatted_path,
            case.body,
            case.query,
            response.status_code,
            response.text[:200],
        )

    try:
        check()
    except Unsatisfiable:
        return None
    except AssertionError as failure:
        return str(failure).splitlines()[0][:300]
    return None
