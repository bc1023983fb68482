"""The frozen report of a closed review campaign, in JSON, CSV and HTML.

``report_document`` gathers what the report says (the campaign, the RGC's attestation, a
summary, one row per item with its agent, grant, evidence, decision and remediation);
``render_reports`` writes it in each format. The campaign keeps each rendering byte for byte
with its SHA-256, which goes to the audit trail: the texts must therefore be deterministic
(sorted JSON keys, fixed CSV columns and line ends).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlmodel import Session

from habilitations.campaign_models import EN_ECHEC, CampagneElement, CampagneRevue
from habilitations.models import Agent, Habilitation
from habilitations.views import campaign_json, item_json

ATTESTATION = (
    "Le responsable de gestion des comptes atteste avoir revu l'ensemble des habilitations de son "
    "organisation et décidé, pour chacune, de son maintien, de sa réduction ou de sa révocation "
    "(convention, annexe 1, article 5)."
)

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


def report_document(session: Session, campagne: CampagneRevue, items: Sequence[CampagneElement]) -> dict[str, Any]:
    """What the report says, for the campaign and its ``items`` (in report order)."""
    rows = _report_rows(session, items)
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


def render_reports(document: dict[str, Any]) -> dict[str, str]:
    """Format (json, csv, html) → the report's text in that format."""
    return {
        "json": json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2) + "\n",
        "csv": _csv(document["elements"]),
        "html": _html(document),
    }


def _report_rows(session: Session, items: Sequence[CampagneElement]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
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
