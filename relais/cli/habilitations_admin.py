"""``relais habilitations ...``: the admin API's operations for an operator's scripts.

The command line acts as the hub operator (``Principal.command_line()``): the same state-change
functions and campaign domain as the API, so the same rules (subscriptions bound grants,
one titular RGC, a contractor is never RGC...). Each command writes one audit event on the
``cli`` channel (what it acted upon, ids and codes only), allowed or denied, besides the
events of the transitions it caused. Reads print JSON, one object per line, for scripts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlmodel import Session, col, select

from audit.journal import JournalRecorder
from audit.lookup import JournalLookup
from habilitations import agent_states, agents, campaigns, designations, grants, subscriptions
from habilitations.campaign_evidence import findings
from habilitations.campaign_models import DECISIONS, FORMATS_RAPPORT
from habilitations.models import ETATS, ROLES, Agent, Habilitation, Souscription
from habilitations.policy import served_apis
from habilitations.refusals import HabilitationRefused
from habilitations.roles import Principal
from habilitations.views import (
    agent_json,
    campaign_json,
    designation_json,
    habilitation_json,
    item_json,
    souscription_json,
)
from relais.cli.habilitations import habilitations_group
from relais.cli.support import fail, migrated_database
from relais.core.auditing import AuditDraft
from relais.core.config import get_settings
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

OPERATOR = Principal.command_line()
AGENT_ACTIONS = ("revoquer", "reactiver", "supprimer", "bloquer")
GRANT_ACTIONS = ("revoquer", "bloquer", "reactiver")
# The audit domain, as the habilitations domain is handed it.
RECORDER = JournalRecorder()
LOOKUP = JournalLookup()


def _echo(document: Any) -> None:
    click.echo(json.dumps(document, ensure_ascii=False, sort_keys=True))


def _audit(
    session: Session, operation: str, target: str | None, details: dict[str, Any], status: int, request_id: str
) -> None:
    draft = AuditDraft(
        channel="cli",
        operation=f"relais.cli.habilitations.{operation}",
        target=target,
        details={key: value for key, value in details.items() if value is not None} or None,
        reason=details.get("refus") if status >= 400 else None,
    )
    RECORDER.record(session, draft, request_id=request_id, http_status=status, occurred_at=_now())


def _now() -> datetime:
    return datetime.now(UTC)


def _run(operation: str, target: str | None, action: Callable[[Session, datetime, str], dict[str, Any] | None]) -> None:
    """Run ``action`` in one transaction with its audit event; a refusal is audited alone.

    ``action`` gets the session, the time and the command's request id (its transitions'
    events and the command's own share it); it returns the value-free details of the
    command's event (or None).
    """
    request_id = f"cli-{uuid.uuid4().hex}"
    with migrated_database(get_settings()) as database:
        try:
            with database.transaction() as session:
                details = action(session, _now(), request_id) or {}
                _audit(session, operation, details.pop("cible", target), details, 200, request_id)
        except HabilitationRefused as refused:
            code = refused.code.lower()
            with database.transaction() as session:
                _audit(session, operation, target, {"refus": f"{operation}:{code}"}, 403, request_id)
            fail(refused.message)


def _organisation(session: Session, code: str) -> Organisation:
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if organisation is None or organisation.id is None:
        raise HabilitationRefused(RefusalKind.UNKNOWN, "organisation_inconnue", f"Organisation inconnue : {code}")
    return organisation


def _date(value: str | None, name: str) -> date | None:
    if value is None or value == "aucune":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("date AAAA-MM-JJ attendue", param_hint=name) from None


# Agents -------------------------------------------------------------------------------------


@habilitations_group.command("agents")
@click.argument("organisation")
@click.option("--etat", type=click.Choice(ETATS), help="Seulement les agents dans cet état.")
def agents_command(organisation: str, etat: str | None) -> None:
    """Liste les agents d'une organisation (une ligne JSON par agent)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = _organisation(session, organisation)
        query = select(Agent).where(Agent.organisation_id == found.id)
        if etat:
            query = query.where(Agent.etat == etat)
        rows.extend(agent_json(session, agent) for agent in session.exec(query.order_by(col(Agent.identifiant))))
        return {"etat": etat, "resultats": len(rows)}

    _run("agents", f"organisation:{organisation}", action)
    for row in rows:
        _echo(row)


@habilitations_group.command("agent-creer")
@click.argument("organisation")
@click.argument("identifiant")
@click.option("--nom", required=True)
@click.option("--prenom", default="")
@click.option("--email")
@click.option("--statut-emploi", type=click.Choice(("fonctionnaire", "contractuel", "prestataire", "interimaire")))
def agent_create_command(
    organisation: str, identifiant: str, nom: str, prenom: str, email: str | None, statut_emploi: str | None
) -> None:
    """Crée un agent (personne) actif, sans habilitation."""
    created: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = _organisation(session, organisation)
        assert found.id is not None
        agent = agents.create_agent(
            session,
            OPERATOR,
            organisation_id=found.id,
            identifiant=identifiant,
            nom=nom,
            prenom=prenom,
            email=email,
            statut_emploi=statut_emploi,
            now=now,
            recorder=RECORDER,
            request_id=request_id,
        )
        created.update(agent_json(session, agent))
        return {"cible": f"agent:{agent.id}"}

    _run("agent-creer", f"organisation:{organisation}", action)
    _echo(created)


@habilitations_group.command("identite-technique")
@click.argument("client_id")
@click.option("--nom", required=True, help="Nom du traitement.")
@click.option("--identifiant", default="BATCH", show_default=True)
def technical_identity_command(client_id: str, nom: str, identifiant: str) -> None:
    """Déclare l'identité technique d'un client (traitements de masse)."""
    created: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        agent = agents.create_technical_identity(
            session,
            OPERATOR,
            client_id=client_id,
            nom=nom,
            identifiant=identifiant,
            now=now,
            recorder=RECORDER,
            request_id=request_id,
        )
        created.update(agent_json(session, agent))
        return {"cible": f"agent:{agent.id}", "client_id": client_id}

    _run("identite-technique", f"client:{client_id}", action)
    _echo(created)


@habilitations_group.command("agent-etat")
@click.argument("agent_id", type=int)
@click.argument("action_name", metavar="ACTION", type=click.Choice(AGENT_ACTIONS))
@click.option("--motif", required=True, help="Code du motif (depart, usage_suspect...).")
@click.option("--commentaire", help="Précision d'un blocage, sans donnée personnelle.")
def agent_state_command(agent_id: int, action_name: str, motif: str, commentaire: str | None) -> None:
    """Révoque, réactive, supprime ou bloque (blocage de sécurité) un agent."""
    result: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        audit: dict[str, Any] = {"now": now, "recorder": RECORDER, "request_id": request_id}
        if action_name == "bloquer":
            agent = agent_states.block_agent(session, OPERATOR, agent_id, motif=motif, commentaire=commentaire, **audit)
        elif action_name == "reactiver":
            agent = agent_states.reactivate_agent(session, OPERATOR, agent_id, motif=motif, **audit)
        elif action_name == "revoquer":
            agent = agent_states.revoke_agent(session, OPERATOR, agent_id, motif=motif, **audit)
        else:
            agent = agent_states.delete_agent(session, OPERATOR, agent_id, motif=motif, **audit)
        result.update(agent_json(session, agent))
        return {"action": action_name, "motif": motif}

    _run("agent-etat", f"agent:{agent_id}", action)
    _echo(result)


# Habilitations, designations, subscriptions ---------------------------------------------------


@habilitations_group.command("accorder")
@click.argument("agent_id", type=int)
@click.argument("api")
@click.option("--scope", "scopes", multiple=True, required=True, help="Scope accordé (répéter l'option).")
@click.option("--finalite", required=True)
@click.option("--justification")
@click.option("--date-fin", help="AAAA-MM-JJ")
def grant_command(
    agent_id: int, api: str, scopes: tuple[str, ...], finalite: str, justification: str | None, date_fin: str | None
) -> None:
    """Habilite un agent sur une API, dans la souscription de son organisation."""
    result: dict[str, Any] = {}
    end = _date(date_fin, "--date-fin")

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        grant = grants.grant_habilitation(
            session,
            OPERATOR,
            agent_id=agent_id,
            api=api,
            scopes=scopes,
            finalite=finalite,
            justification=justification,
            date_fin=end,
            now=now,
            recorder=RECORDER,
            request_id=request_id,
        )
        result.update(habilitation_json(grant))
        return {"cible": f"habilitation:{grant.id}", "agent_id": agent_id, "api": api}

    _run("accorder", f"agent:{agent_id}", action)
    _echo(result)


@habilitations_group.command("habilitations")
@click.argument("organisation")
@click.option("--etat", type=click.Choice(ETATS))
def grants_command(organisation: str, etat: str | None) -> None:
    """Liste les habilitations d'une organisation (une ligne JSON par habilitation)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = _organisation(session, organisation)
        query = (
            select(Habilitation)
            .join(Agent, col(Agent.id) == col(Habilitation.agent_id))
            .where(Agent.organisation_id == found.id)
        )
        if etat:
            query = query.where(Habilitation.etat == etat)
        rows.extend(habilitation_json(grant) for grant in session.exec(query.order_by(col(Habilitation.accordee_le))))
        return {"etat": etat, "resultats": len(rows)}

    _run("habilitations", f"organisation:{organisation}", action)
    for row in rows:
        _echo(row)


@habilitations_group.command("date-fin")
@click.argument("habilitation_id")
@click.argument("date_fin", metavar="DATE|aucune")
def end_date_command(habilitation_id: str, date_fin: str) -> None:
    """Prolonge ou raccourcit une habilitation (« aucune » : sans fin)."""
    result: dict[str, Any] = {}
    end = _date(date_fin, "DATE")

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        grant = grants.set_habilitation_end(
            session, OPERATOR, habilitation_id, date_fin=end, now=now, recorder=RECORDER, request_id=request_id
        )
        result.update(habilitation_json(grant))
        return {"date_fin": end.isoformat() if end else None}

    _run("date-fin", f"habilitation:{habilitation_id}", action)
    _echo(result)


@habilitations_group.command("reduire")
@click.argument("habilitation_id")
@click.option("--scope", "scopes", multiple=True, required=True, help="Scope gardé (répéter l'option).")
def reduce_command(habilitation_id: str, scopes: tuple[str, ...]) -> None:
    """Ne garde que certains scopes d'une habilitation."""
    result: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        grant = grants.reduce_habilitation(
            session, OPERATOR, habilitation_id, scopes=scopes, now=now, recorder=RECORDER, request_id=request_id
        )
        result.update(habilitation_json(grant))
        return {"scopes": list(grant.scopes)}

    _run("reduire", f"habilitation:{habilitation_id}", action)
    _echo(result)


@habilitations_group.command("habilitation-etat")
@click.argument("habilitation_id")
@click.argument("action_name", metavar="ACTION", type=click.Choice(GRANT_ACTIONS))
@click.option("--motif", required=True, help="Code du motif.")
def grant_state_command(habilitation_id: str, action_name: str, motif: str) -> None:
    """Révoque, bloque (blocage de sécurité) ou réactive une habilitation."""
    result: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        if action_name == "revoquer":
            change = grants.revoke_habilitation
        elif action_name == "bloquer":
            change = grants.block_habilitation
        else:
            change = grants.reactivate_habilitation
        grant = change(
            session, OPERATOR, habilitation_id, motif=motif, now=now, recorder=RECORDER, request_id=request_id
        )
        result.update(habilitation_json(grant))
        return {"action": action_name, "motif": motif}

    _run("habilitation-etat", f"habilitation:{habilitation_id}", action)
    _echo(result)


@habilitations_group.command("designer")
@click.argument("organisation")
@click.argument("agent_id", type=int)
@click.argument("role", type=click.Choice(ROLES))
@click.option("--acte-engagement", help="Date de l'acte d'engagement du RGC (AAAA-MM-JJ).")
def designate_command(organisation: str, agent_id: int, role: str, acte_engagement: str | None) -> None:
    """Désigne un agent RGC titulaire ou suppléant, RSSI, CSSI ou opérateur."""
    result: dict[str, Any] = {}
    commitment = _date(acte_engagement, "--acte-engagement")

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = _organisation(session, organisation)
        assert found.id is not None
        designation = designations.designate(
            session,
            OPERATOR,
            organisation_id=found.id,
            agent_id=agent_id,
            role=role,
            acte_engagement_le=commitment,
            now=now,
            recorder=RECORDER,
            request_id=request_id,
        )
        result.update(designation_json(session, designation))
        return {"cible": f"designation:{designation.id}", "role": role, "agent_id": agent_id}

    _run("designer", f"organisation:{organisation}", action)
    _echo(result)


@habilitations_group.command("fin-designation")
@click.argument("designation_id", type=int)
@click.option("--motif", required=True, help="depart, changement_fonction, absence_prolongee...")
def end_designation_command(designation_id: int, motif: str) -> None:
    """Met fin à une désignation (signalement au CSSI pour le départ ou l'absence d'un RGC)."""
    result: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        designation = designations.end_designation(
            session, OPERATOR, designation_id, motif=motif, now=now, recorder=RECORDER, request_id=request_id
        )
        result.update(designation_json(session, designation))
        return {"motif": motif}

    _run("fin-designation", f"designation:{designation_id}", action)
    _echo(result)


@habilitations_group.command("souscription")
@click.argument("organisation")
@click.argument("api")
@click.option("--scope", "scopes", multiple=True, required=True, help="Scope souscrit (répéter l'option).")
@click.option("--reference", help="Référence du formulaire d'accès.")
def subscription_command(organisation: str, api: str, scopes: tuple[str, ...], reference: str | None) -> None:
    """Définit la souscription d'une organisation à une API (formulaire d'accès, annexe 4)."""
    result: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = _organisation(session, organisation)
        assert found.id is not None
        if api not in served_apis():
            expected = ", ".join(sorted(served_apis()))
            raise HabilitationRefused(
                RefusalKind.INVALID, "api_inconnue", f"API inconnue : {api} (attendu : {expected})"
            )
        souscription: Souscription = subscriptions.set_subscription(
            session,
            OPERATOR,
            organisation_id=found.id,
            api=api,
            scopes=scopes,
            reference=reference,
            now=now,
            recorder=RECORDER,
            request_id=request_id,
        )
        result.update(souscription_json(souscription))
        return {"api": api}

    _run("souscription", f"organisation:{organisation}", action)
    _echo(result)


@habilitations_group.command("anomalies")
@click.argument("organisation")
def findings_command(organisation: str) -> None:
    """Anomalies des habilitations en vigueur (une ligne JSON par habilitation concernée)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = _organisation(session, organisation)
        assert found.id is not None
        for agent, grant, proofs in findings(session, found.id, now, lookup=LOOKUP):
            rows.append({"agentId": agent.id, "identifiant": agent.identifiant, "habilitationId": grant.id, **proofs})
        return {"anomalies": len(rows)}

    _run("anomalies", f"organisation:{organisation}", action)
    for row in rows:
        _echo(row)


# Review campaigns ---------------------------------------------------------------------------


@habilitations_group.group("campagne")
def campaign_group() -> None:
    """Campagnes de revue annuelle des habilitations."""


@campaign_group.command("ouvrir")
@click.argument("organisation")
@click.option("--date-limite", required=True, help="AAAA-MM-JJ : les éléments sans réponse sont révoqués après.")
def open_command(organisation: str, date_limite: str) -> None:
    """Ouvre une campagne de revue pour une organisation."""
    result: dict[str, Any] = {}
    deadline = _date(date_limite, "--date-limite")
    if deadline is None:
        raise click.BadParameter("date AAAA-MM-JJ attendue", param_hint="--date-limite")

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = _organisation(session, organisation)
        campagne = campaigns.open_campaign(session, OPERATOR, found, deadline, now, lookup=LOOKUP)
        result.update(campaign_json(session, campagne))
        return {"cible": f"campagne:{campagne.id}", "elements": result["elements"]}

    _run("campagne.ouvrir", f"organisation:{organisation}", action)
    _echo(result)


@campaign_group.command("elements")
@click.argument("campagne_id")
def items_command(campagne_id: str) -> None:
    """Éléments d'une campagne avec leurs preuves (une ligne JSON par élément)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        campagne = campaigns.get_campaign(session, campagne_id)
        rows.extend(item_json(item) for item in campaigns.items(session, campagne))
        return {"resultats": len(rows)}

    _run("campagne.elements", f"campagne:{campagne_id}", action)
    for row in rows:
        _echo(row)


@campaign_group.command("decider")
@click.argument("campagne_id")
@click.argument("element_id")
@click.argument("decision", type=click.Choice(DECISIONS))
@click.option("--commentaire", required=True)
@click.option("--date-fin", help="Pour maintenir_jusqu_au (AAAA-MM-JJ).")
@click.option("--scope", "scopes", multiple=True, help="Pour reduire : scope gardé (répéter l'option).")
def decide_command(
    campagne_id: str, element_id: str, decision: str, commentaire: str, date_fin: str | None, scopes: tuple[str, ...]
) -> None:
    """Décide d'un élément : maintenir, revoquer, maintenir_jusqu_au ou reduire."""
    result: dict[str, Any] = {}
    end = _date(date_fin, "--date-fin")

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        campagne = campaigns.get_campaign(session, campagne_id, lock=True)
        item = campaigns.decide(
            session,
            OPERATOR,
            campagne,
            element_id,
            decision=decision,
            commentaire=commentaire,
            date_fin=end,
            scopes=list(scopes) or None,
            now=now,
            recorder=RECORDER,
            request_id=request_id,
        )
        result.update(item_json(item))
        return {"element": item.id, "decision": decision}

    _run("campagne.decider", f"campagne:{campagne_id}", action)
    _echo(result)


@campaign_group.command("cloturer")
@click.argument("campagne_id")
def close_command(campagne_id: str) -> None:
    """Clôture une campagne entièrement décidée : applique les décisions, fige le rapport."""
    result: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        campagne = campaigns.get_campaign(session, campagne_id, lock=True)
        # The command line is the machine's administrator: always "freshly authenticated".
        closed = campaigns.close_campaign(
            session, OPERATOR, campagne, now=now, fresh_auth=timedelta(0), recorder=RECORDER, request_id=request_id
        )
        result.update(
            {
                "campagne": campaign_json(session, campagne),
                "empreintes": closed.hashes,
                "remediationsAppliquees": closed.applied,
                "remediationsEnEchec": closed.failed,
            }
        )
        return {
            "rapport_sha256": closed.hashes,
            "remediations_appliquees": closed.applied,
            "remediations_en_echec": closed.failed,
        }

    _run("campagne.cloturer", f"campagne:{campagne_id}", action)
    _echo(result)


@campaign_group.command("rapport")
@click.argument("campagne_id")
@click.option("--format", "format_", type=click.Choice(FORMATS_RAPPORT), default="json", show_default=True)
@click.option("--sortie", type=click.Path(dir_okay=False, path_type=Path), help="Fichier (sinon la sortie standard).")
def report_command(campagne_id: str, format_: str, sortie: Path | None) -> None:
    """Écrit le rapport figé d'une campagne clôturée (son SHA-256 sur la sortie d'erreur)."""
    content: list[str] = []
    digest: list[str] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        stored = campaigns.report(session, campaigns.get_campaign(session, campagne_id), format_)
        content.append(stored.contenu)
        digest.append(stored.sha256)
        return {"format": format_, "sha256": stored.sha256}

    _run("campagne.rapport", f"campagne:{campagne_id}", action)
    if sortie is not None:
        sortie.write_bytes(content[0].encode())
    else:
        click.echo(content[0], nl=False)
    click.echo(f"SHA-256 : {digest[0]}", err=True)


@campaign_group.command("remediations")
@click.argument("campagne_id")
def remediations_command(campagne_id: str) -> None:
    """Remédiations d'une campagne et leur état (une ligne JSON par remédiation)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        campagne = campaigns.get_campaign(session, campagne_id)
        rows.extend(item_json(item) for item in campaigns.remediations(session, campagne))
        return {"resultats": len(rows)}

    _run("campagne.remediations", f"campagne:{campagne_id}", action)
    for row in rows:
        _echo(row)
