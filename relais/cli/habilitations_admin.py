"""``relais habilitations ...``: the admin API's operations for an operator's scripts.

The command line acts as the hub operator (``Principal.command_line()``): the same state-change
functions as the API, so the same rules (subscriptions bound grants, one titular RGC, a
contractor is never RGC...). Each command writes one audit event on the ``cli`` channel (what
it acted upon, ids and codes only), allowed or denied, besides the events of the transitions it
caused. Reads print JSON, one object per line, for scripts. The review campaign's commands are
in ``relais.cli.habilitations_campagnes``; what they all share in ``relais.cli.admin_support``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from sqlmodel import Session, col, select

from habilitations import agent_states, agents, designations, grants, subscriptions
from habilitations.campaign_evidence import findings
from habilitations.models import ETATS, ROLES, Agent, Habilitation, Souscription
from habilitations.policy import served_apis
from habilitations.refusals import HabilitationRefused
from habilitations.views import agent_json, designation_json, habilitation_json, souscription_json
from relais.cli.admin_support import LOOKUP, OPERATOR, RECORDER, echo, organisation_by_code, parse_date, run_audited
from relais.cli.habilitations import habilitations_group
from relais.core.refusals import RefusalKind

AGENT_ACTIONS = ("revoquer", "reactiver", "supprimer", "bloquer")
GRANT_ACTIONS = ("revoquer", "bloquer", "reactiver")


# Agents -------------------------------------------------------------------------------------


@habilitations_group.command("agents")
@click.argument("organisation")
@click.option("--etat", type=click.Choice(ETATS), help="Seulement les agents dans cet état.")
def agents_command(organisation: str, etat: str | None) -> None:
    """Liste les agents d'une organisation (une ligne JSON par agent)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = organisation_by_code(session, organisation)
        query = select(Agent).where(Agent.organisation_id == found.id)
        if etat:
            query = query.where(Agent.etat == etat)
        rows.extend(agent_json(session, agent) for agent in session.exec(query.order_by(col(Agent.identifiant))))
        return {"etat": etat, "resultats": len(rows)}

    run_audited("agents", f"organisation:{organisation}", action)
    for row in rows:
        echo(row)


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
        found = organisation_by_code(session, organisation)
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

    run_audited("agent-creer", f"organisation:{organisation}", action)
    echo(created)


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

    run_audited("identite-technique", f"client:{client_id}", action)
    echo(created)


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

    run_audited("agent-etat", f"agent:{agent_id}", action)
    echo(result)


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
    end = parse_date(date_fin, "--date-fin")

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

    run_audited("accorder", f"agent:{agent_id}", action)
    echo(result)


@habilitations_group.command("habilitations")
@click.argument("organisation")
@click.option("--etat", type=click.Choice(ETATS))
def grants_command(organisation: str, etat: str | None) -> None:
    """Liste les habilitations d'une organisation (une ligne JSON par habilitation)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = organisation_by_code(session, organisation)
        query = (
            select(Habilitation)
            .join(Agent, col(Agent.id) == col(Habilitation.agent_id))
            .where(Agent.organisation_id == found.id)
        )
        if etat:
            query = query.where(Habilitation.etat == etat)
        rows.extend(habilitation_json(grant) for grant in session.exec(query.order_by(col(Habilitation.accordee_le))))
        return {"etat": etat, "resultats": len(rows)}

    run_audited("habilitations", f"organisation:{organisation}", action)
    for row in rows:
        echo(row)


@habilitations_group.command("date-fin")
@click.argument("habilitation_id")
@click.argument("date_fin", metavar="DATE|aucune")
def end_date_command(habilitation_id: str, date_fin: str) -> None:
    """Prolonge ou raccourcit une habilitation (« aucune » : sans fin)."""
    result: dict[str, Any] = {}
    end = parse_date(date_fin, "DATE")

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        grant = grants.set_habilitation_end(
            session, OPERATOR, habilitation_id, date_fin=end, now=now, recorder=RECORDER, request_id=request_id
        )
        result.update(habilitation_json(grant))
        return {"date_fin": end.isoformat() if end else None}

    run_audited("date-fin", f"habilitation:{habilitation_id}", action)
    echo(result)


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

    run_audited("reduire", f"habilitation:{habilitation_id}", action)
    echo(result)


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

    run_audited("habilitation-etat", f"habilitation:{habilitation_id}", action)
    echo(result)


@habilitations_group.command("designer")
@click.argument("organisation")
@click.argument("agent_id", type=int)
@click.argument("role", type=click.Choice(ROLES))
@click.option("--acte-engagement", help="Date de l'acte d'engagement du RGC (AAAA-MM-JJ).")
def designate_command(organisation: str, agent_id: int, role: str, acte_engagement: str | None) -> None:
    """Désigne un agent RGC titulaire ou suppléant, RSSI, CSSI ou opérateur."""
    result: dict[str, Any] = {}
    commitment = parse_date(acte_engagement, "--acte-engagement")

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = organisation_by_code(session, organisation)
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

    run_audited("designer", f"organisation:{organisation}", action)
    echo(result)


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

    run_audited("fin-designation", f"designation:{designation_id}", action)
    echo(result)


@habilitations_group.command("souscription")
@click.argument("organisation")
@click.argument("api")
@click.option("--scope", "scopes", multiple=True, required=True, help="Scope souscrit (répéter l'option).")
@click.option("--reference", help="Référence du formulaire d'accès.")
def subscription_command(organisation: str, api: str, scopes: tuple[str, ...], reference: str | None) -> None:
    """Définit la souscription d'une organisation à une API (formulaire d'accès, annexe 4)."""
    result: dict[str, Any] = {}

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = organisation_by_code(session, organisation)
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

    run_audited("souscription", f"organisation:{organisation}", action)
    echo(result)


@habilitations_group.command("anomalies")
@click.argument("organisation")
def findings_command(organisation: str) -> None:
    """Anomalies des habilitations en vigueur (une ligne JSON par habilitation concernée)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = organisation_by_code(session, organisation)
        assert found.id is not None
        for agent, grant, proofs in findings(session, found.id, now, lookup=LOOKUP):
            rows.append({"agentId": agent.id, "identifiant": agent.identifiant, "habilitationId": grant.id, **proofs})
        return {"anomalies": len(rows)}

    run_audited("anomalies", f"organisation:{organisation}", action)
    for row in rows:
        echo(row)
