"""Yearly review campaigns: every habilitation of an organisation reviewed by its RGC.

The convention (Annexe 1, art. 5) asks each RGC for an exhaustive yearly update of the list of
habilitated people and a prompt correction of every anomaly. A campaign therefore:

- opens with a deadline and one item per (agent, habilitation) still in force, each with the
  evidence the RGC needs: last use per scope (from the audit trail), last login, grant age,
  justification and anomaly flags;
- collects a decision per item (keep, revoke, keep until a date, reduce scopes), one by one or
  for several items at once, changeable until the decisions are applied; a comment is required
  only to keep a grant showing anomalies, and a reduction must leave an operation callable;
- at the deadline, revokes what is still unanswered (the only safe default) and applies every
  decision; at closure (every item decided, fresh authentication of the RGC) applies what is
  left and freezes a report in JSON, CSV and HTML whose SHA-256 goes to the audit trail.

State changes of grants are never written here: applying a decision calls
``habilitations.grants``, which audits each transition through the ``AuditRecorder`` the
caller passes, under the caller's ``request_id``. What it refuses (an RGC keeping their own
grant, a grant already revoked...) becomes the remediation's status, never a silent
success. The evidence is gathered by ``habilitations.campaign_evidence`` and the frozen
report written by ``habilitations.campaign_reports``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from habilitations import grants
from habilitations.campaign_evidence import (
    ETATS_REVUS,
    evidence,
    grants_under_review,
    override_targets,
    previous_campaign_at,
    subscribed_scopes,
)
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
from habilitations.campaign_reports import render_pdf, render_reports, render_tableur, report_document
from habilitations.models import Agent, Habilitation
from habilitations.profiles import is_useless
from habilitations.refusals import CampaignRefused, TransitionRefused
from habilitations.roles import Principal
from habilitations.transitions import SYSTEM_ACTOR
from relais.core.auditing import AuditLookup, AuditRecorder
from relais.core.french_dates import local_date
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

# A campaign is a yearly exercise: its deadline is at most a year away.
MAX_CAMPAIGN_DAYS = 366
COMMENT_MAX_LENGTH = 2000

EXPIRY_COMMENT = "Sans réponse à la date limite : révocation automatique"
EXPIRY_ACTOR = "echeance"
# Revocation reasons recorded by the grants' transitions.
MOTIF_REVUE = "revue_annuelle"
MOTIF_ECHEANCE = "revue_annuelle_sans_reponse"


@dataclass(frozen=True)
class ClosedCampaign:
    campagne: CampagneRevue
    # format -> SHA-256 of the stored report.
    hashes: dict[str, str]
    applied: int
    failed: int


# Opening ------------------------------------------------------------------------------------


def open_campaign(
    session: Session,
    actor: Principal,
    organisation: Organisation,
    date_limite: date,
    now: datetime,
    *,
    lookup: AuditLookup,
) -> CampagneRevue:
    """One item per grant in force, with its evidence (read from the journal through ``lookup``)."""
    assert organisation.id is not None
    today = local_date(now)
    if not today < date_limite <= today + timedelta(days=MAX_CAMPAIGN_DAYS):
        raise CampaignRefused(
            RefusalKind.INVALID,
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
            RefusalKind.CONFLICT,
            "CAMPAGNE_DEJA_OUVERTE",
            "Une campagne de revue est déjà en cours pour cette organisation",
        )
    since = previous_campaign_at(session, organisation.id)
    overrides = override_targets(session, organisation.id, since, lookup=lookup)
    campagne = CampagneRevue(
        organisation_id=organisation.id,
        date_limite=date_limite,
        ouverte_par=actor.agent_id,
        ouverte_par_libelle=actor.label,
        ouverte_le=now,
    )
    session.add(campagne)
    session.flush()
    subscriptions = subscribed_scopes(session, organisation.id)
    for agent, habilitation in grants_under_review(session, organisation.id):
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
                    lookup=lookup,
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
        raise CampaignRefused(
            RefusalKind.UNKNOWN, "CAMPAGNE_INCONNUE", "Aucune campagne de revue ne porte cet identifiant"
        )
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
    commentaire: str | None,
    date_fin: date | None,
    scopes: Sequence[str] | None,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> CampagneElement:
    """Record the actor's decision on one item (a campaign past its deadline expires first)."""
    expire_if_due(session, campagne, now, recorder=recorder, request_id=request_id)
    if campagne.etat != OUVERTE:
        raise CampaignRefused(
            RefusalKind.CONFLICT,
            "CAMPAGNE_NON_OUVERTE",
            "La campagne n'accepte plus de décision (date limite dépassée ou campagne clôturée)",
        )
    item = session.exec(
        select(CampagneElement)
        .where(CampagneElement.id == element_id, CampagneElement.campagne_id == campagne.id)
        .with_for_update()
    ).first()
    if item is None:
        raise CampaignRefused(RefusalKind.UNKNOWN, "ELEMENT_INCONNU", "Cet élément n'appartient pas à la campagne")
    if decision not in DECISIONS:
        raise CampaignRefused(
            RefusalKind.INVALID, "DECISION_INVALIDE", f"Décision inconnue : attendu {', '.join(DECISIONS)}"
        )
    commentaire = (commentaire or "").strip()
    if len(commentaire) > COMMENT_MAX_LENGTH:
        raise CampaignRefused(
            RefusalKind.INVALID,
            "COMMENTAIRE_TROP_LONG",
            f"Le commentaire dépasse {COMMENT_MAX_LENGTH} caractères",
        )
    # A comment is asked for only where the report needs a reason: keeping a grant that shows
    # anomalies. A routine keep or a revocation speaks for itself (the 15 calls).
    if not commentaire and decision in (MAINTENIR, MAINTENIR_JUSQU_AU) and item.preuves.get("anomalies"):
        raise CampaignRefused(
            RefusalKind.INVALID,
            "COMMENTAIRE_OBLIGATOIRE",
            "Cette habilitation présente des anomalies : dites en commentaire pourquoi vous la maintenez",
        )
    habilitation = session.get(Habilitation, item.habilitation_id)
    assert habilitation is not None
    if actor.agent_id is not None and actor.agent_id == item.agent_id and decision in (MAINTENIR, MAINTENIR_JUSQU_AU):
        raise CampaignRefused(
            RefusalKind.FORBIDDEN,
            "AUTO_REVUE_INTERDITE",
            "Un RGC ne peut pas maintenir ses propres habilitations : un autre RGC de l'organisation doit en décider",
        )
    decision_date_fin: date | None = None
    decision_scopes: list[str] | None = None
    if decision == MAINTENIR_JUSQU_AU:
        if date_fin is None or date_fin <= local_date(now):
            raise CampaignRefused(
                RefusalKind.INVALID,
                "DATE_FIN_INVALIDE",
                "« maintenir_jusqu_au » demande une dateFin postérieure à aujourd'hui",
            )
        decision_date_fin = date_fin
    elif date_fin is not None:
        raise CampaignRefused(
            RefusalKind.INVALID, "DATE_FIN_NON_PREVUE", "dateFin n'est prévue que pour « maintenir_jusqu_au »"
        )
    if decision == REDUIRE:
        kept = list(dict.fromkeys(scopes or []))
        if kept and not set(kept) < set(habilitation.scopes):
            raise CampaignRefused(
                RefusalKind.INVALID,
                "SCOPES_INVALIDES",
                "Une réduction garde une partie seulement des scopes de l'habilitation : ceux choisis "
                "les couvrent tous ou n'en font pas partie (pour tout garder, choisissez « maintenir »)",
            )
        if not kept or is_useless(habilitation.api, kept):
            raise CampaignRefused(
                RefusalKind.INVALID,
                "REDUCTION_INUTILE",
                "Après cette réduction, l'agent ne pourrait plus appeler aucune opération de l'API "
                "(une opération exige tous ses scopes) : gardez au moins une opération complète, "
                "ou révoquez l'habilitation",
            )
        decision_scopes = kept
    elif scopes:
        raise CampaignRefused(RefusalKind.INVALID, "SCOPES_NON_PREVUS", "scopes n'est prévu que pour « reduire »")
    item.decision = decision
    item.decision_date_fin = decision_date_fin
    item.decision_scopes = decision_scopes
    item.commentaire = commentaire or None
    item.decidee_par = actor.agent_id
    item.decidee_par_libelle = actor.label
    item.decidee_le = now
    item.remediation = SANS_OBJET if decision == MAINTENIR else A_APPLIQUER
    session.add(item)
    session.flush()
    return item


@dataclass(frozen=True)
class Decision:
    """One decision of a batch: the same fields as ``decide`` takes."""

    element_id: str
    decision: str
    commentaire: str | None = None
    date_fin: date | None = None
    scopes: Sequence[str] | None = None


def decide_many(
    session: Session,
    actor: Principal,
    campagne: CampagneRevue,
    decisions: Sequence[Decision],
    *,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> list[CampagneElement]:
    """Record several decisions at once, all or none: the caller rolls back on a refusal.

    Each goes through ``decide`` (same rules as one by one). A refusal names the item it is
    about (the agent's account identifier and the API, never a usager's data) so that the RGC
    knows which line to change.
    """
    if not decisions:
        raise CampaignRefused(RefusalKind.INVALID, "AUCUN_ELEMENT", "Aucune ligne choisie : cochez au moins une ligne")
    decided = []
    for wanted in decisions:
        try:
            decided.append(
                decide(
                    session,
                    actor,
                    campagne,
                    wanted.element_id,
                    decision=wanted.decision,
                    commentaire=wanted.commentaire,
                    date_fin=wanted.date_fin,
                    scopes=wanted.scopes,
                    now=now,
                    recorder=recorder,
                    request_id=request_id,
                )
            )
        except CampaignRefused as refused:
            raise CampaignRefused(
                refused.kind,
                refused.code,
                f"{_line_name(session, wanted.element_id)} : {refused.message}",
                details={"element": wanted.element_id},
                reason=refused.reason,
            ) from refused
    return decided


def _line_name(session: Session, element_id: str) -> str:
    item = session.get(CampagneElement, element_id)
    if item is None:
        return "Ligne inconnue"
    agent = session.get(Agent, item.agent_id)
    habilitation = session.get(Habilitation, item.habilitation_id)
    return f"{agent.identifiant if agent else item.agent_id} ({habilitation.api if habilitation else '?'})"


# Applying decisions (deadline or closure) ---------------------------------------------------


def _apply(
    session: Session,
    actor: Principal,
    item: CampagneElement,
    now: datetime,
    *,
    recorder: AuditRecorder,
    request_id: str,
) -> None:
    """Apply one decision through the grants' transitions; record the outcome as the remediation."""
    if item.remediation != A_APPLIQUER:
        return
    habilitation = session.get(Habilitation, item.habilitation_id)
    assert habilitation is not None
    # A code, as the transitions want: the campaign itself is the request's audit target.
    reason = MOTIF_ECHEANCE if item.decidee_par_libelle == EXPIRY_ACTOR else MOTIF_REVUE
    try:
        if habilitation.etat not in ETATS_REVUS:
            item.remediation, item.remediation_code = SANS_OBJET, f"habilitation_{habilitation.etat}"
        elif item.decision == REVOQUER:
            grants.revoke_habilitation(
                session, actor, habilitation.id, motif=reason, now=now, recorder=recorder, request_id=request_id
            )
            item.remediation, item.remediation_code = APPLIQUEE, None
        elif item.decision == REDUIRE:
            grants.reduce_habilitation(
                session,
                actor,
                habilitation.id,
                scopes=item.decision_scopes or [],
                now=now,
                recorder=recorder,
                request_id=request_id,
            )
            item.remediation, item.remediation_code = APPLIQUEE, None
        elif item.decision == MAINTENIR_JUSQU_AU:
            assert item.decision_date_fin is not None
            grants.set_habilitation_end(
                session,
                actor,
                habilitation.id,
                date_fin=item.decision_date_fin,
                now=now,
                recorder=recorder,
                request_id=request_id,
            )
            item.remediation, item.remediation_code = APPLIQUEE, None
    except TransitionRefused as refused:
        item.remediation, item.remediation_code = EN_ECHEC, refused.code[:64]
    item.remediation_le = now
    session.add(item)


def _apply_all(
    session: Session,
    actor: Principal,
    campagne: CampagneRevue,
    now: datetime,
    *,
    recorder: AuditRecorder,
    request_id: str,
) -> tuple[int, int]:
    applied = failed = 0
    for item in items(session, campagne):
        _apply(session, actor, item, now, recorder=recorder, request_id=request_id)
        applied += item.remediation == APPLIQUEE
        failed += item.remediation == EN_ECHEC
    session.flush()
    return applied, failed


def expire_if_due(
    session: Session, campagne: CampagneRevue, now: datetime, *, recorder: AuditRecorder, request_id: str
) -> bool:
    """Past its deadline, an open campaign revokes what is unanswered and applies every decision.

    Checked when the campaign is touched too, so that a late sweep never lets a decision in
    after the deadline. The automation acts (``SYSTEM_ACTOR``, audited on the lifecycle
    channel) under the caller's ``request_id``.
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
    _apply_all(session, SYSTEM_ACTOR, campagne, now, recorder=recorder, request_id=request_id)
    campagne.etat = ECHUE
    campagne.echue_le = now
    campagne.version += 1
    session.add(campagne)
    session.flush()
    return True


def expire_due_campaigns(session: Session, now: datetime, *, recorder: AuditRecorder, request_id: str) -> int:
    """Expire every open campaign whose deadline is over; the number of campaigns expired.

    Idempotent: an expired campaign is no longer open. The caller commits.
    """
    due = session.exec(
        select(CampagneRevue)
        .where(CampagneRevue.etat == OUVERTE, col(CampagneRevue.date_limite) < local_date(now))
        .with_for_update()
    ).all()
    return sum(1 for campagne in due if expire_if_due(session, campagne, now, recorder=recorder, request_id=request_id))


# Closing and the report ---------------------------------------------------------------------


def close_campaign(
    session: Session,
    actor: Principal,
    campagne: CampagneRevue,
    *,
    now: datetime,
    fresh_auth: timedelta,
    recorder: AuditRecorder,
    request_id: str,
) -> ClosedCampaign:
    """Apply every decision and freeze the report (each format stored with its SHA-256)."""
    expire_if_due(session, campagne, now, recorder=recorder, request_id=request_id)
    if campagne.etat == CLOTUREE:
        raise CampaignRefused(RefusalKind.CONFLICT, "CAMPAGNE_CLOTUREE", "La campagne est déjà clôturée")
    undecided = count_undecided(session, campagne)
    if undecided:
        raise CampaignRefused(
            RefusalKind.CONFLICT,
            "ELEMENTS_NON_DECIDES",
            f"{undecided} élément(s) sans décision : chaque habilitation doit être décidée avant la clôture",
        )
    if not actor.authenticated_within(now, fresh_auth):
        raise CampaignRefused(
            RefusalKind.FORBIDDEN,
            "AUTHENTIFICATION_RECENTE_REQUISE",
            "La clôture demande une authentification récente : reconnectez-vous avec ProConnect puis recommencez",
        )
    applied, failed = _apply_all(session, actor, campagne, now, recorder=recorder, request_id=request_id)
    campagne.etat = CLOTUREE
    campagne.cloturee_par = actor.agent_id
    campagne.cloturee_par_libelle = actor.label
    campagne.cloturee_le = now
    campagne.version += 1
    session.add(campagne)
    session.flush()
    hashes = {}
    document = report_document(session, campagne, items(session, campagne))
    for format_, content in render_reports(document).items():
        digest = hashlib.sha256(content.encode()).hexdigest()
        session.add(
            CampagneRapport(campagne_id=campagne.id, format=format_, contenu=content, sha256=digest, cree_le=now)
        )
        hashes[format_] = digest
    session.flush()
    return ClosedCampaign(campagne, hashes, applied, failed)


def report(session: Session, campagne: CampagneRevue, format_: str) -> CampagneRapport:
    if campagne.etat != CLOTUREE:
        raise CampaignRefused(
            RefusalKind.CONFLICT, "CAMPAGNE_NON_CLOTUREE", "Le rapport n'existe qu'une fois la campagne clôturée"
        )
    found = session.exec(
        select(CampagneRapport).where(CampagneRapport.campagne_id == campagne.id, CampagneRapport.format == format_)
    ).first()
    if found is None:
        raise CampaignRefused(RefusalKind.UNKNOWN, "RAPPORT_INCONNU", "Format de rapport inconnu : json, csv ou html")
    return found


# Reports for people: the PDF to sign and the tableur, final or draft ------------------------

FORMATS_POUR_LES_PERSONNES = ("pdf", "tableur")


def render_for_people(document: dict[str, Any], format_: str, *, signataire: str | None, now: datetime) -> bytes:
    """The report ``document`` as a PDF (``signataire`` signs a draft) or as a tableur CSV."""
    if format_ == "pdf":
        return render_pdf(document, signataire=signataire, genere_le=now)
    if format_ == "tableur":
        return render_tableur(document)
    raise CampaignRefused(RefusalKind.UNKNOWN, "RAPPORT_INCONNU", "Format de rapport inconnu : pdf ou tableur")


def report_for_people(
    session: Session, campagne: CampagneRevue, format_: str, *, signataire: str | None, now: datetime
) -> bytes:
    """The final report of a closed campaign (from its frozen JSON), else the draft marked « Projet »."""
    if campagne.etat == CLOTUREE:
        document = json.loads(report(session, campagne, "json").contenu)
    else:
        # The same document closure would freeze now: what the RGC is about to sign.
        document = report_document(session, campagne, items(session, campagne))
    return render_for_people(document, format_, signataire=signataire, now=now)
