"""Orientation usager: the lifecycle rules, shared by the API, the producer feed and the importer.

An usager has at most one *pending* orientation (``BROUILLON`` or ``EN_ATTENTE``, statut
``PRECONISE``) and at most one *open* one (``OUVERT``, statut ``DECIDE``); every other
orientation is ``CLOTURE``. The transitions:

- ``preconiser`` (producer feed, France Travail's preconisation): a new pending orientation,
  replacing the older pending one (which goes ``CLOTURE``);
- ``calculer`` (calculOrientation): merges criteria into the pending orientation (or creates
  it) and applies the rule table (``orientation_rules``); the orientation is ``EN_ATTENTE``;
- ``decider`` (decisionOrientation): the ``EN_ATTENTE`` orientation becomes ``OUVERT`` /
  ``DECIDE``; a refusal carries the counter-proposal, which the decided orientation takes;
- ``orienter`` (forced orientation): a new ``OUVERT`` / ``DECIDE`` orientation at once,
  replacing the pending one.

A new open orientation closes the previous open one (``CLOTURE`` with ``date_sortie_parcours``
and ``motif_sortie_parcours``).

Side effects, in the same transaction:

- an ``EN_ATTENTE`` orientation has ``ACT382`` "Décision d'orientation à prendre" open on the
  list of the usager's département (``organisation_for(..., "CD")``), sujet
  ``orientation:<id>``; it is closed when the orientation is decided or replaced. No CD
  covering the usager: no ACT382.
- a decision or a forced orientation opens ``ACT380`` "1er RDV d'accompagnement à prendre"
  (sujet ``accompagnement:<usager id>``, attribute ``motif`` = ``ACC``) for the organisation
  that will accompany: the one whose ``code_aurore`` is the decided structure's, else the
  organisation of the decided organisme's type covering the usager. None found: no ACT380.
  An ACT380 still open from an earlier orientation is closed first (the first appointment to
  take is now the new organisation's).
- a decision or a forced orientation returns a signed or refused contrat d'engagement to
  "à signer" (``contrat_domain.remettre_a_signer``).
- the domain events ``orientation.a_decider`` (concerning the département with the ACT382)
  and ``orientation.decidee`` (the département and the accompanying organisation) are
  published (``parcours.events``); their connectors hear of them.

Every write locks the usager's row (``FOR NO KEY UPDATE`` on PostgreSQL, which does not block
inserts referencing it) and then the orientation rows it moves, so that two agents never both
decide the same orientation: the second one finds it already decided and is refused (409).

The module keeps the states and the transitions with their side effects; beside it,
``orientation_shape`` builds the contract's JSON of an orientation, ``orientation_checks``
checks what callers send, ``orientation_structures`` finds the structure serving an usager and
``orientation_rules`` holds the rule table of calculOrientation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from parcours import activites as activites_domain
from parcours import contrat as contrat_domain
from parcours import events, writes
from parcours.activites import ACT380, sujet_accompagnement
from parcours.orientation_checks import code_in, decision_date, past_date, structure_given
from parcours.orientation_rules import CRITERES, RuleTable, Verdict, default_rules
from parcours.orientation_shape import CRITERES_AFFICHES as CRITERES_AFFICHES
from parcours.orientation_shape import DECISION_DETAILS as DECISION_DETAILS
from parcours.orientation_shape import DECISION_FIELDS as DECISION_FIELDS
from parcours.orientation_shape import local_date_time
from parcours.orientation_shape import orientation_json as orientation_json
from parcours.orientation_structures import departement_of_criteres as departement_of_criteres
from parcours.orientation_structures import structure_for
from parcours.perimeter import organisation_for
from parcours.ports import Refused
from parcours.tables import Orientation, Usager
from relais.core.french_dates import local_date
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

BROUILLON = "BROUILLON"
EN_ATTENTE = "EN_ATTENTE"
OUVERT = "OUVERT"
CLOTURE = "CLOTURE"
PENDING = (BROUILLON, EN_ATTENTE)
ETATS = (BROUILLON, EN_ATTENTE, OUVERT, CLOTURE)
PRECONISE = "PRECONISE"
DECIDE = "DECIDE"
ACCEPTEE = "ACCEPTEE"
REFUSEE = "REFUSEE"

PARCOURS = ("PED", "PSO", "PSP", "IND")
ORGANISMES = ("CD", "FT", "ML", "CE", "DCD", "IND")
# FT's orientation Adresse class.
ADRESSE_CRITERES = ("code_commune", "libelle_commune", "code_postal", "numero_type_libelle_voie")

ACT382 = "ACT382"
# Motifs de sortie de parcours (choix Relais: France Travail's values are not public).
MOTIF_REORIENTATION = "REORIENTATION"
MOTIF_PRECONISATION_REMPLACEE = "PRECONISATION_REMPLACEE"
# ``closed_by`` of the activities, named after the call that closed them.
PAR_DECISION = "decisionOrientation"
PAR_ORIENTATION = "orientation"
PAR_PRECONISATION = "preconisation"


def sujet_orientation(orientation: Orientation) -> str:
    return f"orientation:{orientation.id}"


# Reads ---------------------------------------------------------------------------------


def orientations(session: Session, usager_id: str, *, etat: str | None = None) -> list[Orientation]:
    """The usager's orientations, most recent first (``etat`` filters)."""
    query = select(Orientation).where(Orientation.usager_id == usager_id)
    if etat is not None:
        query = query.where(Orientation.etat == etat)
    query = query.order_by(col(Orientation.created_at).desc(), col(Orientation.id).desc())
    return list(session.exec(query))


def pending(session: Session, usager_id: str, *, lock: bool = False) -> Orientation | None:
    return _one(session, usager_id, PENDING, lock=lock)


def ouverte(session: Session, usager_id: str, *, lock: bool = False) -> Orientation | None:
    return _one(session, usager_id, (OUVERT,), lock=lock)


def _one(session: Session, usager_id: str, etats: tuple[str, ...], *, lock: bool) -> Orientation | None:
    query = (
        select(Orientation)
        .where(Orientation.usager_id == usager_id, col(Orientation.etat).in_(etats))
        .order_by(col(Orientation.created_at).desc(), col(Orientation.id).desc())
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


# Writes --------------------------------------------------------------------------------


def preconiser(
    session: Session, usager: Usager, payload: dict[str, Any], *, now: datetime, agent: str | None = None
) -> Orientation:
    """A new preconised orientation (``EN_ATTENTE``, or ``BROUILLON`` if ``payload["etat"]`` says so).

    ``payload`` holds orientation fields in the contract's snake_case: ``parcours``,
    ``organisme``, ``structure``, ``origine``, ``criteres_orientation``, optionally ``etat``
    (``EN_ATTENTE`` by default, or ``BROUILLON`` for a draft nobody can decide yet). An older
    pending orientation is replaced (``CLOTURE``) and its ACT382 closed.
    """
    etat = payload.get("etat") or EN_ATTENTE
    if etat not in PENDING:
        raise Refused(
            RefusalKind.INVALID,
            "ETAT_ORIENTATION_INVALIDE",
            "Une orientation préconisée est à l'état BROUILLON ou EN_ATTENTE",
        )
    parcours = code_in(payload.get("parcours") or "IND", PARCOURS, "parcours")
    organisme = code_in(payload.get("organisme") or "IND", ORGANISMES, "organisme")
    writes.lock_usager(session, usager)
    previous = pending(session, usager.id, lock=True)
    if previous is not None:
        _close_pending(session, previous, now=now, agent=agent, par=PAR_PRECONISATION)
    orientation = Orientation(
        usager_id=usager.id,
        parcours=parcours,
        organisme=organisme,
        structure=structure_given(payload.get("structure")),
        statut=PRECONISE,
        etat=etat,
        origine=payload.get("origine"),
        criteres=dict(payload.get("criteres_orientation") or {}) or None,
        agent_creation=agent,
        agent_derniere_modification=agent,
        created_at=now,
        updated_at=now,
    )
    session.add(orientation)
    session.flush()
    if etat == EN_ATTENTE:
        _open_act382(session, usager, orientation, now=now)
    return orientation


def calculer(
    session: Session,
    usager: Usager,
    criteres: Mapping[str, Any],
    *,
    now: datetime,
    agent: str | None = None,
    rules: RuleTable | None = None,
) -> tuple[Orientation, Verdict]:
    """calculOrientation: merge ``criteres`` into the pending orientation and apply the rules.

    Criteria may be given over several calls ("renseignés de manière itérative"): a criterion
    given replaces the stored one, the others are kept. The pending orientation (created if
    there is none, origine ``INSCRIPTION_CONSEILLER_CD``) takes the computed parcours,
    organisme and structure and is ``EN_ATTENTE`` / ``PRECONISE`` with its ACT382 open, ready
    for decisionOrientation.
    """
    rules = rules or default_rules()
    past_date(criteres.get("date_naissance"), "date_naissance", now=now)
    writes.lock_usager(session, usager)
    orientation = pending(session, usager.id, lock=True)
    stored = dict((orientation.criteres if orientation is not None else None) or {})
    # Only the contract's criteria are kept: a field FT's schema does not know is accepted and
    # ignored, as France Travail does, and never shows up in criteres_orientation.
    given = {key: value for key, value in criteres.items() if key in CRITERES and value is not None}
    if isinstance(given.get("adresse"), Mapping):
        given["adresse"] = {key: given["adresse"].get(key) for key in ADRESSE_CRITERES}
    merged = {**stored, **given}
    # A local date-time (FT's CriteresOrientation parses it with InstantWithoutZDeserializer).
    merged["date_saisie_donnees"] = local_date_time(now)
    verdict = rules.evaluate(merged, today=local_date(now))
    structure = structure_for(session, usager, verdict.organisme, merged)
    verdict = verdict.with_structure(structure)
    if orientation is None:
        orientation = Orientation(
            usager_id=usager.id,
            statut=PRECONISE,
            etat=EN_ATTENTE,
            origine="INSCRIPTION_CONSEILLER_CD",
            agent_creation=agent,
            created_at=now,
        )
    orientation.parcours = verdict.parcours
    orientation.organisme = verdict.organisme
    orientation.structure = verdict.structure
    orientation.criteres = merged
    orientation.etat = EN_ATTENTE
    orientation.statut = PRECONISE
    _touch(orientation, now=now, agent=agent)
    session.add(orientation)
    session.flush()
    _open_act382(session, usager, orientation, now=now)
    return orientation, verdict


def decider(session: Session, usager: Usager, decision: dict[str, Any], *, now: datetime, agent: str) -> Orientation:
    """decisionOrientation: accept or refuse the usager's ``EN_ATTENTE`` orientation.

    ``decision`` is the contract's body: ``etat_decision`` (ACCEPTEE or REFUSEE),
    ``date_decision``, ``organisme_decision``, ``structure_decision``, ``agent_decision``; a
    refusal also needs ``motif_refus`` and the counter-proposal ``parcours`` and ``organisme``
    (optionally ``commentaire_refus``), which the decided orientation takes.
    """
    etat_decision = decision.get("etat_decision")
    if etat_decision not in (ACCEPTEE, REFUSEE):
        raise Refused(RefusalKind.INVALID, "ETAT_DECISION_INVALIDE", "etat_decision doit valoir ACCEPTEE ou REFUSEE")
    date_decision = decision_date(decision.get("date_decision"), now=now)
    contre_parcours = contre_organisme = ""  # the counter-proposal, on a refusal
    if etat_decision == REFUSEE:
        missing = [name for name in ("motif_refus", "parcours", "organisme") if not decision.get(name)]
        if missing:
            raise Refused(
                RefusalKind.INVALID,
                "CONTRE_PROPOSITION_INCOMPLETE",
                "Un refus d'orientation doit indiquer motif_refus et la contre-proposition (parcours et organisme) :"
                f" {', '.join(missing)} absent",
            )
        contre_parcours = code_in(decision["parcours"], PARCOURS[:-1], "parcours")
        contre_organisme = code_in(decision["organisme"], ORGANISMES[:-1], "organisme")
        # organisme_decision names who decided (FT's own example: the CD refuses and proposes
        # FT), so it need not be the counter-proposal's organisme.
        if decision.get("organisme_decision"):
            code_in(decision["organisme_decision"], ORGANISMES[:-1], "organisme_decision")
    else:
        extra = [name for name in ("motif_refus", "commentaire_refus", "parcours", "organisme") if decision.get(name)]
        if extra:
            raise Refused(
                RefusalKind.INVALID,
                "DECISION_INCOHERENTE",
                "Une décision acceptée ne porte ni motif de refus ni contre-proposition :"
                f" {', '.join(extra)} non prévu",
            )
        if decision.get("organisme_decision"):
            code_in(decision["organisme_decision"], ORGANISMES[:-1], "organisme_decision")
    structure_demandee = structure_given(decision.get("structure_decision"))

    writes.lock_usager(session, usager)
    orientation = pending(session, usager.id, lock=True)
    if orientation is None:
        if ouverte(session, usager.id) is not None:
            raise Refused(
                RefusalKind.CONFLICT,
                "ORIENTATION_NON_EN_ATTENTE",
                "Aucune orientation en attente de décision : l'orientation de l'usager est déjà décidée",
            )
        raise Refused(
            RefusalKind.UNKNOWN,
            "AUCUNE_ORIENTATION_EN_ATTENTE",
            "Aucune orientation en attente de décision pour cet usager : calculez d'abord son orientation",
        )
    if orientation.etat != EN_ATTENTE:
        raise Refused(
            RefusalKind.CONFLICT,
            "ORIENTATION_NON_EN_ATTENTE",
            "L'orientation de l'usager est à l'état brouillon : calculez-la avant de la décider",
        )

    preconise = {
        "parcours": orientation.parcours,
        "organisme": orientation.organisme,
        "structure": orientation.structure,
    }
    if etat_decision == ACCEPTEE:
        if orientation.parcours in (None, "IND") or orientation.organisme in (None, "IND"):
            raise Refused(
                RefusalKind.CONFLICT,
                "ORIENTATION_INDETERMINEE",
                "L'orientation préconisée est indéterminée (IND) : complétez les critères avec calculOrientation"
                " ou refusez-la avec une contre-proposition",
            )
        organisme_decision = str(decision.get("organisme_decision") or orientation.organisme)
        structure_decision = structure_demandee
        if structure_decision is None and organisme_decision == orientation.organisme:
            structure_decision = orientation.structure
    else:
        orientation.parcours = contre_parcours
        orientation.organisme = contre_organisme
        organisme_decision = str(decision.get("organisme_decision") or contre_organisme)
        structure_decision = structure_demandee
        orientation.structure = structure_decision

    agent_decision = decision.get("agent_decision") or agent
    orientation.organisme_decision = organisme_decision
    orientation.structure_decision = structure_decision
    orientation.decision = {
        "etat_decision": etat_decision,
        "date_decision": date_decision.isoformat(),
        "organisme_decision": organisme_decision,
        "structure_decision": structure_decision,
        "agent_decision": agent_decision,
        "motif_refus": decision.get("motif_refus"),
        "commentaire_refus": decision.get("commentaire_refus"),
        "structure": preconise["structure"],
        "parcours_preconise": preconise["parcours"],
        "organisme_preconise": preconise["organisme"],
    }
    activites_domain.fermer(session, sujet=sujet_orientation(orientation), par=PAR_DECISION, now=now, codes=[ACT382])
    _open(session, usager, orientation, date_entree=date_decision, now=now, agent=agent)
    return orientation


def orienter(session: Session, usager: Usager, payload: dict[str, Any], *, now: datetime, agent: str) -> Orientation:
    """The forced orientation (POST /orientation): a decided, open orientation at once.

    ``payload`` is the contract's body: ``parcours``, ``organisme``, ``origine``, ``structure``,
    ``structure_decision``. The pending orientation, if any, is replaced (``CLOTURE``).
    """
    parcours = code_in(payload.get("parcours"), PARCOURS[:-1], "parcours")
    organisme = code_in(payload.get("organisme"), ORGANISMES[:-1], "organisme")
    structure = structure_given(payload.get("structure"))
    structure_decision = structure_given(payload.get("structure_decision")) or structure
    writes.lock_usager(session, usager)
    previous = pending(session, usager.id, lock=True)
    if previous is not None:
        _close_pending(session, previous, now=now, agent=agent, par=PAR_ORIENTATION)
    orientation = Orientation(
        usager_id=usager.id,
        parcours=parcours,
        organisme=organisme,
        structure=structure,
        organisme_decision=organisme,
        structure_decision=structure_decision,
        # _open() makes it OUVERT / DECIDE, after closing the previous open orientation.
        statut=PRECONISE,
        etat=EN_ATTENTE,
        origine=payload.get("origine"),
        agent_creation=agent,
        agent_derniere_modification=agent,
        created_at=now,
        updated_at=now,
        decision={
            "etat_decision": ACCEPTEE,
            "date_decision": local_date(now).isoformat(),
            "organisme_decision": organisme,
            "structure_decision": structure_decision,
            "agent_decision": agent,
            "motif_refus": None,
            "commentaire_refus": None,
            "structure": structure,
        },
    )
    session.add(orientation)
    session.flush()
    _open(session, usager, orientation, date_entree=local_date(now), now=now, agent=agent)
    return orientation


# Internals -----------------------------------------------------------------------------


def _touch(orientation: Orientation, *, now: datetime, agent: str | None) -> None:
    orientation.updated_at = now
    orientation.agent_derniere_modification = agent or orientation.agent_derniere_modification
    orientation.version += 1


def _close_pending(session: Session, orientation: Orientation, *, now: datetime, agent: str | None, par: str) -> None:
    orientation.etat = CLOTURE
    orientation.motif_sortie_parcours = MOTIF_PRECONISATION_REMPLACEE
    _touch(orientation, now=now, agent=agent)
    session.add(orientation)
    activites_domain.fermer(session, sujet=sujet_orientation(orientation), par=par, now=now, codes=[ACT382])


def _open(
    session: Session, usager: Usager, orientation: Orientation, *, date_entree: date, now: datetime, agent: str
) -> None:
    """Make ``orientation`` the usager's open one, with the side effects of a decision."""
    open_ones = session.exec(
        select(Orientation)
        .where(Orientation.usager_id == usager.id, Orientation.etat == OUVERT, col(Orientation.id) != orientation.id)
        .execution_options(populate_existing=True)
        .with_for_update()
    )
    for previous in open_ones:
        previous.etat = CLOTURE
        previous.date_sortie_parcours = date_entree
        previous.motif_sortie_parcours = MOTIF_REORIENTATION
        _touch(previous, now=now, agent=agent)
        session.add(previous)
    orientation.etat = OUVERT
    orientation.statut = DECIDE
    orientation.date_entree_parcours = date_entree
    _touch(orientation, now=now, agent=agent)
    session.add(orientation)
    session.flush()
    sujet = sujet_accompagnement(usager.id)
    activites_domain.fermer(session, sujet=sujet, par=PAR_DECISION, now=now, codes=[ACT380])
    accompagnant = organisation_accompagnante(session, usager, orientation)
    if accompagnant is not None:
        assert accompagnant.id is not None
        activites_domain.ouvrir(
            session,
            code=ACT380,
            organisation_id=accompagnant.id,
            usager_id=usager.id,
            sujet=sujet,
            now=now,
            attributs=[("motif", "ACC")],
        )
    contrat_domain.remettre_a_signer(session, usager.id, now=now)
    departement = organisation_for(session, usager, "CD")
    events.orientation_decidee(
        session,
        usager,
        orientation,
        [departement.id if departement else None, accompagnant.id if accompagnant else None],
        now,
    )


def organisation_accompagnante(session: Session, usager: Usager, orientation: Orientation) -> Organisation | None:
    """Who takes the first accompaniment appointment of a decided orientation, if anyone."""
    code_aurore = (orientation.structure_decision or {}).get("code_aurore")
    if code_aurore:
        found = session.exec(
            select(Organisation).where(Organisation.code_aurore == code_aurore).order_by(col(Organisation.id))
        ).first()
        if found is not None:
            return found
    # After a refusal the counter-proposal's organisme accompanies, whoever decided.
    refused = (orientation.decision or {}).get("etat_decision") == REFUSEE
    organisme = orientation.organisme if refused else orientation.organisme_decision
    if organisme:
        return organisation_for(session, usager, organisme)
    return None


def _open_act382(session: Session, usager: Usager, orientation: Orientation, *, now: datetime) -> None:
    departement = organisation_for(session, usager, "CD")
    if departement is None:
        return
    assert departement.id is not None
    activites_domain.ouvrir(
        session,
        code=ACT382,
        organisation_id=departement.id,
        usager_id=usager.id,
        sujet=sujet_orientation(orientation),
        now=now,
    )
    events.orientation_a_decider(session, usager, orientation, departement.id, now)
