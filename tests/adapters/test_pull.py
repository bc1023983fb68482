"""The pull connector reads an editor's REST API (played by pytest-httpx) through a field mapping."""

# Fixtures are imported, and test parameters take their names.
# ruff: noqa: F401, F811

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock
from sqlmodel import col, select

from adapters.inbound.feed import FeedRejected
from adapters.inbound.mapping import parse_format
from adapters.inbound.models import PullCursor
from adapters.inbound.pull import PullConfig, PullError, pull
from audit.journal import JournalRecorder
from audit.models import AuditEvent
from parcours.tables import RendezVous
from tests.support.hub import Hub, hub, hub_app
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT

API = "https://solis.cd33.test/api/rendez-vous"
# The editor's own JSON, its fields mapped to Relais' (dotted paths into nested objects).
EDITOR_FORMAT = parse_format(
    {
        "enregistrement": "rendez-vous",
        "identite": {"nir": "beneficiaire.nir", "numeroFranceTravail": "beneficiaire.identifiantFT"},
        "colonnes": {
            "reference": {"champ": "id", "obligatoire": True},
            "debut": {"champ": "date", "type": "date-heure", "obligatoire": True},
            "nature": {"champ": "motif", "obligatoire": True},
            "etat": {"champ": "statut", "obligatoire": True},
            "dureeMinutes": {"champ": "duree", "type": "entier"},
            "organisme": {"champ": "organisme.code"},
        },
    },
    "solis-rdv",
)
CONFIG = PullConfig(
    nom="solis-cd33-rdv",
    organisation="CD33",
    url=API,
    format="solis-rdv",
    parametre_depuis="modifiesDepuis",
    champ_curseur="majLe",
    champ_elements="rendezVous",
    champ_suivant="pageSuivante",
    variable_jeton="SOLIS_CD33_TOKEN",
)


def item(
    reference: str, maj: str, *, nir: str | None = GIRONDE.nir, numero: str | None = None, etat: str = "PRIS"
) -> dict[str, Any]:
    return {
        "reference": reference,
        # Fields the format does not name (nomUsuel) are left alone.
        "beneficiaire": {"nir": nir, "identifiantFT": numero, "nomUsuel": "ignoré"},
        "debut": "2026-12-03T10:00:00+01:00",
        "nature": "AUT",
        "etat": etat,
        "dureeMinutes": 30,
        "organisme": "CD",
        "majLe": maj,
    }


@pytest.fixture(autouse=True)
def editor_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIS_CD33_TOKEN", "editor-secret")


def run(hub: Hub) -> Any:
    return pull(
        hub.services.database, hub.services.keys, CONFIG, EDITOR_FORMAT, audit=JournalRecorder(), now=hub.clock.now
    )


def cursor(hub: Hub) -> PullCursor | None:
    with hub.services.database.session() as session:
        return session.get(PullCursor, CONFIG.nom)


def test_pages_are_applied_audited_and_the_cursor_advances(hub: Hub, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=API,
        json={"rendezVous": [item("R-1", "2026-11-20T08:00:00Z")], "pageSuivante": f"{API}?page=2"},
    )
    # R-2 names its usager by numéro France Travail only.
    httpx_mock.add_response(
        url=f"{API}?page=2",
        json={"rendezVous": [item("R-2", "2026-11-21T08:00:00Z", nir=None, numero=GIRONDE_SANS_CONTRAT.numero)]},
    )
    result = run(hub)
    assert (result.report.created, result.pages) == (2, 2)
    assert (result.cursor_before, result.cursor_after) == (None, "2026-11-21T08:00:00Z")
    state = cursor(hub)
    assert state is not None and (state.cursor, state.last_status) == ("2026-11-21T08:00:00Z", "ok")

    requests = httpx_mock.get_requests()
    assert all(request.headers["authorization"] == "Bearer editor-secret" for request in requests)
    assert "modifiesDepuis" not in requests[0].url.params
    with hub.services.database.session() as session:
        assert sorted(rdv.id for rdv in session.exec(select(RendezVous)).all()) == ["R-1", "R-2"]
        events = session.exec(
            select(AuditEvent).where(AuditEvent.channel == "adapter").order_by(col(AuditEvent.seq))
        ).all()
        assert [event.data_origin for event in events] == ["pull:solis-cd33-rdv"] * 2
        assert [(event.details or {})["regle"] for event in events] == ["nir", "numero_france_travail"]


def test_the_next_run_asks_from_the_cursor_and_is_idempotent(hub: Hub, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=API, json={"rendezVous": [item("R-1", "2026-11-20T08:00:00Z")]})
    run(hub)
    # The editor sends the same item again (it was modified at the same instant): unchanged.
    httpx_mock.add_response(
        url=f"{API}?modifiesDepuis=2026-11-20T08%3A00%3A00Z", json={"rendezVous": [item("R-1", "2026-11-20T08:00:00Z")]}
    )
    again = run(hub)
    assert (again.report.unchanged, again.report.created) == (1, 0)
    assert again.cursor_after == "2026-11-20T08:00:00Z"
    # And a later change of its outcome updates it.
    httpx_mock.add_response(
        url=f"{API}?modifiesDepuis=2026-11-20T08%3A00%3A00Z",
        json={"rendezVous": [item("R-1", "2026-11-22T09:00:00Z", etat="EFFECTUE")]},
    )
    third = run(hub)
    assert third.report.updated == 1 and third.cursor_after == "2026-11-22T09:00:00Z"


def test_an_unavailable_editor_changes_nothing_and_keeps_the_cursor(hub: Hub, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=API, json={"rendezVous": [item("R-1", "2026-11-20T08:00:00Z")], "pageSuivante": f"{API}?page=2"}
    )
    httpx_mock.add_response(url=f"{API}?page=2", status_code=503)
    with pytest.raises(PullError, match="503"):
        run(hub)
    state = cursor(hub)
    assert state is not None and (state.cursor, state.last_status) == (None, "echec")
    with hub.services.database.session() as session:
        assert session.exec(select(RendezVous)).all() == []


def test_a_timeout_is_a_failure_of_the_run(hub: Hub, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow editor"), url=API)
    with pytest.raises(PullError, match="à temps"):
        run(hub)


def test_a_next_page_elsewhere_is_not_followed(hub: Hub, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=API, json={"rendezVous": [], "pageSuivante": "https://attacker.test/steal"})
    with pytest.raises(PullError, match="autre hôte"):
        run(hub)
    assert len(httpx_mock.get_requests()) == 1


def test_bad_items_reject_the_run_with_their_position(hub: Hub, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=API,
        json={
            "rendezVous": [
                item("R-1", "2026-11-20T08:00:00Z"),
                item("R-2", "2026-11-20T09:00:00Z", nir=GIRONDE.nir13 + "00"),
                item("R-3", "2026-11-20T10:00:00Z", etat="INCONNU"),
            ]
        },
    )
    with pytest.raises(FeedRejected) as caught:
        run(hub)
    # Every bad item at once: the NIR's key, and the state the contract does not know.
    assert [error.position for error in caught.value.errors] == [2, 3]
    assert "clé de contrôle" in str(caught.value.errors[0])
    state = cursor(hub)
    assert state is not None and (state.cursor, state.last_status) == (None, "rejete")
    assert state.last_error is not None and GIRONDE.nir13 not in state.last_error


def test_the_editor_token_comes_from_the_environment(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLIS_CD33_TOKEN")
    with pytest.raises(PullError, match="SOLIS_CD33_TOKEN"):
        run(hub)
