"""Yearly review campaigns: every habilitation of an organisation reviewed by its RGC.

The convention (Annexe 1, art. 5) asks each RGC for an exhaustive yearly update of the list of
habilitated people and a prompt correction of every anomaly. A campaign therefore:

- opens with a deadline and one item per (agent, habilitation) still in force, each with the
  evidence the RGC needs: last use per scope (from the audit trail), last login, grant age,
  justification and anomaly flags;
- collects a decision per item (keep, revoke, keep until a date, reduce scopes), each with a
  comment, changeable until the decisions are applied;
- at the deadline, revokes what is still unanswered (the only safe default) and applies every
  decision; at closure (every item decided, fresh authentication of the RGC) applies what is
  left and freezes a report in JSON, CSV and HTML whose SHA-256 goes to the audit trail.

State changes of agents and grants are never written here: applying a decision calls
``habilitations.lifecycle``, which audits each transition. What it refuses (an RGC keeping
their own grant, a grant already revoked...) becomes the remediation's status, never a
silent success.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, type_coerce
from sqlmodel import Session, UTCDateTime, col, select

from audit.journal import decision_for
from audit.models import AuditEvent
from habilitations import lifecycle
from habilitations.campaign_models import (
    A_APPLIQUER,
    APPLIQUEE,
    CLOTUREE,
    DECISIONS,
    ECHUE,
    EN_ECHEC,
    MAINTENIR,
    MAINTENIR_JUSQU_AU,
    OUVERTE,
    REDUIRE,
    REVOQUER,
    SANS_OBJET,
    CampagneElement,
    CampagneRapport,
    CampagneRevue,
)
from habilitations.inactivity import is_overdue, local_date
from habilitations.models import ACTIF, BLOQUE, SUSPENDU_INACTIVITE, Agent, Habilitation, Souscription
from habilitations.roles import Principal
from relais.core.tables import Organisation

# Grants still in force, hence under review (revoked and deleted ones are history).
ETATS_REVUS = (ACTIF, SUSPENDU_INACTIVITE, BLOQUE)
SCOPE_UNUSED_AFTER = timedelta(days=90)
# A campaign is a yearly exercise: its deadline is at most a year away.
MAX_CAMPAIGN_DAYS = 366
COMMENT_MAX_LENGTH = 2000

# Anomaly flags (codes, shown to the RGC and kept in the report).
DEVRAIT_ETRE_SUSPENDU = "DEVRAIT_ETRE_SUSPENDU"
SCOPE_INUTILISE_90_JOURS = "SCOPE_INUTILISE_90_JOURS"
HORS_SOUSCRIPTION = "HORS_SOUSCRIPTION"
SANS_JUSTIFICATION = "SANS_JUSTIFICATION"
BLOCAGE_SECURITE = "BLOCAGE_SECURITE"

ATTESTATION = (
    "Le responsable de gestion des comptes atteste avoir revu l'ensemble des habilitations de son "
    "organisation et décidé, pour chacune, de son maintien, de sa réduction ou de sa révocation "
    "(convention, annexe 1, article 5)."
)
EXPIRY_COMMENT = "Sans réponse à la date limite : révocation automatique"
EXPIRY_ACTOR = "echeance"
# Revocation reasons recorded by the lifecycle.
MOTIF_REVUE = "revue_annuelle"
MOTIF_ECHEANCE = "revue_annuelle_sans_reponse"

# Refusal kinds, mapped to HTTP statuses by the API.
INVALIDE = "invalide"
INTROUVABLE = "introuvable"
CONFLIT = "conflit"
INTERDIT = "interdit"


class CampaignRefused(Exception):
    """A campaign request that cannot be honoured: a stable code and a French message."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClosedCampaign:
    campagne: CampagneRevue
    # format -> SHA-256 of the stored report.
    hashes: dict[str, str]
    applied: int
    failed: int


def actor_label(actor: Principal) -> str:
    if actor.agent_id is not None:
        return f"agent:{actor.agent_id}"
    return actor.libelle or "cli:operateur"


# Evidence ------------------------------------------------------------------------------------


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def last_use_per_scope(session: Session, habilitation: Habilitation) -> dict[str, datetime | None]:
    """When each scope of the grant was last used by an allowed call made under it."""
    # Grouped in the database: a busy agent's year of calls is a handful of rows here. The
    # maximum keeps the column's type, so SQLite gives it back aware like the column.
    rows = session.exec(
        select(AuditEvent.scopes, type_coerce(func.max(AuditEvent.occurred_at), UTCDateTime()))
        .where(
            AuditEvent.habilitation_id == habilitation.id,
            AuditEvent.decision == decision_for(200),
            col(AuditEvent.scopes).is_not(None),
        )
        .group_by(col(AuditEvent.scopes))
    ).all()
    last: dict[str, datetime | None] = dict.fromkeys(habilitation.scopes)
    for scopes, occurred_at in rows:
        for scope in (scopes or "").split():
            if scope in last:
                seen = last[scope]
                if seen is None or occurred_at > seen:
                    last[scope] = occurred_at
    return last


def _subscribed_scopes(session: Session, organisation_id: int) -> dict[str, set[str]]:
    rows = session.exec(select(Souscription).where(Souscription.organisation_id == organisation_id)).all()
    return {row.api: set(row.scopes) for row in rows}


def _override_targets(session: Session, organisation_id: int, since: datetime | None) -> set[str]:
    """Targets (``agent:<id>``, ``habilitation:<id>``) of security overrides since a date."""
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    return {event.target for event in lifecycle.security_overrides(session, organisation.code, since) if event.target}


def evidence(
    session: Session,
    agent: Agent,
    habilitation: Habilitation,
    *,
    subscriptions: dict[str, set[str]],
    overrides: set[str],
    now: datetime,
) -> dict[str, Any]:
    """What the RGC sees to decide on one grant (codes and dates: no personal data)."""
    last_use = last_use_per_scope(session, habilitation)
    unused_since = now - SCOPE_UNUSED_AFTER
    unused = sorted(
        scope
        for scope, used in last_use.items()
        if (used is None and habilitation.accordee_le <= unused_since) or (used is not None and used <= unused_since)
    )
    outside = sorted(set(habilitation.scopes) - subscriptions.get(habilitation.api, set()))
    anomalies: list[str] = []
    if agent.etat == ACTIF and is_overdue(agent, now):
        anomalies.append(DEVRAIT_ETRE_SUSPENDU)
    if unused:
        anomalies.append(SCOPE_INUTILISE_90_JOURS)
    if outside:
        anomalies.append(HORS_SOUSCRIPTION)
    if not (habilitation.justification or "").strip():
        anomalies.append(SANS_JUSTIFICATION)
    blocked = BLOQUE in (agent.etat, habilitation.etat)
    if blocked or {f"agent:{agent.id}", f"habilitation:{habilitation.id}"} & overrides:
        anomalies.append(BLOCAGE_SECURITE)
    return {
        "etatAgent": agent.etat,
        "etatHabilitation": habilitation.etat,
        "derniereUtilisationParScope": {scope: _iso(used) for scope, used in sorted(last_use.items())},
        "derniereConnexion": _iso(agent.derniere_connexion),
        "derniereConnexionAcr": agent.derniere_connexion_acr,
        "derniereActivite": _iso(agent.derniere_activite),
        "accordeeLe": _iso(habilitation.accordee_le),
        "ancienneteJours": max((now - habilitation.accordee_le).days, 0),
        "justification": habilitation.justification,
        "scopesInutilises": unused,
        "scopesHorsSouscription": outside,
        "anomalies": anomalies,
    }


def _grants_under_review(session: Session, organisation_id: int) -> list[tuple[Agent, Habilitation]]:
    rows = session.exec(
        select(Agent, Habilitation)
        .join(Habilitation, col(Habilitation.agent_id) == col(Agent.id))
        .where(Agent.organisation_id == organisation_id, col(Habilitation.etat).in_(ETATS_REVUS))
        .order_by(col(Agent.identifiant), col(Agent.id), col(Habilitation.api), col(Habilitation.id))
    ).all()
    return [(agent, habilitation) for agent, habilitation in rows]


def _previous_campaign_at(session: Session, organisation_id: int, before: datetime | None = None) -> datetime | None:
    query = select(CampagneRevue.ouverte_le).where(CampagneRevue.organisation_id == organisation_id)
    if before is not None:
        query = query.where(CampagneRevue.ouverte_le < before)
    return session.exec(query.order_by(col(CampagneRevue.ouverte_le).desc()).limit(1)).first()


def findings(session: Session, organisation_id: int, now: datetime) -> list[tuple[Agent, Habilitation, dict[str, Any]]]:
    """Current anomalies of the organisation's grants in force, the campaign's flags live."""
    subscriptions = _subscribed_scopes(session, organisation_id)
    overrides = _override_targets(session, organisation_id, _previous_campaign_at(session, organisation_id))
    found = []
    for agent, habilitation in _grants_under_review(session, organisation_id):
        proof = evidence(session, agent, habilitation, subscriptions=subscriptions, overrides=overrides, now=now)
        if proof["anomalies"]:
            found.append((agent, habilitation, proof))
    return found


# Opening ------------------------------------------------------------------------------------


def open_campaign(
    session: Session, actor: Principal, organisation: Organisation, date_limite: date, now: datetime
) -> CampagneRevue:
    assert organisation.id is not None
    today = local_date(now)
    if not today < date_limite <= today + timedelta(days=MAX_CAMPAIGN_DAYS):
        raise CampaignRefused(
            INVALIDE,
            "DATE_LIMITE_INVALIDE",
            f"La date limite doit être postérieure à aujourd'hui et à moins de {MAX_CAMPAIGN_DAYS} jours",
        )
    # Locked so that two RGCs opening at once do not get two campaigns (no-op on SQLite).
    session.exec(select(Organisation).where(Organisation.id == organisation.id).with_for_update()).one()
    current = session.exec(
        select(CampagneRevue).where(
            CampagneRevue.organisation_id == organisation.id, col(CampagneRevue.etat).in_((OUVERTE, ECHUE))
        )
    ).first()
    if current is not None:
        raise CampaignRefused(
            CONFLIT, "CAMPAGNE_DEJA_OUVERTE", "Une campagne de revue est déjà en cours pour cette organisation"
        )
    overrides = _override_targets(session, organisation.id, _previous_campaign_at(session, organisation.id))
    campagne = CampagneRevue(
        organisation_id=organisation.id,
        date_limite=date_limite,
        ouverte_par=actor.agent_id,
        ouverte_par_libelle=actor_label(actor),
        ouverte_le=now,
    )
    session.add(campagne)
    session.flush()
    subscriptions = _subscribed_scopes(session, organisation.id)
    for agent, habilitation in _grants_under_review(session, organisation.id):
        assert agent.id is not None
        session.add(
            CampagneElement(
                campagne_id=campagne.id,
                agent_id=agent.id,
                habilitation_id=habilitation.id,
                preuves=evidence(
                    session,
                    agent,
                    habilitation,
                    subscriptions=subscriptions,
                    overrides=overrides,
                    now=now,
                ),
            )
        )
    session.flush()
    return campagne


# Reading ------------------------------------------------------------------------------------


def get_campaign(session: Session, campagne_id: str, *, lock: bool = False) -> CampagneRevue:
    query = select(CampagneRevue).where(CampagneRevue.id == campagne_id)
    if lock:
        query = query.with_for_update()
    campagne = session.exec(query).first()
    if campagne is None:
        raise CampaignRefused(INTROUVABLE, "CAMPAGNE_INCONNUE", "Aucune campagne de revue ne porte cet identifiant")
    return campagne


def items(session: Session, campagne: CampagneRevue) -> list[CampagneElement]:
    return list(
        session.exec(
            select(CampagneElement)
            .where(CampagneElement.campagne_id == campagne.id)
            .order_by(col(CampagneElement.agent_id), col(CampagneElement.habilitation_id))
        ).all()
    )


def remediations(session: Session, campagne: CampagneRevue) -> list[CampagneElement]:
    """Items whose decision changes something (revoke, reduce, keep until), with their status."""
    return [item for item in items(session, campagne) if item.decision not in (None, MAINTENIR)]


def count_undecided(session: Session, campagne: CampagneRevue) -> int:
    return sum(1 for item in items(session, campagne) if item.decision is None)


# Deciding -----------------------------------------------------------------------------------


def decide(
    session: Session,
    actor: Principal,
    campagne: CampagneRevue,
    element_id: str,
    *,
    decision: str,
    commentaire: str,
    date_fin: date | None,
    scopes: Sequence[str] | None,
    now: datetime,
) -> CampagneElement:
    expire_if_due(session, campagne, now)
    if campagne.etat != OUVERTE:
        raise CampaignRefused(
            CONFLIT,
            "CAMPAGNE_NON_OUVERTE",
            "La campagne n'accepte plus de décision (date limite dépassée ou campagne clôturée)",
        )
    item = session.exec(
        select(CampagneElement)
        .where(CampagneElement.id == element_id, CampagneElement.campagne_id == campagne.id)
        .with_for_update()
    ).first()
    if item is None:
        raise CampaignRefused(INTROUVABLE, "ELEMENT_INCONNU", "Cet élément n'appartient pas à la campagne")
    if decision not in DECISIONS:
        raise CampaignRefused(INVALIDE, "DECISION_INVALIDE", f"Décision inconnue : attendu {', '.join(DECISIONS)}")
    commentaire = commentaire.strip()
    if not commentaire or len(commentaire) > COMMENT_MAX_LENGTH:
        raise CampaignRefused(
            INVALIDE,
            "COMMENTAIRE_OBLIGATOIRE",
            f"Chaque décision porte un commentaire (1 à {COMMENT_MAX_LENGTH} caractères)",
        )
    habilitation = session.get(Habilitation, item.habilitation_id)
    assert habilitation is not None
    if actor.agent_id is not None and actor.agent_id == item.agent_id and decision in (MAINTENIR, MAINTENIR_JUSQU_AU):
        raise CampaignRefused(
            INTERDIT,
            "AUTO_REVUE_INTERDITE",
            "Un RGC ne peut pas maintenir ses propres habilitations : un autre RGC de l'organisation doit en décider",
        )
    decision_date_fin: date | None = None
    decision_scopes: list[str] | None = None
    if decision == MAINTENIR_JUSQU_AU:
        if date_fin is None or date_fin <= local_date(now):
            raise CampaignRefused(
                INVALIDE, "DATE_FIN_INVALIDE", "« maintenir_jusqu_au » demande une dateFin postérieure à aujourd'hui"
            )
        decision_date_fin = date_fin
    elif date_fin is not None:
        raise CampaignRefused(INVALIDE, "DATE_FIN_NON_PREVUE", "dateFin n'est prévue que pour « maintenir_jusqu_au »")
    if decision == REDUIRE:
        kept = list(dict.fromkeys(scopes or []))
        if not kept or not set(kept) < set(habilitation.scopes):
            raise CampaignRefused(
                INVALIDE,
                "SCOPES_INVALIDES",
                "« reduire » demande une partie non vide et stricte des scopes de l'habilitation",
            )
        decision_scopes = kept
    elif scopes:
        raise CampaignRefused(INVALIDE, "SCOPES_NON_PREVUS", "scopes n'est prévu que pour « reduire »")
    item.decision = decision
    item.decision_date_fin = decision_date_fin
    item.decision_scopes = decision_scopes
    item.commentaire = commentaire
    item.decidee_par = actor.agent_id
    item.decidee_par_libelle = actor_label(actor)
    item.decidee_le = now
    item.remediation = SANS_OBJET if decision == MAINTENIR else A_APPLIQUER
    session.add(item)
    session.flush()
    return item


# Applying decisions (deadline or closure) ---------------------------------------------------


def _apply(session: Session, actor: Principal, item: CampagneElement, now: datetime) -> None:
    """Apply one decision through the lifecycle; record the outcome as the remediation."""
    if item.remediation != A_APPLIQUER:
        return
    habilitation = session.get(Habilitation, item.habilitation_id)
    assert habilitation is not None
    # A code, as the lifecycle wants: the campaign itself is the request's audit target.
    reason = MOTIF_ECHEANCE if item.decidee_par_libelle == EXPIRY_ACTOR else MOTIF_REVUE
    try:
        if habilitation.etat not in ETATS_REVUS:
            item.remediation, item.remediation_code = SANS_OBJET, f"habilitation_{habilitation.etat}"
        elif item.decision == REVOQUER:
            lifecycle.revoke_habilitation(session, actor, habilitation.id, motif=reason, now=now)
            item.remediation, item.remediation_code = APPLIQUEE, None
        elif item.decision == REDUIRE:
            lifecycle.reduce_habilitation(session, actor, habilitation.id, scopes=item.decision_scopes or [], now=now)
            item.remediation, item.remediation_code = APPLIQUEE, None
        elif item.decision == MAINTENIR_JUSQU_AU:
            assert item.decision_date_fin is not None
            lifecycle.set_habilitation_end(session, actor, habilitation.id, date_fin=item.decision_date_fin, now=now)
            item.remediation, item.remediation_code = APPLIQUEE, None
    except lifecycle.LifecycleRefused as refused:
        item.remediation, item.remediation_code = EN_ECHEC, refused.code[:64]
    item.remediation_le = now
    session.add(item)


def _apply_all(session: Session, actor: Principal, campagne: CampagneRevue, now: datetime) -> tuple[int, int]:
    applied = failed = 0
    for item in items(session, campagne):
        _apply(session, actor, item, now)
        applied += item.remediation == APPLIQUEE
        failed += item.remediation == EN_ECHEC
    session.flush()
    return applied, failed


def expire_if_due(session: Session, campagne: CampagneRevue, now: datetime) -> bool:
    """Past its deadline, an open campaign revokes what is unanswered and applies every decision.

    Checked when the campaign is touched too, so that a late sweep never lets a decision in
    after the deadline.
    """
    if campagne.etat != OUVERTE or local_date(now) <= campagne.date_limite:
        return False
    for item in items(session, campagne):
        if item.decision is None:
            item.decision = REVOQUER
            item.commentaire = EXPIRY_COMMENT
            item.decidee_par = None
            item.decidee_par_libelle = EXPIRY_ACTOR
            item.decidee_le = now
            item.remediation = A_APPLIQUER
            session.add(item)
    session.flush()
    _apply_all(session, lifecycle_actor(), campagne, now)
    campagne.etat = ECHUE
    campagne.echue_le = now
    campagne.version += 1
    session.add(campagne)
    session.flush()
    return True


def lifecycle_actor() -> Principal:
    """Who revokes at the deadline: the automation, audited on the lifecycle channel."""
    return lifecycle.SYSTEM_ACTOR


def expire_due_campaigns(session: Session, now: datetime) -> int:
    """Expire every open campaign whose deadline is over; the number of campaigns expired.

    Idempotent: an expired campaign is no longer open. The caller commits.
    """
    due = session.exec(
        select(CampagneRevue)
        .where(CampagneRevue.etat == OUVERTE, col(CampagneRevue.date_limite) < local_date(now))
        .with_for_update()
    ).all()
    return sum(1 for campagne in due if expire_if_due(session, campagne, now))


# Closing and the report ---------------------------------------------------------------------


def close_campaign(
    session: Session, actor: Principal, campagne: CampagneRevue, *, now: datetime, fresh_auth: timedelta
) -> ClosedCampaign:
    expire_if_due(session, campagne, now)
    if campagne.etat == CLOTUREE:
        raise CampaignRefused(CONFLIT, "CAMPAGNE_CLOTUREE", "La campagne est déjà clôturée")
    undecided = count_undecided(session, campagne)
    if undecided:
        raise CampaignRefused(
            CONFLIT,
            "ELEMENTS_NON_DECIDES",
            f"{undecided} élément(s) sans décision : chaque habilitation doit être décidée avant la clôture",
        )
    if not actor.authenticated_within(now, fresh_auth):
        raise CampaignRefused(
            INTERDIT,
            "AUTHENTIFICATION_RECENTE_REQUISE",
            "La clôture demande une authentification récente : reconnectez-vous avec ProConnect puis recommencez",
        )
    applied, failed = _apply_all(session, actor, campagne, now)
    campagne.etat = CLOTUREE
    campagne.cloturee_par = actor.agent_id
    campagne.cloturee_par_libelle = actor_label(actor)
    campagne.cloturee_le = now
    campagne.version += 1
    session.add(campagne)
    session.flush()
    hashes = {}
    for format_, content in render_reports(session, campagne).items():
        digest = hashlib.sha256(content.encode()).hexdigest()
        session.add(
            CampagneRapport(campagne_id=campagne.id, format=format_, contenu=content, sha256=digest, cree_le=now)
        )
        hashes[format_] = digest
    session.flush()
    return ClosedCampaign(campagne, hashes, applied, failed)


def report(session: Session, campagne: CampagneRevue, format_: str) -> CampagneRapport:
    if campagne.etat != CLOTUREE:
        raise CampaignRefused(CONFLIT, "CAMPAGNE_NON_CLOTUREE", "Le rapport n'existe qu'une fois la campagne clôturée")
    found = session.exec(
        select(CampagneRapport).where(CampagneRapport.campagne_id == campagne.id, CampagneRapport.format == format_)
    ).first()
    if found is None:
        raise CampaignRefused(INTROUVABLE, "RAPPORT_INCONNU", "Format de rapport inconnu : json, csv ou html")
    return found


def campaign_json(session: Session, campagne: CampagneRevue) -> dict[str, Any]:
    organisation = session.get(Organisation, campagne.organisation_id)
    assert organisation is not None
    all_items = items(session, campagne)
    return {
        "id": campagne.id,
        "organisation": organisation.code,
        "etat": campagne.etat,
        "dateLimite": campagne.date_limite.isoformat(),
        "ouverteLe": _iso(campagne.ouverte_le),
        "ouvertePar": campagne.ouverte_par_libelle,
        "echueLe": _iso(campagne.echue_le),
        "clotureeLe": _iso(campagne.cloturee_le),
        "clotureePar": campagne.cloturee_par_libelle,
        "elements": len(all_items),
        "elementsNonDecides": sum(1 for item in all_items if item.decision is None),
    }


def item_json(item: CampagneElement) -> dict[str, Any]:
    return {
        "id": item.id,
        "agentId": item.agent_id,
        "habilitationId": item.habilitation_id,
        "preuves": item.preuves,
        "decision": item.decision,
        "dateFin": _iso(item.decision_date_fin),
        "scopes": item.decision_scopes,
        "commentaire": item.commentaire,
        "decideePar": item.decidee_par_libelle,
        "decideeLe": _iso(item.decidee_le),
        "remediation": item.remediation,
        "remediationCode": item.remediation_code,
        "remediationLe": _iso(item.remediation_le),
    }


def _report_rows(session: Session, campagne: CampagneRevue) -> list[dict[str, Any]]:
    rows = []
    for item in items(session, campagne):
        agent = session.get(Agent, item.agent_id)
        habilitation = session.get(Habilitation, item.habilitation_id)
        assert agent is not None and habilitation is not None
        rows.append(
            {
                "agent": {
                    "id": agent.id,
                    "identifiant": agent.identifiant,
                    "type": agent.type,
                    "nom": agent.nom,
                    "prenom": agent.prenom,
                },
                "habilitation": {
                    "id": habilitation.id,
                    "api": habilitation.api,
                    "finalite": habilitation.finalite,
                },
                **{key: value for key, value in item_json(item).items() if key not in ("agentId", "habilitationId")},
            }
        )
    return rows


def report_document(session: Session, campagne: CampagneRevue) -> dict[str, Any]:
    rows = _report_rows(session, campagne)
    decisions: dict[str, int] = {}
    for row in rows:
        decisions[row["decision"]] = decisions.get(row["decision"], 0) + 1
    return {
        "campagne": campaign_json(session, campagne),
        "attestation": ATTESTATION,
        "synthese": {
            "elements": len(rows),
            "decisions": dict(sorted(decisions.items())),
            "remediationsEnEchec": sum(1 for row in rows if row["remediation"] == EN_ECHEC),
            "anomalies": sum(1 for row in rows if row["preuves"].get("anomalies")),
        },
        "elements": rows,
    }


CSV_COLUMNS = (
    "element",
    "agent_id",
    "agent_identifiant",
    "agent_type",
    "agent_nom",
    "agent_prenom",
    "habilitation_id",
    "api",
    "finalite",
    "etat_habilitation",
    "derniere_connexion",
    "anciennete_jours",
    "derniere_utilisation_par_scope",
    "anomalies",
    "justification",
    "decision",
    "date_fin",
    "scopes_conserves",
    "commentaire",
    "decidee_par",
    "decidee_le",
    "remediation",
    "remediation_code",
)


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells starting with these as formulas (CSV injection).
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        proofs = row["preuves"]
        writer.writerow(
            _csv_cell(value)
            for value in (
                row["id"],
                row["agent"]["id"],
                row["agent"]["identifiant"],
                row["agent"]["type"],
                row["agent"]["nom"],
                row["agent"]["prenom"],
                row["habilitation"]["id"],
                row["habilitation"]["api"],
                row["habilitation"]["finalite"],
                proofs.get("etatHabilitation"),
                proofs.get("derniereConnexion"),
                proofs.get("ancienneteJours"),
                " ".join(
                    f"{scope}={used or 'jamais'}" for scope, used in proofs["derniereUtilisationParScope"].items()
                ),
                " ".join(proofs.get("anomalies", [])),
                proofs.get("justification"),
                row["decision"],
                row["dateFin"],
                " ".join(row["scopes"] or []),
                row["commentaire"],
                row["decideePar"],
                row["decideeLe"],
                row["remediation"],
                row["remediationCode"],
            )
        )
    return buffer.getvalue()


def _html(document: dict[str, Any]) -> str:
    def e(value: Any) -> str:
        return html.escape("" if value is None else str(value), quote=True)

    campagne = document["campagne"]
    lines = [
        "<!DOCTYPE html>",
        '<html lang="fr"><head><meta charset="utf-8">',
        f"<title>Revue des habilitations {e(campagne['organisation'])} {e(campagne['id'])}</title>",
        "<style>body{font-family:sans-serif;font-size:10pt}table{border-collapse:collapse;width:100%}"
        "th,td{border:1px solid #444;padding:2px 4px;vertical-align:top}@media print{a{color:inherit}}</style>",
        "</head><body>",
        f"<h1>Revue annuelle des habilitations — {e(campagne['organisation'])}</h1>",
        "<dl>",
    ]
    for label, key in (
        ("Campagne", "id"),
        ("Date limite", "dateLimite"),
        ("Ouverte le", "ouverteLe"),
        ("Ouverte par", "ouvertePar"),
        ("Échue le", "echueLe"),
        ("Clôturée le", "clotureeLe"),
        ("Clôturée par", "clotureePar"),
    ):
        lines.append(f"<dt>{e(label)}</dt><dd>{e(campagne[key])}</dd>")
    lines += ["</dl>", f"<p>{e(document['attestation'])}</p>", "<table><thead><tr>"]
    headers = ("Agent", "API", "Dernières utilisations", "Anomalies", "Décision", "Commentaire", "Remédiation")
    lines.append("".join(f"<th>{e(header)}</th>" for header in headers) + "</tr></thead><tbody>")
    for row in document["elements"]:
        agent = row["agent"]
        proofs = row["preuves"]
        uses = "<br>".join(
            f"{e(scope)} : {e(used or 'jamais')}" for scope, used in proofs["derniereUtilisationParScope"].items()
        )
        decision = row["decision"] or ""
        if row["dateFin"]:
            decision += f" ({row['dateFin']})"
        if row["scopes"]:
            decision += f" ({' '.join(row['scopes'])})"
        cells = (
            e(f"{agent['identifiant']} — {agent['prenom']} {agent['nom']}".strip()),
            e(row["habilitation"]["api"]),
            uses,
            e(" ".join(proofs.get("anomalies", []))),
            e(decision),
            e(row["commentaire"]),
            e(" ".join(filter(None, (row["remediation"], row["remediationCode"])))),
        )
        lines.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    lines += ["</tbody></table>", "</body></html>", ""]
    return "\n".join(lines)


def render_reports(session: Session, campagne: CampagneRevue) -> dict[str, str]:
    document = report_document(session, campagne)
    return {
        "json": json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2) + "\n",
        "csv": _csv(document["elements"]),
        "html": _html(document),
    }
