"""The producer feed's territory: a producer writes only for usagers of its organisation's
territory, unless its client is national. ``ft-naq-regional`` is FT-NAQ's (territory: 33)
ordinary client; ``ft-naq`` is marked national. A refused write leaves nothing behind."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from parcours.tables import ConsequenceSanction, Orientation, Usager
from tests.parcours.test_alimentation import (
    CESSATION,
    INSCRIPTION,
    PRECONISATION,
    manquement,
    new_person,
    usager_body,
    usager_url,
)
from tests.support.hub import Hub
from tests.support.people import Person
from tests.support.scopes import ALIMENTATION_SCOPES


@pytest.fixture(scope="module")
def hub(module_hub: Hub) -> Hub:
    return module_hub


@pytest.fixture(scope="module")
def regional(hub: Hub) -> dict[str, str]:
    return hub.headers(hub.token("ft-naq-regional", ALIMENTATION_SCOPES))


@pytest.fixture(scope="module")
def national(hub: Hub) -> dict[str, str]:
    return hub.headers(hub.token("ft-naq", ALIMENTATION_SCOPES))


def _usager(hub: Hub, person: Person) -> Usager | None:
    with hub.services.database.session() as session:
        return session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).first()


def _refused_out_of_territory(response: object) -> None:
    status = getattr(response, "status_code", None)
    body = response.json() if status is not None else {}  # type: ignore[attr-defined]
    assert (status, body.get("codeErreur")) == (403, "HORS_TERRITOIRE"), body
    assert "93" not in body["message"]


def test_a_producer_registers_usagers_of_its_territory(hub: Hub, regional: dict[str, str]) -> None:
    person = new_person("33")
    response = hub.client.put(usager_url(person.numero), json=usager_body(person), headers=regional)
    assert response.status_code == 201
    inscription = hub.client.post(usager_url(person.numero, "/inscription"), json=INSCRIPTION, headers=regional)
    assert inscription.status_code == 200


def test_a_producer_cannot_register_an_usager_elsewhere(hub: Hub, regional: dict[str, str]) -> None:
    person = new_person("93")
    response = hub.client.put(usager_url(person.numero), json=usager_body(person), headers=regional)
    _refused_out_of_territory(response)
    assert _usager(hub, person) is None


def test_a_producer_cannot_move_its_usager_out_of_its_territory(hub: Hub, regional: dict[str, str]) -> None:
    person = new_person("33")
    assert hub.client.put(usager_url(person.numero), json=usager_body(person), headers=regional).status_code == 201
    moved = usager_body(replace(person, departement="93"))
    response = hub.client.put(usager_url(person.numero), json=moved, headers=regional)
    _refused_out_of_territory(response)
    usager = _usager(hub, person)
    assert usager is not None and usager.adresses[0]["codePostal"] == "33700"


def test_a_producer_cannot_take_over_an_usager_of_another_territory(
    hub: Hub, regional: dict[str, str], national: dict[str, str]
) -> None:
    person = new_person("93")
    assert hub.client.put(usager_url(person.numero), json=usager_body(person), headers=national).status_code == 201
    # Re-registering them with an address of its own territory does not make them its usager.
    moved = usager_body(replace(person, departement="33"))
    response = hub.client.put(usager_url(person.numero), json=moved, headers=regional)
    _refused_out_of_territory(response)
    usager = _usager(hub, person)
    assert usager is not None and usager.adresses[0]["codePostal"] == "93200"


def test_only_a_national_client_writes_for_an_usager_of_another_territory(
    hub: Hub, regional: dict[str, str], national: dict[str, str]
) -> None:
    person = new_person("93")
    assert hub.client.put(usager_url(person.numero), json=usager_body(person), headers=national).status_code == 201
    feed = [
        ("/inscription", INSCRIPTION),
        ("/orientations", PRECONISATION),
        ("/manquements", manquement("FT-PERIMETRE-0001")),
        ("/cessation", CESSATION),
    ]
    for suffix, body in feed:
        _refused_out_of_territory(hub.client.post(usager_url(person.numero, suffix), json=body, headers=regional))
    usager = _usager(hub, person)
    assert usager is not None and usager.contrat is None
    with hub.services.database.session() as session:
        assert session.get(ConsequenceSanction, "FT-PERIMETRE-0001") is None
        assert session.exec(select(Orientation).where(Orientation.usager_id == usager.id)).first() is None

    for suffix, body in feed:
        response = hub.client.post(usager_url(person.numero, suffix), json=body, headers=national)
        assert response.status_code in (200, 201), (suffix, response.text)
