"""« Qui a consulté mon dossier » : the per-usager report answering a GDPR access request.

It lists, for one usager, every access to their data that Relais allowed: when, by which
organisation, for which purpose, through which operation and where the data came from. It
names organisations, never agents (no name, no identifier): the person is told which bodies
processed their data and why, as article 15 GDPR requires; the agents' identities stay with
the security officers, who can search the journal if a specific access must be explained.
Refused attempts are counted per organisation, not listed: nothing of the usager was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fpdf import FPDF
from sqlmodel import Session, col, func, select

from audit.models import AuditEvent
from audit.search import Filters
from relais.core.tables import Organisation

# Calls that reach an usager's data: the partner APIs, the producer feed and the adapters.
# The audit API's own searches name the usager as their target, not as their usager.
ACCESS_CHANNELS = ("partner-api", "producer-feed", "adapter", "cli")
BATCH_AGENT = "BATCH"
MAX_ACCESS_LINES = 5000


@dataclass(frozen=True)
class Report:
    accesses: list[dict[str, Any]]
    organisations: list[dict[str, Any]]
    total: int
    truncated: bool


def who_accessed(session: Session, filters: Filters) -> Report:
    conditions = [*filters.conditions(), col(AuditEvent.channel).in_(ACCESS_CHANNELS)]
    allowed = [*conditions, col(AuditEvent.decision) == "allowed"]
    events = session.exec(
        select(AuditEvent).where(*allowed).order_by(col(AuditEvent.id)).limit(MAX_ACCESS_LINES + 1)
    ).all()
    truncated = len(events) > MAX_ACCESS_LINES
    events = events[:MAX_ACCESS_LINES]
    total = int(session.exec(select(func.count()).select_from(AuditEvent).where(*allowed)).one())
    refused_rows = session.exec(
        select(AuditEvent.organisation, func.count())
        .where(*conditions, col(AuditEvent.decision) == "denied")
        .group_by(col(AuditEvent.organisation))
    ).all()
    refused = {code: int(count) for code, count in refused_rows}
    codes = {event.organisation for event in events if event.organisation} | {code for code in refused if code}
    labels = dict(
        session.exec(select(Organisation.code, Organisation.libelle).where(col(Organisation.code).in_(codes))).all()
    )
    accesses = [
        {
            "date": _iso(event.occurred_at),
            "organisation": _organisation(event.organisation, labels),
            "finalite": event.purpose,
            "operation": event.operation,
            "accedant": "traitement" if event.agent_identifiant in (None, BATCH_AGENT) else "agent",
            "origineDonnees": event.data_origin,
        }
        for event in events
    ]
    summary: dict[str | None, dict[str, Any]] = {}
    for event in events:
        entry = summary.setdefault(
            event.organisation,
            {
                "organisation": _organisation(event.organisation, labels),
                "nombreAcces": 0,
                "premierAcces": _iso(event.occurred_at),
                "dernierAcces": None,
                "finalites": [],
                "tentativesRefusees": refused.get(event.organisation or "", 0),
            },
        )
        entry["nombreAcces"] += 1
        entry["dernierAcces"] = _iso(event.occurred_at)
        if event.purpose and event.purpose not in entry["finalites"]:
            entry["finalites"].append(event.purpose)
    for code, count in refused.items():
        if code not in summary:
            summary[code] = {
                "organisation": _organisation(code, labels),
                "nombreAcces": 0,
                "premierAcces": None,
                "dernierAcces": None,
                "finalites": [],
                "tentativesRefusees": count,
            }
    return Report(accesses, list(summary.values()), total, truncated)


def _organisation(code: str | None, labels: dict[str, str]) -> dict[str, str | None]:
    return {"code": code, "libelle": labels.get(code) if code else None}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


# The citizen's letter ------------------------------------------------------------------------

# fpdf2's built-in fonts are Latin-1: a few typographic characters are written plainly.
_PLAIN = str.maketrans({"’": "'", "‘": "'", "œ": "oe", "Œ": "OE", "…": "...", "–": "-", "—": "-", "\u202f": " "})


@dataclass(frozen=True)
class Letter:
    """What the letter says besides the report: who writes, to whom, about which period."""

    sender: str
    signer: str
    signer_role: str
    place_and_date: str
    usager: str
    period: str
    # Whose consultations are listed: an RSSI answers for their organisation only.
    scope: str
    # Lines of the report, already in French: (date heure, organisation, what was done).
    accesses: list[tuple[str, str, str]]
    # (organisation, number of refused attempts), only those with at least one.
    refused: list[tuple[str, int]]
    truncated: bool


def letter_pdf(letter: Letter) -> bytes:
    """« Qui a consulté mon dossier » as a one-or-more-page PDF letter (A4, fpdf2 built-in fonts)."""

    def plain(text: str) -> str:
        return text.translate(_PLAIN).encode("latin-1", "replace").decode("latin-1")

    pdf = FPDF(format="A4")
    pdf.set_title(plain("Qui a consulté mon dossier"))
    pdf.set_author(plain(letter.sender))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    width = pdf.epw
    pdf.set_font("Helvetica", "B", 13)
    pdf.multi_cell(width, 7, plain(letter.sender), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(width, 5, plain(letter.place_and_date), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.multi_cell(
        width, 6, plain("Objet : qui a consulté votre dossier (article 15 du RGPD)"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(width, 5, plain(f"Dossier : {letter.usager}"), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(width, 5, plain(f"Période : {letter.period}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    count = len(letter.accesses)
    intro = (
        "Madame, Monsieur,\n\nVous avez demandé quels organismes ont consulté votre dossier. Sur la période "
        "indiquée, le journal de Relais, la plateforme d'échange du réseau pour l'emploi, enregistre "
        + (f"{count} consultation{'s' if count > 1 else ''}" if count else "aucune consultation")
        + f" de vos données par {letter.scope}. Chaque consultation est faite par un agent ou un "
        "traitement habilité, pour la mission indiquée ; les heures sont celles de Paris."
    )
    pdf.multi_cell(width, 5, plain(intro), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    if letter.accesses:
        pdf.set_font("Helvetica", "", 9)
        with pdf.table(col_widths=(28, 52, 100), text_align="LEFT", line_height=5) as table:
            header = table.row()
            for title in ("Date et heure", "Organisme", "Consultation"):
                header.cell(plain(title))
            for when, organisation, what in letter.accesses:
                row = table.row()
                row.cell(plain(when))
                row.cell(plain(organisation))
                row.cell(plain(what))
        pdf.set_font("Helvetica", "", 10)
        if letter.truncated:
            limited = f"La liste est limitée aux {MAX_ACCESS_LINES} premières consultations."
            pdf.multi_cell(width, 5, plain(limited), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    if letter.refused:
        total = sum(count for _, count in letter.refused)
        text = (
            f"Par ailleurs, {total} tentative{'s' if total > 1 else ''} de consultation "
            f"{'ont' if total > 1 else 'a'} été refusée{'s' if total > 1 else ''} par Relais "
            "(aucune donnée n'a alors été transmise) : "
            + " ; ".join(f"{organisation} : {count}" for organisation, count in letter.refused)
            + "."
        )
    else:
        text = "Aucune tentative de consultation n'a été refusée sur la période."
    pdf.multi_cell(width, 5, plain(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.multi_cell(
        width,
        5,
        plain(
            "Si une consultation vous semble injustifiée, vous pouvez en demander la raison en répondant à ce "
            "courrier, ou saisir le délégué à la protection des données de l'organisme concerné."
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    pdf.multi_cell(
        width,
        5,
        plain("Je vous prie d'agréer, Madame, Monsieur, l'expression de mes salutations distinguées."),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(10)
    pdf.set_x(pdf.l_margin + width / 2)
    pdf.multi_cell(width / 2, 5, plain(f"{letter.signer}\n{letter.signer_role}\n\nSignature :"), new_x="LMARGIN")
    return bytes(pdf.output())
