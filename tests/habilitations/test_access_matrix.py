"""The effective-access matrix: organisation type × role × partner operation → allowed?

Computed by the policy every call runs, for one agent per role in a département (CD33) and in
France Travail (FT-NAQ), each role holding what its organisation would normally give it. The
snapshot (access_matrix.json) lists every allowed triple: a change that grants an access the
snapshot does not list fails here, and so does one that silently removes an access.

To accept a change deliberately, regenerate the snapshot and review its diff:
    RELAIS_UPDATE_ACCESS_MATRIX=1 .venv/bin/pytest tests/habilitations/test_access_matrix.py
"""

from __future__ import annotations

import json
import os
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from habilitations import agents, designations, grants
from habilitations.models import CSSI, RGC_SUPPLEANT, RGC_TITULAIRE, RSSI, Agent, Souscription
from habilitations.policy import decide
from relais.core.tables import Client
from specs import SPECS_DIR, served_documents
from tests.habilitations.world import OPERATOR, RECORDER, organisation_id, request_id
from tests.support.hub import Hub

SNAPSHOT = Path(__file__).parent / "access_matrix.json"
UPDATE_VARIABLE = "RELAIS_UPDATE_ACCESS_MATRIX"
# (organisation type, organisation code, its client the calls go through).
ORGANISATIONS = (("CD", "CD33", "cd33"), ("FT", "FT-NAQ", "ft-naq"))
# role -> (designation or None, habilitated for the organisation's subscriptions?, technical?)
ROLES: dict[str, tuple[str | None, bool, bool]] = {
    "agent_habilite": (None, True, False),
    "agent_sans_habilitation": (None, False, False),
    "rgc_titulaire": (RGC_TITULAIRE, False, False),
    "rgc_suppleant": (RGC_SUPPLEANT, False, False),
    "rssi": (RSSI, False, False),
    "cssi": (CSSI, False, False),
    "identite_technique": (None, True, True),
}


@cache
def partner_operations() -> list[tuple[str, str, tuple[str, ...]]]:
    """(API name, operationId, required scopes) of every operation checked by token_info."""
    found = []
    for name, _, _ in served_documents():
        document = yaml.safe_load((SPECS_DIR / name).read_text(encoding="utf-8"))
        for item in (document.get("paths") or {}).values():
            for operation in item.values():
                if not isinstance(operation, dict) or "operationId" not in operation:
                    continue
                for requirement in operation.get("security") or []:
                    scopes = tuple(scope for values in requirement.values() for scope in values)
                    if scopes:
                        found.append((name.removesuffix(".yaml"), str(operation["operationId"]), scopes))
    return sorted(found)


def _populate(session: Session, code: str, client_id: str, now: Any) -> dict[str, str]:
    """One agent per role; returns role -> identifiant."""
    organisation = organisation_id(session, code)
    subscriptions = session.exec(select(Souscription).where(Souscription.organisation_id == organisation)).all()
    identifiants: dict[str, str] = {}
    for role, (designation, habilitated, technical) in ROLES.items():
        if designation == CSSI and code != "FT-NAQ":
            continue
        identifiant = f"MX-{role}"
        if technical:
            agent = agents.create_technical_identity(
                session,
                OPERATOR,
                client_id=client_id,
                nom="Matrice",
                identifiant=identifiant,
                now=now,
                recorder=RECORDER,
                request_id=request_id(),
            )
        else:
            agent = agents.create_agent(
                session,
                OPERATOR,
                organisation_id=organisation,
                identifiant=identifiant,
                nom="Matrice",
                statut_emploi="fonctionnaire",
                now=now,
                recorder=RECORDER,
                request_id=request_id(),
            )
        assert agent.id is not None
        if designation is not None:
            designations.designate(
                session,
                OPERATOR,
                organisation_id=organisation,
                agent_id=agent.id,
                role=designation,
                acte_engagement_le=date(2025, 1, 6) if designation.startswith("rgc") else None,
                now=now,
                recorder=RECORDER,
                request_id=request_id(),
            )
        if habilitated:
            for subscription in subscriptions:
                grants.grant_habilitation(
                    session,
                    OPERATOR,
                    agent_id=agent.id,
                    api=subscription.api,
                    scopes=subscription.scopes,
                    finalite="Matrice",
                    now=now,
                    recorder=RECORDER,
                    request_id=request_id(),
                )
        identifiants[role] = identifiant
    return identifiants


def effective_access(hub: Hub) -> list[str]:
    now = hub.clock.now
    with hub.services.database.transaction() as session:
        people = {code: _populate(session, code, client_id, now) for _, code, client_id in ORGANISATIONS}
    allowed = []
    with hub.services.database.session() as session:
        for kind, code, client_id in ORGANISATIONS:
            client = session.exec(select(Client).where(Client.client_id == client_id)).one()
            for role, identifiant in people[code].items():
                for api, operation, scopes in partner_operations():
                    decision = decide(
                        session,
                        client=client,
                        identifiant=identifiant,
                        api=api,
                        required_scopes=scopes,
                        now=now,
                        recorder=RECORDER,
                        request_id=request_id(),
                    )
                    if decision.allowed:
                        allowed.append(f"{kind} | {role} | {api} {operation}")
        session.rollback()
        assert session.exec(select(Agent).where(Agent.identifiant == "MX-rssi")).first() is not None
    return sorted(allowed)


@pytest.fixture(scope="module")
def matrix(module_hub: Hub) -> list[str]:
    return effective_access(module_hub)


def test_no_access_beyond_the_snapshot(matrix: list[str]) -> None:
    current = matrix
    if os.environ.get(UPDATE_VARIABLE):
        SNAPSHOT.write_text(json.dumps(current, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    granted = sorted(set(current) - set(expected))
    removed = sorted(set(expected) - set(current))
    how = f"If intended, regenerate it: {UPDATE_VARIABLE}=1 .venv/bin/pytest {Path(__file__).relative_to(Path.cwd())}"
    assert not granted, f"Accesses not in the snapshot {SNAPSHOT.name}: {granted}. {how}"
    assert not removed, f"Accesses of the snapshot no longer granted: {removed}. {how}"


def test_roles_alone_open_nothing(matrix: list[str]) -> None:
    """Independent of the snapshot: RGC, RSSI, CSSI and agents without grants reach no data."""
    assert matrix
    for line in matrix:
        role = line.split(" | ")[1]
        assert role in ("agent_habilite", "identite_technique"), line
