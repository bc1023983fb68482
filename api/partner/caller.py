"""Who is calling: built from the verified access token and the ``pa-*`` agent headers."""

from __future__ import annotations

from api.context import RequestState
from parcours.ports import Caller


def caller_of(state: RequestState) -> Caller:
    draft = state.audit
    # The security check set client and organisation; the spec validated the agent headers.
    assert draft.client_id and draft.organisation, "caller_of() before authentication"
    return Caller(
        client_id=draft.client_id,
        organisation=draft.organisation,
        agent_nom=draft.agent_nom or "",
        agent_prenom=draft.agent_prenom or "",
        agent_identifiant=draft.agent_identifiant or "",
        perimetre=state.perimetre,
    )
