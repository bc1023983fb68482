"""Remembered decisions never outlive a change: a revocation, a suspension, a block, a withdrawn
grant, subscription or client applies to the very next call, in this process and in any other
sharing the database, whatever wrote the change (the domain, plain SQL, another process)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from api.security import policy_caches
from habilitations import agent_states, grants, subscriptions
from habilitations.policy_cache import VersionedCache, current_version
from relais.core.tables import Client
from tests.audit.test_crash import ROOT, _free_port, _server
from tests.habilitations.world import (
    RECHERCHE_API,
    act,
    add_agent,
    events,
    grant,
    organisation_id,
    read,
    search,
)
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import AGENT, RECHERCHE, RECHERCHE_SCOPES, SECRET, TOKEN_URL


def _warm(hub: Hub, identifiant: str) -> None:
    """Allowed calls until one is judged from memory: the day's first call records the agent's
    activity (a change), the second is remembered, the third is answered from memory."""
    caches = policy_caches(hub.services.database)
    hits = caches.decisions.hits
    for _ in range(3):
        assert search(hub, identifiant, GIRONDE).status_code == 200
    assert caches.decisions.hits == hits + 1, "the third call should be judged from memory"


def _search_with(hub: Hub, token: str, identifiant: str) -> httpx.Response:
    headers = {**hub.headers(token), "pa-identifiant-agent": identifiant}
    return hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": GIRONDE.numero}, headers=headers
    )


def _disable_client(hub: Hub, _agent_id: int, _grant_id: str) -> None:
    with hub.services.database.transaction() as session:
        client = session.exec(select(Client).where(Client.client_id == "cd33")).one()
        client.enabled = False
        session.add(client)


def _withdraw_subscription(hub: Hub, _agent_id: int, _grant_id: str) -> None:
    with hub.services.database.session() as session:
        cd33 = organisation_id(session, "CD33")
    act(hub, subscriptions.set_subscription, organisation_id=cd33, api=RECHERCHE_API, scopes=["profil_accedant"])


CHANGES: list[tuple[str, Callable[[Hub, int, str], None], int, str | None]] = [
    (
        "agent révoqué",
        lambda hub, agent_id, _: act(hub, agent_states.revoke_agent, agent_id, motif="depart"),
        403,
        "agent_revoque",
    ),
    (
        "agent bloqué",
        lambda hub, agent_id, _: act(hub, agent_states.block_agent, agent_id, motif="usage_suspect"),
        403,
        "agent_bloque",
    ),
    (
        "habilitation révoquée",
        lambda hub, _, grant_id: act(hub, grants.revoke_habilitation, grant_id, motif="fin_de_mission"),
        403,
        "habilitation_absente",
    ),
    ("souscription retirée", _withdraw_subscription, 403, "hors_souscription"),
    ("client désactivé", _disable_client, 401, "invalid_token:client_disabled"),
]


@pytest.mark.parametrize(("label", "change", "status", "reason"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_change_applies_to_the_very_next_call(
    hub: Hub, label: str, change: Callable[[Hub, int, str], None], status: int, reason: str
) -> None:
    agent_id = add_agent(hub, "AGT-CACHE")
    grant_id = grant(hub, agent_id)
    _warm(hub, "AGT-CACHE")
    token = hub.token("cd33", RECHERCHE_SCOPES)  # taken before: a disabled client gets none
    change(hub, agent_id, grant_id)
    refused = _search_with(hub, token, "AGT-CACHE")
    assert refused.status_code == status, label
    assert events(hub)[-1].reason == reason


def test_a_change_made_in_plain_sql_applies_too(hub: Hub) -> None:
    """No domain function, no ORM: the database's own triggers bump the version."""
    agent_id = add_agent(hub, "AGT-SQL")
    grant(hub, agent_id)
    _warm(hub, "AGT-SQL")
    with hub.services.database.transaction() as session:
        before = current_version(session)
        session.execute(text("UPDATE agent SET etat = 'bloque' WHERE id = :id"), {"id": agent_id})
        assert current_version(session) == (before or 0) + 1
    assert search(hub, "AGT-SQL", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == "agent_bloque"


def test_a_change_rolled_back_leaves_the_version_alone(hub: Hub) -> None:
    with hub.services.database.session() as session:
        before = current_version(session)
    with pytest.raises(RuntimeError), hub.services.database.transaction() as session:
        session.execute(text("UPDATE agent SET etat = 'bloque'"))
        raise RuntimeError("abandon")
    with hub.services.database.session() as session:
        assert current_version(session) == before


def test_a_remembered_decision_lasts_one_day_at_most(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-JOUR")
    grant(hub, agent_id, date_fin=hub.clock.today() + timedelta(days=1))
    _warm(hub, "AGT-JOUR")
    hub.clock.now += timedelta(days=3)  # the grant ended meanwhile: nothing changed in the rows
    assert search(hub, "AGT-JOUR", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == "habilitation_expiree"


def test_a_refused_call_with_a_jeton_names_the_usager_in_its_event(hub: Hub) -> None:
    allowed = read(hub, "AGT-0042", GIRONDE)
    assert allowed.status_code == 200
    usager = events(hub)[-1].usager_id
    assert usager
    refused = read(hub, "AGT-INCONNU", GIRONDE)
    assert refused.status_code == 403
    event = events(hub)[-1]
    assert (event.reason, event.decision, event.usager_id) == ("agent_inconnu", "denied", usager)


def test_a_verified_token_still_expires(hub: Hub) -> None:
    token = hub.token("cd33", RECHERCHE_SCOPES)
    assert _search_with(hub, token, "AGT-0042").status_code == 200
    assert _search_with(hub, token, "AGT-0042").status_code == 200
    hub.clock.now += timedelta(seconds=hub.services.settings.token_ttl_seconds + 120)
    assert _search_with(hub, token, "AGT-0042").status_code == 401
    assert events(hub)[-1].reason == "invalid_token:expired"


def test_the_cache_is_bounded() -> None:
    cache: VersionedCache[int] = VersionedCache(max_entries=3)
    for key in range(10):
        cache.put(key, 1, key)
    assert cache.get(9, 1) == 9 and cache.get(0, 1) is None
    assert cache.get(9, 2) is None  # another version: a miss


def test_two_processes_sharing_one_database_both_see_a_revocation(hub: Hub, database_url: str, tmp_path: Path) -> None:
    """This process (the test's app) and a ``relais serve`` process each remember the agent's
    decision; the agent is revoked once; both refuse the next call."""
    agent_id = add_agent(hub, "AGT-DEUX")
    grant(hub, agent_id)
    _warm(hub, "AGT-DEUX")
    settings = hub.services.settings
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("RELAIS_")},
        # The same key file as the test's app: the dataset's NIRs are encrypted with it.
        "RELAIS_DATA_DIR": str(settings.data_dir),
        "RELAIS_DATABASE_URL": hub.services.database.url,
        "RELAIS_GENERATE_DEV_KEYS": "true",
        "RELAIS_LOG_LEVEL": "WARNING",
        "RELAIS_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "0",
        "RELAIS_AUDIT_DETECTION_INTERVAL_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
    }
    port = _free_port()
    with _server(env, port, tmp_path / "serve.log"), httpx.Client(base_url=f"http://127.0.0.1:{port}") as other:
        form = {"grant_type": "client_credentials", "client_id": "cd33", "client_secret": SECRET}
        answer = other.post(TOKEN_URL, data={**form, "scope": RECHERCHE_SCOPES}, timeout=30)
        assert answer.status_code == 200, answer.text
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}", **AGENT}
        headers["pa-identifiant-agent"] = "AGT-DEUX"
        url = f"{RECHERCHE}/par-numero-francetravail"
        body = {"numeroFranceTravail": GIRONDE.numero}
        for _ in range(3):  # the later ones from the other process's memory
            assert other.post(url, json=body, headers=headers, timeout=30).status_code == 200
        act(hub, agent_states.revoke_agent, agent_id, motif="depart")
        assert other.post(url, json=body, headers=headers, timeout=30).status_code == 403
        assert search(hub, "AGT-DEUX", GIRONDE).status_code == 403
    refusals = [e for e in events(hub) if e.agent_identifiant == "AGT-DEUX" and e.decision == "denied"]
    assert [event.reason for event in refusals] == ["agent_revoque", "agent_revoque"]
