"""Rendez-vous partenaire v1: create, update, cancel, list; the ACC rule and ACT380; every refusal.

The app and its migrated database are built once for the module (``shared_hub``, the same
construction as the kit's ``hub``, tests/support/hub.py); each test starts from the imported
dataset again (``hub`` empties the parcours tables and resets the clock), which keeps the
file well under a minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from sqlalchemy import delete
from sqlmodel import col, select

from audit.models import AuditEvent
from parcours import activites as activites_domain
from parcours import rendez_vous as rendez_vous_domain
from parcours.ports import Refused
from parcours.tables import (
    Activite,
    ConsequenceSanction,
    ContratEngagement,
    Orientation,
    RendezVous,
    Usager,
    UsagerOrganisation,
)
from relais.core.ratelimit import RateLimiter
from relais.core.tables import Organisation
from tests.support.fuzzing import conforms as conforms_to_contract
from tests.support.hub import Hub
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT, RATTACHE_EXPLICITE, Person
from tests.support.scopes import RDV_SCOPES, RECHERCHE, RECHERCHE_SCOPES, STATUT_SCOPES

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_tests_run = iter(range(1_000_000))


@pytest.fixture(scope="module")
def shared_hub(module_hub: Hub) -> Hub:
    return module_hub


@pytest.fixture
def hub(shared_hub: Hub) -> Hub:
    """The shared app, back to the imported dataset: no parcours rows, dataset attachments."""
    shared_hub.clock.now = START + timedelta(minutes=next(_tests_run))
    # The limiter counts calls per real second: tests run faster than a client may call.
    shared_hub.services.rate_limiter = RateLimiter()
    with shared_hub.services.database.transaction() as session:
        for table in (RendezVous, Activite, ContratEngagement, ConsequenceSanction, Orientation):
            session.exec(delete(table))
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == RATTACHE_EXPLICITE.numero)).one()
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        if session.get(UsagerOrganisation, (usager.id, cd33.id)) is None:
            assert cd33.id is not None
            session.add(UsagerOrganisation(usager_id=usager.id, organisation_id=cd33.id))
    return shared_hub


BASE = "/partenaire/rendez-vous-partenaire/v1"
RDV = f"{BASE}/rendez-vous"
RDV_USAGER = f"{BASE}/rendez-vous-usager"


def body(**overrides: Any) -> dict[str, Any]:
    """A creation body as rdv-insertion sends it (``id`` null, optional fields present)."""
    data: dict[str, Any] = {
        "id": None,
        "adresse": "1 esplanade Charles de Gaulle 33000 Bordeaux",
        "date": "2025-10-01T10:30:00.000+02:00",
        "duree": 45,
        "information": "Merci de vous munir d'une pièce d'identité",
        "initiateur": "PARTENAIRE",
        "libelleAdresse": "Département de la Gironde",
        "modaliteContact": "PHYSIQUE",
        "motif": "AUT",
        "organisme": {
            "code": "CD",
            "emailContact": "insertion@gironde.example",
            "idStructure": "33001",
            "libelleStructure": "Département de la Gironde",
            "telephoneContact": "0556000000",
        },
        "statut": "PRIS",
        "telephoneContactUsager": "0600000000",
        "theme": "RSA premier rendez-vous d'accompagnement",
        "typeReception": "IND",
        "interlocuteur": {"email": "agent@gironde.example", "nom": "Martin", "prenom": "Claire"},
    }
    data.update(overrides)
    return data


class Api:
    """Calls as one client with one access token (its scopes and Rechercher usager's)."""

    def __init__(self, hub: Hub, client: str = "cd33", scope: str = RDV_SCOPES) -> None:
        self.hub = hub
        self.client = client
        self.token = hub.token(client, f"{scope} {RECHERCHE_SCOPES}")
        self._jetons: dict[str, str] = {}

    def jeton(self, person: Person) -> str:
        if person.numero not in self._jetons:
            response = self.hub.client.post(
                f"{RECHERCHE}/par-numero-francetravail",
                json={"numeroFranceTravail": person.numero},
                headers=self.hub.headers(self.token),
            )
            assert response.json()["codeRetour"] == "S001", response.text
            self._jetons[person.numero] = response.json()["jetonUsager"]
        return self._jetons[person.numero]

    def headers(self, person: Person) -> dict[str, str]:
        return self.hub.headers(self.token, **{"ft-jeton-usager": self.jeton(person)})

    def creer(self, person: Person, **overrides: Any) -> httpx.Response:
        return self.hub.client.post(RDV, json=body(**overrides), headers=self.headers(person))

    def modifier(self, person: Person, data: dict[str, Any]) -> httpx.Response:
        return self.hub.client.put(RDV, json=data, headers=self.headers(person))

    def supprimer(self, person: Person, identifiant: str) -> httpx.Response:
        return self.hub.client.delete(f"{RDV}/{identifiant}", headers=self.headers(person))

    def lister(self, person: Person) -> httpx.Response:
        return self.hub.client.get(RDV_USAGER, headers=self.headers(person))

    def liste(self, person: Person) -> list[dict[str, Any]]:
        response = self.lister(person)
        if response.status_code == 204:
            return []
        assert response.status_code == 200, response.text
        return list(response.json())


@pytest.fixture
def api(hub: Hub) -> Api:
    return Api(hub)


def usager_id(hub: Hub, person: Person) -> str:
    with hub.services.database.session() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).one()
        return usager.id


def organisation_id(hub: Hub, code: str) -> int:
    with hub.services.database.session() as session:
        organisation = session.exec(select(Organisation).where(Organisation.code == code)).one()
        assert organisation.id is not None
        return organisation.id


def ouvrir_act380(hub: Hub, person: Person, organisation: str = "CD33") -> str:
    """What a decided orientation does: the first accompaniment appointment is to be taken."""
    uid, oid = usager_id(hub, person), organisation_id(hub, organisation)
    with hub.services.database.transaction() as session:
        activite = activites_domain.ouvrir(
            session,
            code="ACT380",
            organisation_id=oid,
            usager_id=uid,
            sujet=f"accompagnement:{uid}",
            now=hub.clock.now,
            attributs=[("motif", "ACC")],
        )
        return activite.id


def act380(hub: Hub, person: Person) -> list[Activite]:
    """The usager's ACT380 rows, as the database holds them (open and closed)."""
    sujet = f"accompagnement:{usager_id(hub, person)}"
    with hub.services.database.session() as session:
        query = (
            select(Activite)
            .where(Activite.sujet == sujet, Activite.code_activite == "ACT380")
            .order_by(col(Activite.date_creation))
        )
        return list(session.exec(query))


class TestCreerEtConsulter:
    def test_creation_answers_202_with_the_new_id_and_the_rendez_vous(self, api: Api) -> None:
        response = api.creer(GIRONDE)
        assert response.status_code == 202, response.text
        created = response.json()
        assert created["id"]
        expected = body()
        del expected["id"]
        assert {key: value for key, value in created.items() if key != "id"} == expected

    def test_listing_shows_past_and_upcoming_by_date(self, api: Api) -> None:
        later = api.creer(GIRONDE, date="2031-01-15T09:00:00Z").json()
        earlier = api.creer(GIRONDE, date="2024-03-01T14:00:00+01:00").json()
        listing = api.liste(GIRONDE)
        assert [rdv["id"] for rdv in listing] == [earlier["id"], later["id"]]
        # Dates come back in Paris time with their offset.
        assert listing[0]["date"] == "2024-03-01T14:00:00.000+01:00"
        assert listing[1]["date"] == "2031-01-15T10:00:00.000+01:00"

    def test_dates_before_1911_come_back_in_utc(self, api: Api) -> None:
        # Paris was then 9 min 21 s ahead of Greenwich, which RFC 3339 cannot write.
        created = api.creer(GIRONDE, date="1905-06-01T10:00:00Z").json()
        assert created["date"] == "1905-06-01T10:00:00.000Z"

    def test_listing_is_204_when_the_usager_has_none(self, api: Api) -> None:
        response = api.lister(GIRONDE)
        assert response.status_code == 204
        assert response.content == b""

    def test_listing_is_per_usager(self, api: Api) -> None:
        api.creer(GIRONDE)
        assert api.lister(GIRONDE_SANS_CONTRAT).status_code == 204

    def test_a_date_without_offset_is_refused(self, api: Api) -> None:
        response = api.creer(GIRONDE, date="2025-07-01T09:15:00")
        assert response.status_code == 400
        assert response.json()["message"] == "Requête invalide : champ date invalide"

    def test_minimal_body_of_the_sip_postman_and_optional_fields_absent(self, api: Api) -> None:
        minimal = {
            "organisme": {"code": "CD", "emailContact": "insertion@gironde.example"},
            "motif": "AUT",
            "date": "2025-10-01T10:30:00.000Z",
            "modaliteContact": "VISIO",
            "typeReception": "COL",
            "statut": "PRIS",
            "libelleAdresse": "Visio",
            "adresse": "https://visio.example",
        }
        response = api.hub.client.post(RDV, json=minimal, headers=api.headers(GIRONDE))
        assert response.status_code == 202, response.text
        created = response.json()
        assert created["interlocuteur"] is None
        assert created["organisme"]["idStructure"] is None
        assert created["duree"] is None

    def test_an_id_sent_with_a_creation_is_ignored(self, api: Api) -> None:
        created = api.creer(GIRONDE, id="mon-id-a-moi").json()
        assert created["id"] != "mon-id-a-moi"

    def test_other_attached_organisations_see_the_rendez_vous(self, hub: Hub, api: Api) -> None:
        created = api.creer(RATTACHE_EXPLICITE).json()
        listing = Api(hub, "cd93").liste(RATTACHE_EXPLICITE)
        assert [rdv["id"] for rdv in listing] == [created["id"]]

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"motif": "XYZ"}, "motif"),
            ({"statut": "FINI"}, "statut"),
            ({"modaliteContact": "PIGEON"}, "modaliteContact"),
            ({"typeReception": "GRP"}, "typeReception"),
            ({"initiateur": "ROBOT"}, "initiateur"),
            ({"organisme": {"code": "XX"}}, "organisme"),
            ({"date": "demain"}, "date"),
            ({"duree": -5}, "duree"),
            ({"theme": "x" * 256}, "theme"),
        ],
    )
    def test_invalid_values_are_400_and_nothing_is_written(
        self, api: Api, overrides: dict[str, Any], field: str
    ) -> None:
        response = api.creer(GIRONDE, **overrides)
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["codeHttp"] == 400
        assert error["codeErreur"] in ("REQUETE_INVALIDE", "RDV_INVALIDE")
        assert field in error["message"]
        assert api.lister(GIRONDE).status_code == 204

    def test_missing_required_field_is_400(self, api: Api) -> None:
        data = body()
        del data["motif"]
        response = api.hub.client.post(RDV, json=data, headers=api.headers(GIRONDE))
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        assert "motif" in response.json()["message"]

    @pytest.mark.parametrize("date", ["1850-01-01T10:00:00Z", "2025-13-01T10:00:00Z"])
    def test_out_of_range_dates_are_400(self, api: Api, date: str) -> None:
        response = api.creer(GIRONDE, date=date)
        assert response.status_code == 400
        assert "date" in response.json()["message"]

    def test_nul_characters_are_refused(self, api: Api) -> None:
        response = api.creer(GIRONDE, theme="a\x00b")
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        assert response.json()["message"] == "Requête invalide : champ theme invalide : caractère non autorisé"
        assert api.liste(GIRONDE) == []


class TestModifier:
    def test_put_replaces_the_rendez_vous(self, api: Api) -> None:
        created = api.creer(GIRONDE).json()
        changed = body(
            id=created["id"],
            statut="MODIFIE",
            date="2025-10-02T11:00:00+02:00",
            interlocuteur=None,
            modaliteContact="TELEPHONE",
        )
        response = api.modifier(GIRONDE, changed)
        assert response.status_code == 200, response.text
        assert response.json()["statut"] == "MODIFIE"
        assert response.json()["interlocuteur"] is None
        [listed] = api.liste(GIRONDE)
        assert listed == response.json()
        assert listed["date"] == "2025-10-02T11:00:00.000+02:00"

    def test_unknown_id_is_id_non_reconnu(self, api: Api) -> None:
        response = api.modifier(GIRONDE, body(id="inconnu"))
        assert response.status_code == 400
        assert response.json() == {
            "codeHttp": 400,
            "codeErreur": "ID_NON_RECONNU",
            "message": "Il n'existe pas de rdv pour l'id et l'utilisateur indiqué",
        }

    def test_rendez_vous_of_another_usager_is_id_non_reconnu(self, api: Api) -> None:
        other = api.creer(GIRONDE_SANS_CONTRAT).json()
        response = api.modifier(GIRONDE, body(id=other["id"], statut="ANNULE"))
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "ID_NON_RECONNU"
        assert api.liste(GIRONDE_SANS_CONTRAT)[0]["statut"] == "PRIS"

    def test_id_is_required(self, api: Api) -> None:
        response = api.modifier(GIRONDE, body(id=None))
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"

    def test_only_the_booking_organisation_modifies_it(self, hub: Hub, api: Api) -> None:
        created = api.creer(RATTACHE_EXPLICITE).json()
        cd93 = Api(hub, "cd93")
        response = cd93.modifier(RATTACHE_EXPLICITE, body(id=created["id"], statut="EFFECTUE"))
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "RDV_AUTRE_STRUCTURE"
        response = cd93.supprimer(RATTACHE_EXPLICITE, created["id"])
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "RDV_AUTRE_STRUCTURE"
        assert api.liste(RATTACHE_EXPLICITE)[0]["statut"] == "PRIS"


class TestSupprimer:
    def test_delete_cancels_and_keeps_it_in_the_history(self, hub: Hub, api: Api) -> None:
        created = api.creer(GIRONDE).json()
        response = api.supprimer(GIRONDE, created["id"])
        assert response.status_code == 204
        assert response.content == b""
        [listed] = api.liste(GIRONDE)
        assert listed["id"] == created["id"]
        assert listed["statut"] == "ANNULE"
        with hub.services.database.session() as session:
            row = session.get(RendezVous, created["id"])
            assert row is not None and row.statut == "ANNULE"

    def test_delete_again_is_a_no_op(self, api: Api) -> None:
        created = api.creer(GIRONDE).json()
        assert api.supprimer(GIRONDE, created["id"]).status_code == 204
        assert api.supprimer(GIRONDE, created["id"]).status_code == 204
        assert api.liste(GIRONDE)[0]["statut"] == "ANNULE"

    def test_unknown_or_foreign_id_is_id_non_reconnu(self, api: Api) -> None:
        assert api.supprimer(GIRONDE, "inconnu").json()["codeErreur"] == "ID_NON_RECONNU"
        other = api.creer(GIRONDE_SANS_CONTRAT).json()
        response = api.supprimer(GIRONDE, other["id"])
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "ID_NON_RECONNU"
        assert api.liste(GIRONDE_SANS_CONTRAT)[0]["statut"] == "PRIS"


class TestPremierRendezVousAccompagnement:
    def test_a_second_acc_is_refused_and_not_written(self, api: Api) -> None:
        assert api.creer(GIRONDE, motif="ACC").status_code == 202
        response = api.creer(GIRONDE, motif="ACC", date="2025-11-01T10:00:00Z")
        assert response.status_code == 409
        assert response.json()["codeErreur"] == "MOTIF_ACC_DEJA_UTILISE"
        assert "AUT" in response.json()["message"]
        assert len(api.liste(GIRONDE)) == 1
        # Later appointments take AUT.
        assert api.creer(GIRONDE, motif="AUT", date="2025-11-01T10:00:00Z").status_code == 202

    def test_changing_another_rendez_vous_to_acc_is_refused(self, api: Api) -> None:
        api.creer(GIRONDE, motif="ACC")
        other = api.creer(GIRONDE, motif="AUT").json()
        response = api.modifier(GIRONDE, body(id=other["id"], motif="ACC"))
        assert response.status_code == 409
        assert response.json()["codeErreur"] == "MOTIF_ACC_DEJA_UTILISE"

    def test_the_acc_rendez_vous_itself_can_be_updated(self, api: Api) -> None:
        first = api.creer(GIRONDE, motif="ACC").json()
        for statut in ("MODIFIE", "EFFECTUE"):
            response = api.modifier(GIRONDE, body(id=first["id"], motif="ACC", statut=statut))
            assert response.status_code == 200, response.text

    def test_a_cancelled_acc_frees_the_motif(self, api: Api) -> None:
        first = api.creer(GIRONDE, motif="ACC").json()
        api.supprimer(GIRONDE, first["id"])
        assert api.creer(GIRONDE, motif="ACC").status_code == 202
        # Un-cancelling the first one would make two.
        response = api.modifier(GIRONDE, body(id=first["id"], motif="ACC", statut="PRIS"))
        assert response.status_code == 409

    def test_acc_is_per_usager(self, api: Api) -> None:
        assert api.creer(GIRONDE, motif="ACC").status_code == 202
        assert api.creer(GIRONDE_SANS_CONTRAT, motif="ACC").status_code == 202

    def test_booking_the_first_acc_closes_act380(self, hub: Hub, api: Api) -> None:
        activite_id = ouvrir_act380(hub, GIRONDE)
        api.creer(GIRONDE, motif="AUT")
        assert act380(hub, GIRONDE)[0].closed_at is None
        api.creer(GIRONDE, motif="ACC")
        [activite] = act380(hub, GIRONDE)
        assert activite.id == activite_id
        assert activite.closed_at is not None
        assert activite.closed_by == "rendez-vous"

    def test_act380_of_another_usager_stays_open(self, hub: Hub, api: Api) -> None:
        ouvrir_act380(hub, GIRONDE_SANS_CONTRAT)
        api.creer(GIRONDE, motif="ACC")
        assert act380(hub, GIRONDE_SANS_CONTRAT)[0].closed_at is None

    def test_cancelling_the_first_acc_reopens_act380(self, hub: Hub, api: Api) -> None:
        ouvrir_act380(hub, GIRONDE)
        first = api.creer(GIRONDE, motif="ACC").json()
        hub.clock.now += timedelta(days=1)
        api = Api(hub)
        assert api.supprimer(GIRONDE, first["id"]).status_code == 204
        closed, reopened = act380(hub, GIRONDE)
        assert closed.closed_at is not None
        assert reopened.closed_at is None
        assert reopened.organisation_id == closed.organisation_id
        assert reopened.attributs == [{"nom": "motif", "valeur": "ACC"}]
        # Booking again closes it again.
        api.creer(GIRONDE, motif="ACC")
        assert all(activite.closed_at is not None for activite in act380(hub, GIRONDE))

    def test_after_a_reorientation_the_new_structure_books_its_own_acc(self, hub: Hub, api: Api) -> None:
        ouvrir_act380(hub, GIRONDE)
        first = api.creer(GIRONDE, motif="ACC").json()
        api.modifier(GIRONDE, body(id=first["id"], motif="ACC", statut="EFFECTUE"))
        # Later, a new orientation opens a new ACT380 (the orientation rules do it).
        hub.clock.now += timedelta(days=90)
        api = Api(hub)
        ouvrir_act380(hub, GIRONDE)
        assert api.creer(GIRONDE, motif="ACC", date="2026-01-10T10:00:00Z").status_code == 202
        assert all(activite.closed_at is not None for activite in act380(hub, GIRONDE))
        # The old ACC can still be updated; a third ACC is refused.
        assert api.modifier(GIRONDE, body(id=first["id"], motif="ACC", statut="EFFECTUE")).status_code == 200
        assert api.creer(GIRONDE, motif="ACC").status_code == 409


class TestRefusals:
    def test_scopes_are_required(self, hub: Hub) -> None:
        api = Api(hub, scope=STATUT_SCOPES)
        for response in (api.creer(GIRONDE), api.lister(GIRONDE), api.supprimer(GIRONDE, "x")):
            assert response.status_code == 403
            assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"

    def test_jeton_is_required(self, hub: Hub, api: Api) -> None:
        headers = hub.headers(api.token)
        response = hub.client.post(RDV, json=body(), headers=headers)
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_ABSENT"
        response = hub.client.get(RDV_USAGER, headers={**headers, "ft-jeton-usager": "abc"})
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_INVALIDE"

    def test_usager_no_longer_attached_is_403(self, hub: Hub, api: Api) -> None:
        headers = api.headers(RATTACHE_EXPLICITE)
        key = (usager_id(hub, RATTACHE_EXPLICITE), organisation_id(hub, "CD33"))
        with hub.services.database.transaction() as session:
            session.delete(session.get(UsagerOrganisation, key))
        for response in (
            hub.client.post(RDV, json=body(), headers=headers),
            hub.client.get(RDV_USAGER, headers=headers),
        ):
            assert response.status_code == 403
            assert response.json()["codeErreur"] == "USAGER_NON_RATTACHE"

    def test_refusals_are_audited_with_their_code(self, hub: Hub, api: Api) -> None:
        api.creer(GIRONDE, motif="ACC")
        api.creer(GIRONDE, motif="ACC")
        with hub.services.database.session() as session:
            event = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
        assert event is not None
        assert event.http_status == 409
        assert event.reason == "conflict:MOTIF_ACC_DEJA_UTILISE"
        assert event.usager_id == usager_id(hub, GIRONDE)


class TestImport:
    """``relais import`` records rendez-vous through ``enregistrer_rendez_vous``."""

    def _enregistrer(self, hub: Hub, person: Person, organisation: str, payload: dict[str, Any]) -> RendezVous:
        uid, oid = usager_id(hub, person), organisation_id(hub, organisation)
        with hub.services.database.transaction() as session:
            usager = session.get(Usager, uid)
            org = session.get(Organisation, oid)
            assert usager is not None and org is not None
            return rendez_vous_domain.enregistrer_rendez_vous(session, usager, org, payload, now=hub.clock.now)

    def test_an_imported_id_is_kept_and_a_rerun_replaces(self, hub: Hub, api: Api) -> None:
        payload = {"id": "EDITEUR-0001", "date": "2025-05-01T09:00:00", "motif": "ORI", "statut": "EFFECTUE"}
        self._enregistrer(hub, GIRONDE, "CD33", payload)
        self._enregistrer(hub, GIRONDE, "CD33", {**payload, "statut": "ABSENT"})
        [listed] = api.liste(GIRONDE)
        assert listed["id"] == "EDITEUR-0001"
        assert listed["statut"] == "ABSENT"
        # An imported date without offset is Paris time.
        assert listed["date"] == "2025-05-01T09:00:00.000+02:00"
        # Without an organisme, the booking organisation's.
        assert listed["organisme"]["code"] == "CD"
        assert listed["organisme"]["libelleStructure"] == "Département 33"
        # The organisation that imported it manages it through the API.
        assert api.supprimer(GIRONDE, "EDITEUR-0001").status_code == 204

    def test_an_id_of_another_usager_is_refused(self, hub: Hub) -> None:
        payload = {"id": "EDITEUR-0002", "date": "2025-05-01T09:00:00", "motif": "AUT", "statut": "PRIS"}
        self._enregistrer(hub, GIRONDE, "CD33", payload)
        with pytest.raises(Refused) as refused:
            self._enregistrer(hub, GIRONDE_SANS_CONTRAT, "CD33", payload)
        assert refused.value.code == "ID_DEJA_UTILISE"

    def test_import_applies_the_same_rules(self, hub: Hub) -> None:
        ouvrir_act380(hub, GIRONDE)
        self._enregistrer(hub, GIRONDE, "CD33", {"date": "2025-05-01T09:00:00Z", "motif": "ACC", "statut": "PRIS"})
        assert act380(hub, GIRONDE)[0].closed_by == "rendez-vous"
        with pytest.raises(Refused) as refused:
            self._enregistrer(hub, GIRONDE, "CD33", {"date": "2025-06-01T09:00:00Z", "motif": "ACC", "statut": "PRIS"})
        assert refused.value.code == "MOTIF_ACC_DEJA_UTILISE"
        with pytest.raises(Refused) as refused:
            self._enregistrer(hub, GIRONDE, "CD33", {"date": "2025-06-01", "motif": "ACC", "statut": "FINI"})
        assert refused.value.code == "RDV_INVALIDE"


def conforms(
    hub: Hub,
    spec_url: str,
    api: Api,
    person: Person,
    prepare: Callable[[schemathesis.Case], None] = lambda case: None,
    max_examples: int = 40,
) -> None:
    """schemathesis with a valid token and jeton, so that the generated bodies reach the domain:
    every answer must be documented and match its schema (the app validates its responses), never a 5xx."""
    schema = schemathesis.openapi.from_asgi(spec_url, hub.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:
        conforms_to_contract(
            operation,
            lambda: {"Authorization": f"Bearer {api.token}", "ft-jeton-usager": api.jeton(person)},
            max_examples=max_examples,
            prepare=prepare,
        )


def test_conformance_with_a_valid_jeton(hub: Hub, api: Api) -> None:
    existing = api.creer(GIRONDE, motif="AUT").json()["id"]

    def on_existing(case: schemathesis.Case) -> None:
        # Generated ids are unknown: aim updates and cancellations at a real rendez-vous.
        if case.method == "PUT" and isinstance(case.body, dict):
            case.body["id"] = existing
        if case.method == "DELETE":
            case.path_parameters = {"id": existing}

    conforms(hub, f"{BASE}/openapi.json", api, GIRONDE, on_existing, max_examples=25)
    # Whatever was generated, the listing still answers in the contract's shape.
    assert any(rdv["id"] == existing for rdv in api.liste(GIRONDE))


def test_two_first_acc_bookings_at_once_make_one(hub: Hub) -> None:
    """PostgreSQL: the usager's row lock orders the bookings; the second finds the first ACC (409)."""
    if hub.services.database.dialect != "postgresql":
        pytest.skip("SQLite serialises writers: no concurrent booking to race")
    uid, oid = usager_id(hub, GIRONDE), organisation_id(hub, "CD33")
    locked = threading.Event()
    outcomes: dict[str, str] = {}

    def book(name: str, hold: bool) -> None:
        try:
            with hub.services.database.transaction() as session:
                usager, organisation = session.get(Usager, uid), session.get(Organisation, oid)
                assert usager is not None and organisation is not None
                payload = {"date": "2026-04-01T10:00:00Z", "motif": "ACC", "statut": "PRIS"}
                rendez_vous_domain.enregistrer_rendez_vous(session, usager, organisation, payload, now=hub.clock.now)
                if hold:
                    locked.set()
                    time.sleep(0.5)
            outcomes[name] = "PRIS"
        except Refused as refused:
            outcomes[name] = refused.code

    first = threading.Thread(target=book, args=("premier", True))
    first.start()
    assert locked.wait(10)
    second = threading.Thread(target=book, args=("second", False))
    second.start()
    first.join(10)
    second.join(10)
    assert outcomes == {"premier": "PRIS", "second": "MOTIF_ACC_DEJA_UTILISE"}
    assert len(Api(hub).liste(GIRONDE)) == 1
