"""The report of a review campaign: frozen at closure in JSON, CSV and HTML; PDF and tableur.

``report_document`` gathers what the report says (the campaign, the RGC's attestation, a
summary, one row per item with its agent, grant, evidence, decision and remediation, people
named by name); ``render_reports`` writes it in each frozen format. ``render_pdf`` (to sign)
and ``render_tableur`` (the CSV French Excel opens) render the same document for people: the
frozen JSON of a closed campaign, or the live one for the draft read before closing.

The campaign keeps each frozen rendering byte for byte with its SHA-256, which goes to the
audit trail: the texts must therefore be deterministic (sorted JSON keys, fixed CSV columns
and line ends), and so is the PDF of a closed campaign (dated by its closure).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace
from sqlmodel import Session

from habilitations.campaign_models import CLOTUREE, EN_ECHEC, CampagneElement, CampagneRevue
from habilitations.models import Agent, Habilitation
from habilitations.views import campaign_json, item_json
from relais.core.french_dates import PARIS
from relais.core.tables import Organisation

# Who acted, when no agent did (``campaigns.EXPIRY_ACTOR``, the command line).
ACTEURS = {
    "echeance": "Révocation automatique à la date limite",
    "cli:operateur": "Opérateur du hub (ligne de commande)",
}

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
    organisation = session.get(Organisation, campagne.organisation_id)
    return {
        # People by name, not ``agent:<id>``: the report is signed and read by people.
        "campagne": {
            **campaign_json(session, campagne),
            "organisationLibelle": organisation.libelle if organisation is not None else None,
            "ouverteParNom": person_name(session, campagne.ouverte_par, campagne.ouverte_par_libelle),
            "clotureeParNom": person_name(session, campagne.cloturee_par, campagne.cloturee_par_libelle),
        },
        "attestation": ATTESTATION,
        "synthese": {
            "elements": len(rows),
            # A draft's undecided items come under None, last.
            "decisions": dict(sorted(decisions.items(), key=lambda pair: (pair[0] is None, pair[0] or ""))),
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
                "decideeParNom": person_name(session, item.decidee_par, item.decidee_par_libelle),
            }
        )
    return rows


def person_name(session: Session, agent_id: int | None, label: str | None) -> str | None:
    """« Prénom Nom » of an acting agent; the automation and the command line by what they are."""
    if agent_id is not None:
        agent = session.get(Agent, agent_id)
        if agent is not None:
            return f"{agent.prenom or ''} {agent.nom or ''}".strip() or agent.identifiant
    if label is None:
        return None
    return ACTEURS.get(label, label)


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
        "<style>body{font-family:sans-serif;font-size:10pt;color:#161616;margin:1.5em}h1{color:#000091}"
        "dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}dt{font-weight:bold}dd{margin:0}"
        "table{border-collapse:collapse;width:100%}th{background:#eee;text-align:left}"
        "th,td{border:1px solid #444;padding:2px 4px;vertical-align:top}@media print{a{color:inherit}}</style>",
        "</head><body>",
        f"<h1>Revue annuelle des habilitations — {e(campagne['organisation'])}</h1>",
        "<dl>",
    ]
    # People by name and times in France's local time, as in the PDF (the ids stay in the JSON).
    for label, value in (
        ("Campagne", campagne["id"]),
        ("Organisation", campagne.get("organisationLibelle") or campagne["organisation"]),
        ("Date limite", local_time(campagne["dateLimite"])),
        ("Ouverte le", local_time(campagne["ouverteLe"])),
        ("Ouverte par", campagne.get("ouverteParNom") or campagne["ouvertePar"]),
        ("Date limite atteinte le", local_time(campagne["echueLe"])),
        ("Clôturée le", local_time(campagne["clotureeLe"])),
        ("Clôturée par", campagne.get("clotureeParNom") or campagne["clotureePar"]),
    ):
        if value:
            lines.append(f"<dt>{e(label)}</dt><dd>{e(value)}</dd>")
    lines += ["</dl>", f"<p>{e(document['attestation'])}</p>", "<table><thead><tr>"]
    headers = (
        "Agent",
        "API",
        "Dernières utilisations",
        "Anomalies",
        "Décision",
        "Commentaire",
        "Décidée par, le",
        "Suite",
    )
    lines.append("".join(f'<th scope="col">{e(header)}</th>' for header in headers) + "</tr></thead><tbody>")
    for row in document["elements"]:
        proofs = row["preuves"]
        uses = "<br>".join(
            f"{e(scope)} : {e(local_time(used) or 'jamais')}"
            for scope, used in proofs["derniereUtilisationParScope"].items()
        )
        by = ", ".join(filter(None, (row.get("decideeParNom") or row["decideePar"], local_time(row["decideeLe"]))))
        cells = (
            e(f"{agent_name(row)} ({row['agent']['identifiant']})"),
            e(row["habilitation"]["api"]),
            uses,
            e(anomalies_text(row)),
            e(decision_text(row)),
            e(row["commentaire"]),
            e(by),
            e(remediation_text(row)),
        )
        lines.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    lines += ["</tbody></table>", "</body></html>", ""]
    return "\n".join(lines)


# For people: the PDF to sign and the CSV French Excel opens ---------------------------------
#
# Both are rendered from the report document: at closure's frozen JSON for a closed campaign
# (the same bytes every time: fixed creation date, uncompressed text), from the live items for
# the draft (« Projet ») an RGC reads before closing.

DECISIONS_LIBELLES = {
    "maintenir": "Maintenue",
    "revoquer": "Révoquée",
    "maintenir_jusqu_au": "Maintenue jusqu'au",
    "reduire": "Réduite",
}
REMEDIATIONS_LIBELLES = {
    "a_appliquer": "À appliquer",
    "appliquee": "Appliquée",
    "sans_objet": "Sans objet",
    "en_echec": "En échec",
}
ANOMALIES_LIBELLES = {
    "DEVRAIT_ETRE_SUSPENDU": "Inactif : aurait dû être suspendu",
    "SCOPE_INUTILISE_90_JOURS": "Droit inutilisé depuis 90 jours",
    "HORS_SOUSCRIPTION": "Hors souscription",
    "SANS_JUSTIFICATION": "Sans justification",
    "BLOCAGE_SECURITE": "Blocage de sécurité",
}
ETATS_LIBELLES = {
    "actif": "Active",
    "suspendu_inactivite": "Suspendue (inactivité)",
    "bloque": "Bloquée (sécurité)",
    "revoque": "Révoquée",
    "supprime": "Supprimée",
}
ROLE_SIGNATAIRE = "Responsable de gestion des comptes (RGC)"
TABLEUR_COLONNES = (
    "Agent",
    "Identifiant",
    "API",
    "Finalité",
    "État de l'habilitation",
    "Dernière connexion",
    "Ancienneté (jours)",
    "Dernière utilisation par droit",
    "Anomalies",
    "Justification",
    "Décision",
    "Jusqu'au",
    "Droits conservés",
    "Commentaire",
    "Décidée par",
    "Décidée le",
    "Remédiation",
)


def is_draft(document: dict[str, Any]) -> bool:
    return bool(document["campagne"]["etat"] != CLOTUREE)


def local_time(value: str | None, *, with_time: bool = True) -> str:
    """An ISO date or datetime of the report in France's local time (naive ones are UTC)."""
    if not value:
        return ""
    if len(value) == 10:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def agent_name(row: dict[str, Any]) -> str:
    agent = row["agent"]
    return f"{agent['prenom'] or ''} {agent['nom'] or ''}".strip() or str(agent["identifiant"])


def decision_text(row: dict[str, Any]) -> str:
    text = DECISIONS_LIBELLES.get(row["decision"] or "", "Non décidée")
    if row["dateFin"]:
        text += f" {local_time(row['dateFin'])}"
    if row["scopes"]:
        text += f" (garde : {', '.join(row['scopes'])})"
    return text


def last_use(row: dict[str, Any]) -> str:
    used = [value for value in row["preuves"]["derniereUtilisationParScope"].values() if value]
    return local_time(max(used, key=_instant)) if used else "Jamais"


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def anomalies_text(row: dict[str, Any]) -> str:
    return ", ".join(ANOMALIES_LIBELLES.get(code, code) for code in row["preuves"].get("anomalies", []))


def remediation_text(row: dict[str, Any]) -> str:
    text = REMEDIATIONS_LIBELLES.get(row["remediation"] or "", "")
    return f"{text} ({row['remediationCode']})" if row["remediationCode"] else text


def render_tableur(document: dict[str, Any]) -> bytes:
    """CSV as French Excel opens it: ``;``, UTF-8 with BOM, French headings, local dates."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(TABLEUR_COLONNES)
    for row in document["elements"]:
        proofs = row["preuves"]
        writer.writerow(
            _csv_cell(value)
            for value in (
                agent_name(row),
                row["agent"]["identifiant"],
                row["habilitation"]["api"],
                row["habilitation"]["finalite"],
                ETATS_LIBELLES.get(proofs.get("etatHabilitation") or "", proofs.get("etatHabilitation")),
                local_time(proofs.get("derniereConnexion")) or "Jamais",
                proofs.get("ancienneteJours"),
                " ; ".join(
                    f"{scope} : {local_time(used) or 'jamais'}"
                    for scope, used in proofs["derniereUtilisationParScope"].items()
                ),
                anomalies_text(row),
                proofs.get("justification"),
                DECISIONS_LIBELLES.get(row["decision"] or "", "Non décidée"),
                local_time(row["dateFin"]),
                ", ".join(row["scopes"] or []),
                row["commentaire"],
                row.get("decideeParNom") or row["decideePar"],
                local_time(row["decideeLe"]),
                remediation_text(row),
            )
        )
    return "\ufeff".encode() + buffer.getvalue().encode()


def _pdf_text(value: Any) -> str:
    # The PDF's core fonts speak Windows-1252 (accents, « », —, ’): no font file to ship or
    # install. Anything beyond it (an emoji in a comment) becomes « ? » rather than failing.
    return ("" if value is None else str(value)).encode("cp1252", "replace").decode("cp1252")


class _ReportPdf(FPDF):
    draft = False

    def header(self) -> None:
        if self.draft:
            self.set_font("Helvetica", "B", 10)
            self.set_text_color(180, 0, 0)
            self.cell(
                0, 6, _pdf_text("PROJET — document de travail, non signé"), align="C", new_x="LMARGIN", new_y="NEXT"
            )
            self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.cell(0, 6, f"Page {self.page_no()}/{{nb}}", align="C")


def render_pdf(document: dict[str, Any], *, signataire: str | None, genere_le: datetime) -> bytes:
    """The report to sign, A4 landscape; ``signataire`` names who signs the draft (the final's
    is whoever closed the campaign), ``genere_le`` dates a draft (the final is dated by its closure).
    """
    campagne = document["campagne"]
    draft = is_draft(document)
    pdf = _ReportPdf(orientation="L", unit="mm", format="A4")
    pdf.draft = draft
    pdf.core_fonts_encoding = "windows-1252"
    # Uncompressed: the text stays searchable by simple tools; the report is small.
    pdf.set_compression(False)
    closed_at = campagne.get("clotureeLe")
    pdf.set_creation_date(_instant(closed_at) if closed_at and not draft else genere_le)
    organisation = campagne.get("organisationLibelle") or campagne["organisation"]
    title = f"Revue annuelle des habilitations — {organisation}"
    pdf.set_title(_pdf_text(("Projet — " if draft else "") + title))
    pdf.set_author("Relais")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, _pdf_text(("Projet de rapport — " if draft else "") + title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 10)
    facts = [
        ("Date limite", local_time(campagne["dateLimite"])),
        ("Ouverte le", f"{local_time(campagne['ouverteLe'])} par {campagne.get('ouverteParNom') or ''}".strip()),
    ]
    if campagne.get("echueLe"):
        facts.append(("Date limite atteinte le", local_time(campagne["echueLe"])))
    if draft:
        facts.append(("État", f"En cours : projet édité le {genere_le.astimezone(PARIS).strftime('%d/%m/%Y %H:%M')}"))
    else:
        facts.append(("Clôturée le", f"{local_time(closed_at)} par {campagne.get('clotureeParNom') or ''}".strip()))
    synthese = document["synthese"]
    decided = ", ".join(
        f"{DECISIONS_LIBELLES.get(code, code).lower() if code else 'non décidée'} : {count}"
        for code, count in synthese["decisions"].items()
    )
    facts.append(("Habilitations revues", f"{synthese['elements']} ({decided or 'aucune décision'})"))
    facts.append(("Avec anomalies", str(synthese["anomalies"])))
    for label, value in facts:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(55, 6, _pdf_text(label + " :"))
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 6, _pdf_text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "I", 10)
    pdf.multi_cell(0, 5, _pdf_text(document["attestation"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 8)
    headings = (
        "Agent",
        "API",
        "Dernière utilisation",
        "Anomalies",
        "Décision",
        "Commentaire",
        "Décidée par, le",
        "Suite",
    )
    with pdf.table(
        col_widths=(34, 34, 24, 34, 38, 52, 34, 27),
        text_align="LEFT",
        line_height=4,
        headings_style=FontFace(emphasis="BOLD", fill_color=(230, 230, 230)),
    ) as table:
        heading = table.row()
        for text in headings:
            heading.cell(_pdf_text(text))
        for row in document["elements"]:
            line = table.row()
            by = ", ".join(filter(None, (row.get("decideeParNom") or row["decideePar"], local_time(row["decideeLe"]))))
            for text in (
                f"{agent_name(row)} ({row['agent']['identifiant']})",
                row["habilitation"]["api"],
                last_use(row),
                anomalies_text(row),
                decision_text(row),
                row["commentaire"] or "",
                by,
                remediation_text(row),
            ):
                line.cell(_pdf_text(text))
    _signature(pdf, campagne, draft=draft, signataire=signataire)
    return bytes(pdf.output())


def _signature(pdf: FPDF, campagne: dict[str, Any], *, draft: bool, signataire: str | None) -> None:
    if pdf.will_page_break(50):
        pdf.add_page()
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, _pdf_text("Visa du responsable de gestion des comptes"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    name = signataire if draft else campagne.get("clotureeParNom")
    when = "À la clôture de la campagne" if draft else local_time(campagne.get("clotureeLe"), with_time=False)
    for label, value in (("Nom", name or ""), ("Rôle", ROLE_SIGNATAIRE), ("Date", when)):
        pdf.cell(25, 6, _pdf_text(label + " :"))
        pdf.cell(0, 6, _pdf_text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(25, 6, "Signature :")
    pdf.rect(pdf.get_x(), pdf.get_y(), 90, 25)
    pdf.ln(28)
