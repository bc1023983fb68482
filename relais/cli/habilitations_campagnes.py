"""``relais habilitations campagne ...``: the yearly review campaign, for an operator's scripts.

The same campaign domain as the admin API and the console (``habilitations.campaigns``), acting
as the hub operator; each command is audited like the other admin commands
(``relais.cli.admin_support``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlmodel import Session

from habilitations import campaigns
from habilitations.campaign_models import CLOTUREE, DECISIONS, FORMATS_RAPPORT
from habilitations.views import campaign_json, item_json
from relais.cli.admin_support import LOOKUP, OPERATOR, RECORDER, echo, organisation_by_code, parse_date, run_audited
from relais.cli.habilitations import habilitations_group

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
    deadline = parse_date(date_limite, "--date-limite")
    if deadline is None:
        raise click.BadParameter("date AAAA-MM-JJ attendue", param_hint="--date-limite")

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        found = organisation_by_code(session, organisation)
        campagne = campaigns.open_campaign(session, OPERATOR, found, deadline, now, lookup=LOOKUP)
        result.update(campaign_json(session, campagne))
        return {"cible": f"campagne:{campagne.id}", "elements": result["elements"]}

    run_audited("campagne.ouvrir", f"organisation:{organisation}", action)
    echo(result)


@campaign_group.command("elements")
@click.argument("campagne_id")
def items_command(campagne_id: str) -> None:
    """Éléments d'une campagne avec leurs preuves (une ligne JSON par élément)."""
    rows: list[dict[str, Any]] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        campagne = campaigns.get_campaign(session, campagne_id)
        rows.extend(item_json(item) for item in campaigns.items(session, campagne))
        return {"resultats": len(rows)}

    run_audited("campagne.elements", f"campagne:{campagne_id}", action)
    for row in rows:
        echo(row)


@campaign_group.command("decider")
@click.argument("campagne_id")
@click.argument("element_id")
@click.argument("decision", type=click.Choice(DECISIONS))
@click.option("--commentaire", help="Obligatoire pour maintenir une habilitation qui présente des anomalies.")
@click.option("--date-fin", help="Pour maintenir_jusqu_au (AAAA-MM-JJ).")
@click.option("--scope", "scopes", multiple=True, help="Pour reduire : scope gardé (répéter l'option).")
def decide_command(
    campagne_id: str,
    element_id: str,
    decision: str,
    commentaire: str | None,
    date_fin: str | None,
    scopes: tuple[str, ...],
) -> None:
    """Décide d'un élément : maintenir, revoquer, maintenir_jusqu_au ou reduire."""
    result: dict[str, Any] = {}
    end = parse_date(date_fin, "--date-fin")

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

    run_audited("campagne.decider", f"campagne:{campagne_id}", action)
    echo(result)


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

    run_audited("campagne.cloturer", f"campagne:{campagne_id}", action)
    echo(result)


@campaign_group.command("rapport")
@click.argument("campagne_id")
@click.option(
    "--format",
    "format_",
    type=click.Choice(FORMATS_RAPPORT + campaigns.FORMATS_POUR_LES_PERSONNES),
    default="json",
    show_default=True,
    help="json, csv, html : le rapport figé à la clôture. pdf (à signer), tableur : aussi avant la clôture, "
    "marqués « Projet ».",
)
@click.option("--sortie", type=click.Path(dir_okay=False, path_type=Path), help="Fichier (sinon la sortie standard).")
@click.option("--signataire", help="pdf : le nom imprimé dans le bloc de signature du projet.")
def report_command(campagne_id: str, format_: str, sortie: Path | None, signataire: str | None) -> None:
    """Écrit le rapport d'une campagne (son SHA-256 sur la sortie d'erreur)."""
    if format_ == "pdf" and sortie is None:
        raise click.UsageError("Le rapport pdf s'écrit dans un fichier : --sortie rapport.pdf")
    content: list[bytes] = []
    digest: list[str] = []

    def action(session: Session, now: datetime, request_id: str) -> dict[str, Any]:
        campagne = campaigns.get_campaign(session, campagne_id)
        if format_ in campaigns.FORMATS_POUR_LES_PERSONNES:
            made = campaigns.report_for_people(session, campagne, format_, signataire=signataire, now=now)
            content.append(made)
            digest.append(hashlib.sha256(made).hexdigest())
            return {"format": format_, "projet": campagne.etat != CLOTUREE, "sha256": digest[0]}
        stored = campaigns.report(session, campagne, format_)
        content.append(stored.contenu.encode())
        digest.append(stored.sha256)
        return {"format": format_, "sha256": stored.sha256}

    run_audited("campagne.rapport", f"campagne:{campagne_id}", action)
    if sortie is not None:
        sortie.write_bytes(content[0])
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

    run_audited("campagne.remediations", f"campagne:{campagne_id}", action)
    for row in rows:
        echo(row)
