"""``relais import`` of parcours records (orientation, rendez-vous, contrat-engagement, manquement).

They go through the same domain rules as the API and the producer feed: the activities they
imply are opened and closed alike, a re-import changes nothing, a bad line rejects the file.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from parcours import orientation as orientation_domain
from parcours.tables import Activite, ConsequenceSanction, ContratEngagement, Orientation, RendezVous, Usager
from relais.core.db import Database
from relais.core.keys import KeySet, generate_keyset_document, parse_keyset_document
from relais.core.nir import nir_key
from relais.core.tables import Organisation
from relais.demo.dataset import build_demo_records, demo_parcours
from relais.importer import DatasetError, import_file, import_records

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
PENDING = "10000000001"
DECIDED = "10000000002"
SANCTIONED = "10000000003"
PARCOURS_TYPES = ("orientations", "rendez_vous", "contrats_engagement", "manquements")


@pytest.fixture
def keys() -> KeySet:
    return parse_keyset_document(generate_keyset_document(NOW))


def organisation(code: str, type_: str, territoire: Iterable[str], **extra: Any) -> dict[str, Any]:
    data = {"code": code, "type": type_, "libelle": f"Structure {code}", "territoire": list(territoire), **extra}
    return {"type": "organisation", "data": data}


def usager(numero: str, nir13: str, **extra: Any) -> dict[str, Any]:
    data = {
        "numeroFranceTravail": numero,
        "etatCivil": {"nom": "DUPONT", "prenom": "JEAN", "dateNaissance": "1985-07-14", "nir": nir13 + nir_key(nir13)},
        "adresses": [{"codeInseeCommune": "33063", "codePostal": "33000", "libelleCommune": "BORDEAUX"}],
        "topIdentiteCertifiee": "O",
        "contrat": {"m_statut": "Inscrit", "m_date_effet_statut": "2025-06-28"},
        **extra,
    }
    return {"type": "usager", "data": data}


STRUCTURE_CD33 = {"code_aurore": "NAQ0405", "code_safir": "33014", "libelle_structure": "Département de la Gironde"}


def orientation(numero: str, **extra: Any) -> dict[str, Any]:
    data = {
        "numeroFranceTravail": numero,
        "parcours": "PSO",
        "organisme": "CD",
        "structure": STRUCTURE_CD33,
        "origine": "INSCRIPTION_VOLONTAIRE",
        "criteres_orientation": {"brsa": True, "situation_professionnelle": "JAMAIS"},
        **extra,
    }
    return {"type": "orientation", "data": data}


DECISION = {"etat_decision": "ACCEPTEE", "date_decision": "2026-05-20", "agent_decision": "AGT-0042"}


def rendez_vous(numero: str, identifiant: str, **extra: Any) -> dict[str, Any]:
    data = {
        "numeroFranceTravail": numero,
        "id": identifiant,
        "date": "2026-06-15T10:30:00.000+02:00",
        "duree": 45,
        "motif": "ACC",
        "statut": "PRIS",
        "modaliteContact": "PHYSIQUE",
        "organisme": {"code": "CD", "libelleStructure": "Département de la Gironde"},
        **extra,
    }
    return {"type": "rendez-vous", "data": data}


def contrat(numero: str, **extra: Any) -> dict[str, Any]:
    data = {
        "numeroFranceTravail": numero,
        "etat": "SIGNE",
        "dateSignature": "2026-05-25T14:00:00+02:00",
        "organisme": "CD",
        "engagements": [{"libelle": "Rechercher une formation qualifiante"}],
        "intensiteHebdomadaire": 15,
        **extra,
    }
    return {"type": "contrat-engagement", "data": data}


def manquement(numero: str, identifiant: str, **extra: Any) -> dict[str, Any]:
    data = {
        "numeroFranceTravail": numero,
        "natureManquement": "N65",
        "rangManquement": "R1",
        "dateManquement": "2026-05-12",
        "consequences": [
            {
                "identifiantConsequenceSanction": identifiant,
                "typeConsequenceSanction": "SUSP_RSA",
                "modaliteProposee": "P",
                "montantPropose": 50,
                "dureeProposee": 2,
            }
        ],
        **extra,
    }
    return {"type": "manquement", "data": data}


def base() -> list[dict[str, Any]]:
    return [
        organisation("CD33", "CD", ["33"], code_aurore="NAQ0405", code_safir="33014"),
        organisation("FT-NAQ", "FT", ["33"], code_aurore="NAQ0057"),
        usager(PENDING, "1850733063001"),
        usager(DECIDED, "2920133063002"),
        usager(SANCTIONED, "1780533063003"),
    ]


def parcours() -> list[dict[str, Any]]:
    return [
        *base(),
        orientation(PENDING),
        orientation(DECIDED, etat="OUVERT", decision=DECISION),
        rendez_vous(DECIDED, "EDITEUR-RDV-0001"),
        contrat(DECIDED),
        manquement(SANCTIONED, "EDITEUR-SANCTION-0001"),
    ]


def write(tmp_path: Path, records: Iterable[Any], name: str = "parcours.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{json.dumps(r, ensure_ascii=False)}\n" for r in records), encoding="utf-8")
    return path


def rejected(database: Database, keys: KeySet, path: Path) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        import_file(database, keys, path, now=NOW)
    return caught.value


def usager_id(session: Session, numero: str) -> str:
    return session.exec(select(Usager).where(Usager.numero_france_travail == numero)).one().id


def activities(database: Database, *, open_only: bool = True) -> list[tuple[str, str, str]]:
    """(code, organisation code, numéro France Travail) of the activities, sorted."""
    with database.session() as session:
        query = select(Activite, Organisation.code, Usager.numero_france_travail).where(
            Activite.organisation_id == Organisation.id, Activite.usager_id == Usager.id
        )
        if open_only:
            query = query.where(col(Activite.closed_at).is_(None))
        return sorted((a.code_activite, code, numero) for a, code, numero in session.exec(query))


def snapshot(database: Database) -> list[Any]:
    """Everything the parcours records write, to compare before and after a re-import."""
    with database.session() as session:
        rows: list[Any] = []
        for model in (Orientation, Activite, RendezVous, ContratEngagement, ConsequenceSanction, Usager, Organisation):
            rows += sorted((row.model_dump() for row in session.exec(select(model))), key=repr)
        return rows


# A whole parcours ----------------------------------------------------------------------------------


def test_parcours_records_run_the_domain_rules_and_a_reimport_changes_nothing(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    path = write(tmp_path, parcours())

    first = import_file(database, keys, path, now=NOW)
    after_first = snapshot(database)
    second = import_file(database, keys, path, now=NOW.replace(hour=18))

    assert {kind: first.as_dict()[kind] for kind in PARCOURS_TYPES} == {
        "orientations": {"created": 2, "updated": 0, "unchanged": 0},
        "rendez_vous": {"created": 1, "updated": 0, "unchanged": 0},
        "contrats_engagement": {"created": 1, "updated": 0, "unchanged": 0},
        "manquements": {"created": 1, "updated": 0, "unchanged": 0},
    }
    assert {kind: second.as_dict()[kind]["unchanged"] for kind in PARCOURS_TYPES} == {
        "orientations": 2,
        "rendez_vous": 1,
        "contrats_engagement": 1,
        "manquements": 1,
    }
    assert not second.changed
    assert "rendez-vous : 0 créés, 0 modifiés, 1 inchangés" in second.summary_lines()
    assert "orientations : 0 créées, 0 modifiées, 2 inchangées" in second.summary_lines()
    assert snapshot(database) == after_first
    # ACT382 for the pending orientation; the decided one's ACT382 was closed and its ACT380
    # closed again by the first ACC appointment; the proposal waits as ACT366.
    assert activities(database) == [("ACT366", "CD33", SANCTIONED), ("ACT382", "CD33", PENDING)]
    assert activities(database, open_only=False) == [
        ("ACT366", "CD33", SANCTIONED),
        ("ACT380", "CD33", DECIDED),
        ("ACT382", "CD33", PENDING),
        ("ACT382", "CD33", DECIDED),
    ]


def test_what_each_record_leaves_in_the_store(database: Database, keys: KeySet, tmp_path: Path) -> None:
    import_file(database, keys, write(tmp_path, parcours()), now=NOW)

    with database.session() as session:
        pending = session.exec(select(Orientation).where(Orientation.usager_id == usager_id(session, PENDING))).one()
        decided = session.exec(select(Orientation).where(Orientation.usager_id == usager_id(session, DECIDED))).one()
        rdv = session.get(RendezVous, "EDITEUR-RDV-0001")
        contract = session.exec(select(ContratEngagement)).one()
        consequence = session.get(ConsequenceSanction, "EDITEUR-SANCTION-0001")
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()

    assert (pending.etat, pending.statut, pending.agent_creation) == ("EN_ATTENTE", "PRECONISE", "IMPORT")
    assert pending.criteres == {"brsa": True, "situation_professionnelle": "JAMAIS"}
    assert (decided.etat, decided.statut, str(decided.date_entree_parcours)) == (
        "OUVERT",
        "DECIDE",
        "2026-05-20",
    )
    assert decided.decision is not None and decided.decision["agent_decision"] == "AGT-0042"
    assert rdv is not None and rdv.organisation_id == cd33.id and rdv.duree == 45
    assert (contract.etat, contract.intensite_hebdomadaire) == ("SIGNE", 15)
    assert consequence is not None and consequence.etat == "A_INSTRUIRE" and consequence.duree_proposee == 2
    assert (cd33.code_aurore, cd33.code_safir) == ("NAQ0405", "33014")


def test_an_ind_preconisation_a_forced_orientation_and_a_draft(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    records = [
        *base(),
        orientation(PENDING, parcours="IND", organisme="IND", structure=None, criteres_orientation={"brsa": True}),
        orientation(DECIDED, etat="OUVERT", parcours="PED", organisme="FT", structure={"code_aurore": "NAQ0057"}),
        orientation(SANCTIONED, etat="BROUILLON"),
    ]

    import_file(database, keys, write(tmp_path, records), now=NOW)

    with database.session() as session:
        by_numero = {
            numero: session.exec(select(Orientation).where(Orientation.usager_id == usager_id(session, numero))).one()
            for numero in (PENDING, DECIDED, SANCTIONED)
        }
    assert (by_numero[PENDING].parcours, by_numero[PENDING].etat) == ("IND", "EN_ATTENTE")
    assert (by_numero[DECIDED].etat, by_numero[DECIDED].organisme_decision) == ("OUVERT", "FT")
    assert by_numero[SANCTIONED].etat == "BROUILLON"
    # The forced orientation's first appointment is for France Travail (structure NAQ0057).
    assert activities(database) == [("ACT380", "FT-NAQ", DECIDED), ("ACT382", "CD33", PENDING)]


# Re-imports after the parcours moved on ----------------------------------------------------------------


def test_a_later_file_with_the_decision_decides_the_pending_orientation(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    import_file(database, keys, write(tmp_path, [*base(), orientation(PENDING)]), now=NOW)

    report = import_file(
        database, keys, write(tmp_path, [orientation(PENDING, etat="OUVERT", decision=DECISION)], "v2.jsonl"), now=NOW
    )

    assert report.as_dict()["orientations"] == {"created": 0, "updated": 1, "unchanged": 0}
    with database.session() as session:
        [decided] = session.exec(select(Orientation)).all()
    assert (decided.etat, decided.statut) == ("OUVERT", "DECIDE")
    assert activities(database) == [("ACT380", "CD33", PENDING)]


def test_reimporting_a_preconisation_decided_since_through_the_api_leaves_it(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    path = write(tmp_path, [*base(), orientation(PENDING)])
    import_file(database, keys, path, now=NOW)
    with database.transaction() as session:
        pending = session.exec(select(Usager).where(Usager.numero_france_travail == PENDING)).one()
        orientation_domain.decider(session, pending, dict(DECISION), now=NOW, agent="AGT-0042")

    report = import_file(database, keys, path, now=NOW)

    assert report.as_dict()["orientations"] == {"created": 0, "updated": 0, "unchanged": 1}
    with database.session() as session:
        assert [o.etat for o in session.exec(select(Orientation))] == ["OUVERT"]


def test_a_changed_rendez_vous_or_contract_is_updated(database: Database, keys: KeySet, tmp_path: Path) -> None:
    import_file(database, keys, write(tmp_path, parcours()), now=NOW)
    changed = [
        rendez_vous(DECIDED, "EDITEUR-RDV-0001", statut="EFFECTUE"),
        contrat(DECIDED, intensiteHebdomadaire=20),
    ]

    report = import_file(database, keys, write(tmp_path, changed, "v2.jsonl"), now=NOW)

    assert report.as_dict()["rendez_vous"] == {"created": 0, "updated": 1, "unchanged": 0}
    assert report.as_dict()["contrats_engagement"] == {"created": 0, "updated": 1, "unchanged": 0}
    with database.session() as session:
        rdv = session.get(RendezVous, "EDITEUR-RDV-0001")
        assert rdv is not None and rdv.statut == "EFFECTUE"
        assert session.exec(select(ContratEngagement)).one().intensite_hebdomadaire == 20


def test_an_usager_cessation_in_a_later_file_suspends_the_signed_contract(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    import_file(database, keys, write(tmp_path, parcours()), now=NOW)
    cessation = usager(DECIDED, "2920133063002", contrat={"m_statut": "Cessé", "m_date_effet_statut": "2026-05-31"})

    report = import_file(database, keys, write(tmp_path, [organisation("CD33", "CD", ["33"]), cessation], "v2.jsonl"))

    assert report.as_dict()["usagers"]["updated"] == 1
    with database.session() as session:
        contract = session.exec(select(ContratEngagement)).one()
    assert (contract.etat, contract.etat_avant_suspension) == ("SUSPENDU", "SIGNE")


# Refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (orientation("19999999999"), "usager inconnu pour ce numéro France Travail"),
        (orientation(PENDING, etat="CLOTURE"), "champ data.etat : valeur non autorisée"),
        (orientation(PENDING, decision=DECISION), "champ obligatoire absent : data.etat"),
        (orientation(PENDING, etat="EN_ATTENTE", decision=DECISION), "champ data.etat : valeur non autorisée"),
        (orientation(PENDING, parcours="XYZ"), "champ data.parcours : valeur non autorisée"),
        (
            orientation(PENDING, etat="OUVERT", decision={**DECISION, "date_decision": "2026-12-31"}),
            "date_decision ne peut pas être dans le futur",
        ),
        (
            orientation(PENDING, etat="OUVERT", parcours="IND", organisme="IND", decision=DECISION),
            "indéterminée (IND)",
        ),
        (rendez_vous(PENDING, "R1", motif="XXX"), "champ data.motif : valeur non autorisée"),
        ({**rendez_vous(PENDING, "R1"), "data": {**rendez_vous(PENDING, "R1")["data"], "id": None}}, "data.id"),
        (
            {
                "type": "rendez-vous",
                "data": {k: v for k, v in rendez_vous(PENDING, "R1")["data"].items() if k != "organisme"},
            },
            "data.organisation ou data.organisme",
        ),
        (rendez_vous(PENDING, "R1", organisation="CD99"), "organisation inconnue « CD99 »"),
        (contrat(PENDING, dateSignature=None), "dateSignature est obligatoire pour un contrat SIGNE"),
        (contrat(PENDING, etat="RESILIE"), "champ data.etat : valeur non autorisée"),
        (manquement(PENDING, "S1", dateManquement="2026-12-01"), "dateManquement ne peut pas être dans le futur"),
        (manquement(PENDING, "S1", consequences=[]), "champ data.consequences : liste trop courte"),
        (
            manquement(PENDING, "S1", consequences=[{"typeConsequenceSanction": "SUSP_RSA"}]),
            "champ obligatoire absent : data.consequences[0].identifiantConsequenceSanction",
        ),
    ],
    ids=[
        "orientation-unknown-usager",
        "orientation-closed",
        "decision-without-etat",
        "decision-not-open",
        "orientation-bad-parcours",
        "decision-in-the-future",
        "accepting-an-ind-orientation",
        "rdv-bad-motif",
        "rdv-without-id",
        "rdv-without-organisation",
        "rdv-unknown-organisation",
        "contract-signed-without-date",
        "contract-bad-state",
        "manquement-in-the-future",
        "manquement-without-consequence",
        "consequence-without-id",
    ],
)
def test_a_bad_parcours_line_rejects_the_whole_file(
    database: Database, keys: KeySet, tmp_path: Path, record: dict[str, Any], reason: str
) -> None:
    records = [*base(), orientation(DECIDED), record, manquement(SANCTIONED, "S9")]

    error = rejected(database, keys, write(tmp_path, records))

    assert error.line == 7
    assert reason in error.reason
    assert "DUPONT" not in str(error) and PENDING not in str(error)
    assert snapshot(database) == []


def test_text_no_database_stores_is_rejected(database: Database, keys: KeySet, tmp_path: Path) -> None:
    nul = usager("10000000009", "1850733063009")
    nul["data"]["etatCivil"]["prenom"] = "JE\u0000AN"
    surrogate = rendez_vous(PENDING, "R1", information="\ud800")

    nul_error = rejected(database, keys, write(tmp_path, [*base(), nul]))
    # Escaped (\ud800) as JSON carries it: a file cannot hold the character itself in UTF-8.
    escaped = tmp_path / "escaped.jsonl"
    escaped.write_text("".join(json.dumps(record) + "\n" for record in [*base(), surrogate]), encoding="utf-8")
    surrogate_error = rejected(database, keys, escaped)

    assert str(nul_error) == "ligne 6 : champ data.etatCivil.prenom : caractère non autorisé (nul ou UTF-16 isolé)"
    assert surrogate_error.line == 6 and "data.information" in surrogate_error.reason
    assert snapshot(database) == []


def test_keys_repeated_in_one_file_are_rejected(database: Database, keys: KeySet, tmp_path: Path) -> None:
    twice_rdv = [*base(), rendez_vous(PENDING, "R1"), rendez_vous(DECIDED, "R1")]
    twice_consequence = [*base(), manquement(PENDING, "S1"), manquement(DECIDED, "S1", rangManquement="R2")]
    twice_contract = [*base(), contrat(PENDING), contrat(PENDING, etat="A_SIGNER")]

    assert (
        str(rejected(database, keys, write(tmp_path, twice_rdv))) == "ligne 7 : rendez-vous « R1 » déjà défini ligne 6"
    )
    assert str(rejected(database, keys, write(tmp_path, twice_consequence))) == (
        "ligne 7 : conséquence « S1 » déjà définie ligne 6"
    )
    assert "contrat d'engagement de cet usager déjà défini ligne 6" in str(
        rejected(database, keys, write(tmp_path, twice_contract))
    )


def test_identifiers_already_used_otherwise_are_rejected(database: Database, keys: KeySet, tmp_path: Path) -> None:
    import_file(database, keys, write(tmp_path, parcours()), now=NOW)
    other_proposal = manquement(SANCTIONED, "EDITEUR-SANCTION-0001")
    other_proposal["data"]["consequences"][0]["dureeProposee"] = 4
    other_usager = rendez_vous(PENDING, "EDITEUR-RDV-0001")
    before = snapshot(database)

    proposal_error = rejected(database, keys, write(tmp_path, [other_proposal], "v2.jsonl"))
    rdv_error = rejected(database, keys, write(tmp_path, [other_usager], "v3.jsonl"))

    assert (proposal_error.line, proposal_error.reason) == (
        1,
        "identifiantConsequenceSanction déjà enregistré pour une autre proposition",
    )
    assert rdv_error.reason == "rendez-vous « EDITEUR-RDV-0001 » déjà enregistré pour un autre usager"
    assert snapshot(database) == before


def test_a_domain_refusal_late_in_the_file_undoes_the_activities_of_earlier_lines(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    bad = copy.deepcopy(manquement(SANCTIONED, "S2"))
    bad["data"]["consequences"][0]["montantPropose"] = 10  # a rate below 30 %
    records = [*parcours(), bad]

    error = rejected(database, keys, write(tmp_path, records))

    assert error.line == len(records)
    assert "montantPropose" in error.reason
    assert activities(database, open_only=False) == []
    assert snapshot(database) == []


def test_organisation_codes_can_be_changed_and_removed(database: Database, keys: KeySet, tmp_path: Path) -> None:
    import_file(database, keys, write(tmp_path, base()), now=NOW)

    report = import_file(
        database,
        keys,
        write(
            tmp_path, [organisation("CD33", "CD", ["33"], code_aurore="NAQ0406"), organisation("FT-NAQ", "FT", ["33"])]
        ),
        now=NOW,
    )

    assert report.as_dict()["organisations"] == {"created": 0, "updated": 2, "unchanged": 0}
    with database.session() as session:
        codes = {o.code: (o.code_aurore, o.code_safir) for o in session.exec(select(Organisation))}
    assert codes == {"CD33": ("NAQ0406", None), "FT-NAQ": (None, None)}


# The demo dataset ------------------------------------------------------------------------------------


def test_the_demo_dataset_imports_with_its_activities_and_again_unchanged(database: Database, keys: KeySet) -> None:
    records = build_demo_records()
    parcours_by_case = demo_parcours(records)

    first = import_records(database, keys, records)
    again = import_records(database, keys, records)

    assert first.as_dict()["orientations"]["created"] == 10
    assert first.as_dict()["manquements"]["created"] == len(parcours_by_case["sanctions"])
    assert not again.changed
    open_by_code: dict[str, set[str]] = {}
    for code, organisation_code, numero in activities(database):
        assert organisation_code == "CD33"
        open_by_code.setdefault(code, set()).add(numero)
    assert open_by_code["ACT382"] == {*parcours_by_case["preconisations"], *parcours_by_case["a_completer"]}
    assert open_by_code["ACT380"] == set(parcours_by_case["premier_rdv_a_prendre"])
    assert len(open_by_code["ACT366"]) == 3 and len(open_by_code["ACT370"]) == 1
    assert open_by_code["ACT366"] | open_by_code["ACT370"] == set(parcours_by_case["sanctions"])
    with database.session() as session:
        contracts = sorted(c.etat for c in session.exec(select(ContratEngagement)))
    assert contracts == ["A_SIGNER", "SIGNE"]
