"""Request validators are compiled once per schema and reused (issue #12), with validation as
strict as before: the same call gets the same verdict and the same message every time."""

from __future__ import annotations

from sqlmodel import select

from api import validation
from relais.core.tables import Client
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import RECHERCHE

URL = f"{RECHERCHE}/par-numero-francetravail"


def test_repeated_calls_reuse_the_compiled_validators_and_keep_their_verdicts(hub: Hub) -> None:
    headers = hub.headers(hub.token())
    first_bad = hub.client.post(URL, json={"numeroFranceTravail": ["pas", "un", "numéro"]}, headers=headers)
    first_good = hub.client.post(URL, json={"numeroFranceTravail": GIRONDE.numero}, headers=headers)
    compiled = {key: id(validator) for key, (_, validator) in validation._COMPILED.items()}
    assert any(key[0] is validation.Draft4RequestValidator for key in compiled)

    for _ in range(3):
        bad = hub.client.post(URL, json={"numeroFranceTravail": ["pas", "un", "numéro"]}, headers=headers)
        good = hub.client.post(URL, json={"numeroFranceTravail": GIRONDE.numero}, headers=headers)
        assert (bad.status_code, bad.json()["codeRetour"]) == (400, "R997")
        assert bad.json()["message"] == first_bad.json()["message"]
        assert "numeroFranceTravail" in bad.json()["message"]
        assert (good.status_code, good.json()["codeRetour"]) == (200, "S001")
    assert first_good.status_code == 200
    # No new validator was built for the same operation: the body's and the agent headers'
    # validators came from the first calls.
    assert {key: id(validator) for key, (_, validator) in validation._COMPILED.items()} == compiled


def test_a_bad_agent_header_is_still_refused_after_a_good_one(hub: Hub) -> None:
    token = hub.token()
    good = hub.client.post(URL, json={"numeroFranceTravail": GIRONDE.numero}, headers=hub.headers(token))
    assert good.status_code == 200
    headers = {**hub.headers(token), "pa-identifiant-agent": ""}
    for _ in range(2):
        bad = hub.client.post(URL, json={"numeroFranceTravail": GIRONDE.numero}, headers=headers)
        assert bad.status_code == 400, bad.text


def test_the_client_read_once_per_call_still_sees_a_change_on_the_next_call(hub: Hub) -> None:
    # The client row is read once per call and handed to the habilitation decision: a
    # disabled client or a withdrawn scope must still stop the very next call.
    token = hub.token()
    payload = {"numeroFranceTravail": GIRONDE.numero}
    assert hub.client.post(URL, json=payload, headers=hub.headers(token)).status_code == 200
    with hub.services.database.transaction() as session:
        client = session.exec(select(Client).where(Client.client_id == "cd33")).one()
        client.scopes = [scope for scope in client.scopes if scope != "rechercheusager"]
        session.add(client)
    assert hub.client.post(URL, json=payload, headers=hub.headers(token)).status_code == 403
    with hub.services.database.transaction() as session:
        client = session.exec(select(Client).where(Client.client_id == "cd33")).one()
        client.scopes = [*client.scopes, "rechercheusager"]
        session.add(client)
    assert hub.client.post(URL, json=payload, headers=hub.headers(token)).status_code == 200
    with hub.services.database.transaction() as session:
        client = session.exec(select(Client).where(Client.client_id == "cd33")).one()
        client.enabled = False
        session.add(client)
    assert hub.client.post(URL, json=payload, headers=hub.headers(token)).status_code == 401
