"""Rules of the RSA sanctions (Gestion des sanctions RSA v1): "FT propose, le CD décide".

France Travail proposes a consequence of a manquement (suspension, suppression, levée de
suspension); the département's council (CD) that covers the usager instructs and decides it
through ``evenementSanctionRSA`` events, or sends a decision of its own
(``decisionSanctionRSAPartenaire``). Each step puts the matching GLI100 activity on the CD's
list and closes the previous one, in the same transaction.

State machine (``etat`` of a consequence) and the GLI100 activity open in each state::

    SUSP_RSA        A_INSTRUIRE (ACT366) --SAISIE_SANCTION--> A_TRAITER (ACT367)
                    A_INSTRUIRE --REFUS_SAISIE_SANCTION--> VALIDEE (values as proposed)
                    A_TRAITER --VALID_SANCTION--> VALIDEE | --REFUS_SANCTION--> REFUSEE
    SUPP_RSA        A_TRAITER (ACT370): same two events as above
    LEVEE_SUSP_RSA  A_TRAITER (ACT369) --VALID_LEVEE_SUSP--> VALIDEE | --REFUS_LEVEE_SUSP--> REFUSEE
                    (FT's diagram and collection know no levée "à instruire": no ACT368)
    validated SUSP_RSA / SUPP_RSA: VALIDEE --ANNULATION_SANCTION--> ANNULEE

A refused call changes nothing. Every applied step is appended to ``historique`` with the
agent who made it, and published as a domain event concerning the deciding CD in the same
transaction (``sanction.a_instruire``, ``sanction.etat_modifie``, ``sanction.decidee``,
``parcours.events``).
Refusals carry the ``codeSortie`` of the API (``CODES``); the codes and the rules of the values a
call carries are ``parcours.sanctions_valeurs``'s, imported here for the callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlmodel import Session, select

from parcours import activites as activites_domain
from parcours import events, perimeter, writes
from parcours.sanctions_valeurs import (
    C_CONFLIT,
    C_DEPARTEMENT,
    C_ETAT,
    C_IDENTIFIANT,
    C_INCONNUE,
    C_OBLIGATOIRE,
    C_ORGANISATION,
    C_RADIATION,
    C_SUCCES,  # noqa: F401  (read here by the callers)
    C_USAGER,  # noqa: F401  (read here by the callers)
    C_VALEUR,
    CODES,  # noqa: F401  (read here by the callers)
    IDENTIFIANT,
    refus,
    valeurs,
    valider_code,
    valider_date,
    valider_manquement,
    valider_motif,
)
from parcours.tables import ConsequenceSanction, Usager
from relais.core.french_dates import local_date
from relais.core.tables import Organisation

# Types of consequence ------------------------------------------------------------------
SUSP = "SUSP_RSA"
SUPP = "SUPP_RSA"
LEVEE = "LEVEE_SUSP_RSA"
TYPES_CONSEQUENCE = (SUSP, SUPP, LEVEE)
# What a CD may validate (VALID_SANCTION) or send as its own decision.
TYPES_SANCTION = (SUSP, SUPP)

# States --------------------------------------------------------------------------------
A_INSTRUIRE = "A_INSTRUIRE"
A_TRAITER = "A_TRAITER"
VALIDEE = "VALIDEE"
REFUSEE = "REFUSEE"
ANNULEE = "ANNULEE"
ETATS = (A_INSTRUIRE, A_TRAITER, VALIDEE, REFUSEE, ANNULEE)
ETATS_EN_COURS = (A_INSTRUIRE, A_TRAITER)

ORIGINE_FT = "FT"
ORIGINE_PARTENAIRE = "PARTENAIRE"

DELAI_DECISION_JOURS = 15
# The activity's attribute naming the consequence: ``identifiantConsequenceSanction`` first
# (SIP Postman reads ``attributsSpecifiques[0]``), then the older ``idConsequenceSanction``
# that the SIP Arazzo workflows look up by name.
ATTRIBUT = "identifiantConsequenceSanction"
ATTRIBUT_ANCIEN = "idConsequenceSanction"

# The GLI100 activity open for a consequence in a given state (none in the other states).
ACTIVITE: Mapping[tuple[str, str], str] = {
    (SUSP, A_INSTRUIRE): "ACT366",
    (SUSP, A_TRAITER): "ACT367",
    (LEVEE, A_TRAITER): "ACT369",
    (SUPP, A_TRAITER): "ACT370",
}
ETAT_INITIAL: Mapping[str, str] = {SUSP: A_INSTRUIRE, LEVEE: A_TRAITER, SUPP: A_TRAITER}

# Events ---------------------------------------------------------------------------------
SAISIE_SANCTION = "SAISIE_SANCTION"
REFUS_SAISIE_SANCTION = "REFUS_SAISIE_SANCTION"
VALID_SANCTION = "VALID_SANCTION"
REFUS_SANCTION = "REFUS_SANCTION"
VALID_LEVEE_SUSP = "VALID_LEVEE_SUSP"
REFUS_LEVEE_SUSP = "REFUS_LEVEE_SUSP"
ANNULATION_SANCTION = "ANNULATION_SANCTION"
TYPES_EVENEMENT = (
    SAISIE_SANCTION,
    REFUS_SAISIE_SANCTION,
    VALID_SANCTION,
    REFUS_SANCTION,
    VALID_LEVEE_SUSP,
    REFUS_LEVEE_SUSP,
    ANNULATION_SANCTION,
)
# Steps recorded in ``historique`` that are not events of evenementSanctionRSA.
PROPOSITION = "PROPOSITION_FT"
DECISION_PARTENAIRE = "DECISION_PARTENAIRE"
DEMANDE_RADIATION = "DEMANDE_RADIATION"

# Fields an event requires besides typeEvenement and dateEvenement.
OBLIGATOIRES: Mapping[str, tuple[str, ...]] = {
    VALID_SANCTION: ("typeConsequenceSanctionValide", "modaliteDecisionValidee", "montantValide", "dureeValidee"),
    ANNULATION_SANCTION: ("typeConsequenceSanctionValide", "motifEvenement"),
}


class Rule(Protocol):
    """The signature shared by the three writes of the API."""

    def __call__(
        self,
        session: Session,
        usager: Usager,
        organisation: Organisation | None,
        body: Mapping[str, Any],
        *,
        agent: str,
        now: datetime,
    ) -> ConsequenceSanction: ...


def transition(type_consequence: str, etat: str, type_evenement: str) -> str | None:
    """The state an event leads to from ``etat``, None when the event is not allowed there."""
    if etat == A_INSTRUIRE and type_consequence == SUSP:
        return {SAISIE_SANCTION: A_TRAITER, REFUS_SAISIE_SANCTION: VALIDEE}.get(type_evenement)
    if etat == A_TRAITER and type_consequence in TYPES_SANCTION:
        return {VALID_SANCTION: VALIDEE, REFUS_SANCTION: REFUSEE}.get(type_evenement)
    if etat == A_TRAITER and type_consequence == LEVEE:
        return {VALID_LEVEE_SUSP: VALIDEE, REFUS_LEVEE_SUSP: REFUSEE}.get(type_evenement)
    return None


def transition_of(c: ConsequenceSanction, type_evenement: str) -> str | None:
    if c.etat == VALIDEE:
        if type_evenement == ANNULATION_SANCTION and c.type_consequence_validee in TYPES_SANCTION:
            return ANNULEE
        return None
    return transition(c.type_consequence, c.etat, type_evenement)


def evenements_autorises(c: ConsequenceSanction) -> list[str]:
    return [t for t in TYPES_EVENEMENT if transition_of(c, t) is not None]


def sujet(identifiant: str) -> str:
    return f"consequence:{identifiant}"


def _trace(c: ConsequenceSanction, type_: str, *, agent: str, now: datetime, date_evenement: date | None) -> None:
    entry = {
        "typeEvenement": type_,
        "dateEvenement": (date_evenement or local_date(now)).isoformat(),
        "agent": agent[:64],
        "enregistreLe": now.astimezone(UTC).isoformat(),
        "etat": c.etat,
    }
    # A new list: JSON columns only notice reassignment.
    c.historique = [*c.historique, entry]


# Writes ----------------------------------------------------------------------------------
def proposer_consequence(
    session: Session, usager: Usager, payload: dict[str, Any], *, now: datetime, agent: str = "FRANCE_TRAVAIL"
) -> ConsequenceSanction:
    """France Travail proposes a consequence of a manquement; the usager's CD decides it.

    ``payload`` uses the contract's names: ``identifiantConsequenceSanction`` (optional, kept
    as given), ``typeConsequenceSanction`` (SUSP_RSA, SUPP_RSA or LEVEE_SUSP_RSA),
    ``modaliteProposee``/``montantPropose``/``dureeProposee`` (optional, checked like the
    validated values), ``natureManquement``, ``rangManquement``, ``dateManquement``,
    ``libelleManquement`` (optional). Opens the GLI100 activity of the initial state for the
    CD, due in 15 days like the consequence.
    """
    identifiant = payload.get("identifiantConsequenceSanction")
    if identifiant is not None:
        if not isinstance(identifiant, str) or not IDENTIFIANT.fullmatch(identifiant):
            raise refus(C_VALEUR, "identifiantConsequenceSanction : 1 à 64 caractères alphanumériques, . _ : -")
        if session.get(ConsequenceSanction, identifiant) is not None:
            raise refus(C_IDENTIFIANT)
    type_ = valider_code(payload, "typeConsequenceSanction", required=True, allowed=TYPES_CONSEQUENCE)
    assert type_ is not None
    proposees = valeurs(payload, "modaliteProposee", "montantPropose", "dureeProposee", required=False)
    manquement = valider_manquement(payload, now=now, required=False)
    cd = perimeter.organisation_for(session, usager, "CD")
    if cd is None or cd.id is None:
        raise refus(C_DEPARTEMENT)
    etat = ETAT_INITIAL[type_]
    c = ConsequenceSanction(
        usager_id=usager.id,
        organisation_id=cd.id,
        origine=ORIGINE_FT,
        manquement=manquement,
        type_consequence=type_,
        modalite_proposee=proposees.modalite,
        montant_propose=proposees.montant,
        duree_proposee=proposees.duree,
        etat=etat,
        date_echeance=local_date(now) + timedelta(days=DELAI_DECISION_JOURS),
        historique=[],
        created_at=now,
        updated_at=now,
    )
    if identifiant is not None:
        c.id = identifiant
    _trace(c, PROPOSITION, agent=agent, now=now, date_evenement=None)
    session.add(c)
    session.flush()
    _ouvrir_activite(session, c, now=now)
    events.sanction(session, usager, c, events.SANCTION_A_INSTRUIRE, now)
    return c


def _ouvrir_activite(session: Session, c: ConsequenceSanction, *, now: datetime) -> None:
    code = ACTIVITE.get((c.type_consequence, c.etat))
    if code is None:
        return
    activites_domain.ouvrir(
        session,
        code=code,
        organisation_id=c.organisation_id,
        usager_id=c.usager_id,
        sujet=sujet(c.id),
        now=now,
        attributs=[(ATTRIBUT, c.id), (ATTRIBUT_ANCIEN, c.id)],
    )


def _load_for_update(session: Session, usager: Usager, identifiant: str) -> ConsequenceSanction:
    """Lock the consequence row; C006 if it moved since this call first read it.

    The first, plain read takes the state the caller acted on; the locking read waits for a
    concurrent writer to finish and returns the committed row. A version change between the
    two means another call won the race: this one is refused as a conflict.
    """
    if not IDENTIFIANT.fullmatch(identifiant):
        raise refus(C_INCONNUE)
    seen = session.exec(
        select(ConsequenceSanction.version).where(
            ConsequenceSanction.id == identifiant, ConsequenceSanction.usager_id == usager.id
        )
    ).first()
    if seen is None:
        raise refus(C_INCONNUE)
    c = session.exec(
        select(ConsequenceSanction)
        .where(ConsequenceSanction.id == identifiant)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if c.version != seen:
        raise refus(C_CONFLIT)
    return c


def _identifiant_requis(body: Mapping[str, Any]) -> str:
    """The consequence an event or a radiation request designates (C004 when absent)."""
    identifiant = body.get("identifiantConsequenceSanction")
    if not isinstance(identifiant, str) or not identifiant:
        raise refus(C_OBLIGATOIRE, "identifiantConsequenceSanction")
    return identifiant


def _a_decider(
    session: Session, usager: Usager, organisation: Organisation | None, identifiant: str
) -> ConsequenceSanction:
    """The consequence locked for a decision (``_load_for_update``); C007 unless the caller's
    organisation is the one that decides it. Shared by events and radiation requests."""
    c = _load_for_update(session, usager, identifiant)
    if organisation is None or organisation.id != c.organisation_id:
        raise refus(C_ORGANISATION)
    return c


def appliquer_evenement(
    session: Session,
    usager: Usager,
    organisation: Organisation | None,
    body: Mapping[str, Any],
    *,
    agent: str,
    now: datetime,
) -> ConsequenceSanction:
    """Apply one ``evenementSanctionRSA`` event of the deciding CD; refused calls change nothing."""
    identifiant = _identifiant_requis(body)
    evenement = body.get("evenement")
    if not isinstance(evenement, Mapping):
        raise refus(C_OBLIGATOIRE, "evenement")
    type_evenement = valider_code(evenement, "typeEvenement", required=True, allowed=TYPES_EVENEMENT)
    assert type_evenement is not None
    c = _a_decider(session, usager, organisation, identifiant)
    cible = transition_of(c, type_evenement)
    if cible is None:
        raise refus(C_ETAT, f"{type_evenement} impossible à l'état {c.etat}")
    for name in OBLIGATOIRES.get(type_evenement, ()):
        if body.get(name) is None or body.get(name) == "":
            raise refus(C_OBLIGATOIRE, f"{name} pour {type_evenement}")
    date_evenement = valider_date(evenement, "dateEvenement", now=now, required=True)
    # Values are checked whenever given, even if this event does not use them.
    validees = valeurs(body, "modaliteDecisionValidee", "montantValide", "dureeValidee", required=False)
    # Any type is accepted here (SIP workflows echo the proposed type on SAISIE_SANCTION);
    # VALID_SANCTION then needs a suspension or a suppression.
    type_valide = valider_code(body, "typeConsequenceSanctionValide", required=False, allowed=TYPES_CONSEQUENCE)
    if type_evenement == VALID_SANCTION and type_valide not in TYPES_SANCTION:
        raise refus(C_VALEUR, f"typeConsequenceSanctionValide doit valoir {' ou '.join(TYPES_SANCTION)}")
    motif = valider_motif(body, required=type_evenement == ANNULATION_SANCTION)

    if type_evenement == ANNULATION_SANCTION and type_valide != c.type_consequence_validee:
        raise refus(C_VALEUR, "typeConsequenceSanctionValide ne correspond pas à la conséquence validée")
    if type_evenement == REFUS_SAISIE_SANCTION:
        # "la sanction est validée telle que préconisée par France Travail".
        c.type_consequence_validee = c.type_consequence
        c.modalite_validee = c.modalite_proposee
        c.montant_valide = c.montant_propose
        c.duree_validee = c.duree_proposee
    elif type_evenement == VALID_SANCTION:
        c.type_consequence_validee = type_valide
        c.modalite_validee = validees.modalite
        c.montant_valide = validees.montant
        c.duree_validee = validees.duree
    elif type_evenement == VALID_LEVEE_SUSP:
        c.type_consequence_validee = LEVEE
    if motif is not None:
        c.motif_evenement = motif

    ancien = ACTIVITE.get((c.type_consequence, c.etat))
    c.etat = cible
    _trace(c, type_evenement, agent=agent, now=now, date_evenement=date_evenement)
    writes.save_version(session, c, now)
    if ancien is not None:
        activites_domain.fermer(
            session, sujet=sujet(c.id), par=f"evenementSanctionRSA:{type_evenement}", now=now, codes=[ancien]
        )
    _ouvrir_activite(session, c, now=now)
    decidee = c.etat in (VALIDEE, REFUSEE, ANNULEE)
    events.sanction(session, usager, c, events.SANCTION_DECIDEE if decidee else events.SANCTION_ETAT_MODIFIE, now)
    return c


def decision_partenaire(
    session: Session,
    usager: Usager,
    organisation: Organisation | None,
    body: Mapping[str, Any],
    *,
    agent: str,
    now: datetime,
) -> ConsequenceSanction:
    """A CD's own, already validated, sanction decision (``decisionSanctionRSAPartenaire``)."""
    if organisation is None or organisation.type != "CD" or organisation.id is None:
        raise refus(C_ORGANISATION, "seul un conseil départemental transmet une décision de sanction")
    if not perimeter.is_attached(session, organisation, usager):
        raise refus(C_ORGANISATION, "l'usager n'est pas rattaché à ce conseil départemental")
    date_notification = valider_date(body, "dateNotificationDecisionSanction", now=now, required=True)
    manquement = valider_manquement(body, now=now, required=True)
    type_valide = valider_code(body, "typeSanctionValide", required=True, allowed=TYPES_SANCTION)
    validees = valeurs(body, "modaliteDecisionValidee", "montantValide", "dureeValidee", required=True)
    assert type_valide is not None
    c = ConsequenceSanction(
        usager_id=usager.id,
        organisation_id=organisation.id,
        origine=ORIGINE_PARTENAIRE,
        manquement=manquement,
        type_consequence=type_valide,
        etat=VALIDEE,
        type_consequence_validee=type_valide,
        modalite_validee=validees.modalite,
        montant_valide=validees.montant,
        duree_validee=validees.duree,
        date_notification_decision=date_notification,
        historique=[],
        created_at=now,
        updated_at=now,
    )
    _trace(c, DECISION_PARTENAIRE, agent=agent, now=now, date_evenement=date_notification)
    session.add(c)
    session.flush()
    events.sanction(session, usager, c, events.SANCTION_DECIDEE, now)
    return c


def demander_radiation(
    session: Session,
    usager: Usager,
    organisation: Organisation | None,
    body: Mapping[str, Any],
    *,
    agent: str,
    now: datetime,
) -> ConsequenceSanction:
    """Request radiation once, on a validated (not annulled) suspension or suppression."""
    identifiant = _identifiant_requis(body)
    c = _a_decider(session, usager, organisation, identifiant)
    if c.etat != VALIDEE or c.type_consequence_validee not in TYPES_SANCTION:
        raise refus(C_ETAT, f"radiation possible sur une suspension ou suppression validée, état {c.etat}")
    if c.radiation_demandee_at is not None:
        raise refus(C_RADIATION)
    c.radiation_demandee_at = now
    _trace(c, DEMANDE_RADIATION, agent=agent, now=now, date_evenement=None)
    writes.save_version(session, c, now)
    events.sanction(session, usager, c, events.SANCTION_ETAT_MODIFIE, now)
    return c


# Reads -----------------------------------------------------------------------------------
def consequence_of(session: Session, usager: Usager, identifiant: str) -> ConsequenceSanction:
    if not IDENTIFIANT.fullmatch(identifiant):
        raise refus(C_INCONNUE)
    c = session.exec(
        select(ConsequenceSanction).where(
            ConsequenceSanction.id == identifiant, ConsequenceSanction.usager_id == usager.id
        )
    ).first()
    if c is None:
        raise refus(C_INCONNUE)
    return c


def en_retard(c: ConsequenceSanction, now: datetime) -> bool:
    """Undecided past the 15-day decision delay."""
    return c.etat in ETATS_EN_COURS and c.date_echeance is not None and local_date(now) > c.date_echeance


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# The fields of ``consequence_json`` (and of a write's result) that France Travail's material
# does not name (FT names the proposal the Arazzo workflow reads and the vocabulary its own
# requests use for the same conséquence): Relais' état, history, allowed events and delay, for
# the console and for a partner that opts in (``X-Relais-Details: oui``). A list of what to remove, not of what to
# keep, so that a gateway answer from France Travail keeps every field FT sends.
DETAIL_RELAIS_FIELDS = (
    "dateManquement",
    "libelleManquement",
    "origine",
    "etatConsequenceSanction",
    "codeActivite",
    "evenementsAutorises",
    "motifEvenement",
    "dateProposition",
    "dateEcheance",
    "enRetard",
    "dateDemandeRadiation",
    "historique",
)


def consequence_json(c: ConsequenceSanction, *, now: datetime | None = None) -> dict[str, Any]:
    """The consequence as ``detailManquement`` answers it (contract fields, then Relais')."""
    now = now or datetime.now(UTC)
    manquement = c.manquement or {}
    return {
        "identifiantConsequenceSanction": c.id,
        "typeConsequenceSanction": c.type_consequence,
        "modaliteProposee": c.modalite_proposee,
        "montantPropose": c.montant_propose,
        "dureeProposee": c.duree_proposee,
        "natureManquement": manquement.get("natureManquement"),
        "rangManquement": manquement.get("rangManquement"),
        "dateManquement": manquement.get("dateManquement"),
        "libelleManquement": manquement.get("libelleManquement"),
        "origine": c.origine,
        "etatConsequenceSanction": c.etat,
        "codeActivite": ACTIVITE.get((c.type_consequence, c.etat)),
        "evenementsAutorises": evenements_autorises(c),
        "typeConsequenceSanctionValide": c.type_consequence_validee,
        "modaliteDecisionValidee": c.modalite_validee,
        "montantValide": c.montant_valide,
        "dureeValidee": c.duree_validee,
        "dateNotificationDecisionSanction": _iso(c.date_notification_decision),
        "motifEvenement": c.motif_evenement,
        "dateProposition": _iso(local_date(c.created_at)) if c.origine == ORIGINE_FT else None,
        "dateEcheance": _iso(c.date_echeance),
        "enRetard": en_retard(c, now),
        "dateDemandeRadiation": _iso(c.radiation_demandee_at),
        "historique": [
            {
                "typeEvenement": h.get("typeEvenement"),
                "dateEvenement": h.get("dateEvenement"),
                "identifiantAgent": h.get("agent"),
                "dateEnregistrement": h.get("enregistreLe"),
                "etatConsequenceSanction": h.get("etat"),
            }
            for h in c.historique
        ],
    }
