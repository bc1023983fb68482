"""The security officer's audit search: the usager named in a POST body, never in a URL.

The filters, the visibility (an RSSI sees their organisation, the CSSI every one) and the
audit facts of the search are the audit API's own (``api.admin.audit_recherche``).

After a search, the page keeps what was searched for only sealed (``encrypt_field``) in a
hidden field, bound to the agent who searched: the export and the citizen's letter are posted
with it, so the NIR is typed once and never appears in clear in a page, an address or a log.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.admin.audit_access import visible_organisations
from api.admin.audit_recherche import _filters as audit_filters
from api.console import campagnes
from api.console.web import ConsoleRefused, Download, Page, form, page, require_form
from api.context import RequestState
from audit import report as report_module
from audit.models import AuditEvent
from audit.search import Filters, iter_events, search
from habilitations.models import Agent
from habilitations.profiles import operation_labels
from habilitations.roles import Principal
from relais.core.french_dates import PARIS, local_time, long_date
from relais.core.personal_data import FieldDecryptionError, decrypt_field, encrypt_field
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

PERIODS = {"7": "7 derniers jours", "30": "30 derniers jours", "90": "90 derniers jours", "dates": "Entre deux dates"}
LIMIT = 100
# The export is built in memory: bounded, and says so when it is cut.
EXPORT_LIMIT = 20_000
# A sealed search is good for the working session it was made in, not forever.
SEALED_HOURS = 8
SEAL_CONTEXT = "console.audit.recherche"
DECISIONS = {"allowed": "Autorisé", "denied": "Refusé", "error": "Erreur"}
CONSOLE_LABELS = {
    "console.connexion": "Connexion à la console (persona de démonstration)",
    "console.connexion.debut": "Connexion à la console par ProConnect : départ",
    "console.connexion.proconnect": "Connexion à la console par ProConnect",
    "console.deconnexion": "Déconnexion de la console",
    "console.accueil": "Console : accueil",
    "console.habilitations.tableau": "Console : tableau des habilitations",
    "console.habilitations.agent": "Console : fiche d'un agent",
    "console.habilitations.accorder": "Console : accorder une habilitation",
    "console.habilitations.etat": "Console : révoquer ou réactiver une habilitation",
    "console.audit.formulaire": "Console : formulaire de recherche dans le journal",
    "console.audit.recherche": "Console : recherche dans le journal",
    "console.audit.export": "Console : export de la recherche dans le journal",
    "console.audit.lettre": "Console : lettre « qui a consulté mon dossier »",
    "console.incidents.liste": "Console : tableau des incidents",
    "console.incidents.fiche": "Console : fiche d'un incident",
    "console.incidents.preuves": "Console : dossier de preuves d'un incident",
    "console.incidents.suivi": "Console : gravité ou responsable d'un incident",
    "console.incidents.notification": "Console : notification d'un incident enregistrée",
    "console.incidents.transition": "Console : changement d'état d'un incident",
    "console.integrite": "Console : intégrité du journal",
    "console.integrite.verification": "Console : vérification du journal",
    "console.integrite.cle": "Console : téléchargement de la clé publique du journal",
    "console.connexion.page": "Console : page de connexion",
    "console.habilitations.date_fin": "Console : prolonger ou raccourcir une habilitation",
    "console.habilitations.compte": "Console : réactiver le compte d'un agent",
    "console.habilitations.agent_formulaire": "Console : formulaire de création d'un agent",
    "console.habilitations.agent_creer": "Console : créer un agent",
    "console.habilitations.designations": "Console : désignations de l'organisation",
    "console.habilitations.designer": "Console : désigner une personne à un rôle",
    "console.habilitations.terminer_designation": "Console : mettre fin à une désignation",
    "console.integration.tableau": "Console : connecteurs et imports",
    "console.integration.rejouer": "Console : rejouer un envoi vers un logiciel",
    "console.integration.import": "Console : dépôt d'un fichier CSV (essai à blanc ou import)",
    "console.notifications.boite": "Console : boîte de notifications",
    "console.notifications.lu": "Console : notification marquée comme lue",
    "admin.jeton.cli": "Jeton d'administration délivré en ligne de commande",
    # The review campaign's pages name their own.
    **campagnes.OPERATION_LABELS,
}
# Why a call was refused, in plain words, by the audited reason's code (see ``reason_label``).
REASONS = {
    "agent_inconnu": "Agent inconnu de Relais",
    "agent_absent": "Agent non indiqué dans l'appel",
    "agent_header": "Agent mal indiqué dans l'appel",
    "agent_non_habilite": "Agent non habilité",
    "agent_inactivite": "Compte de l'agent suspendu pour inactivité",
    "agent_suspendu_inactivite": "Compte de l'agent suspendu pour inactivité",
    "agent_bloque": "Compte de l'agent bloqué par la sécurité",
    "agent_revoque": "Compte de l'agent retiré",
    "agent_supprime": "Compte de l'agent supprimé",
    "habilitation_absente": "L'agent n'a pas d'habilitation pour ce service",
    "habilitation_expiree": "Habilitation de l'agent expirée",
    "habilitation_insuffisante": "Habilitation insuffisante pour cette opération",
    "hors_souscription": "Organisation non abonnée à ce service",
    "client_scope_insuffisant": "Logiciel non autorisé pour cette opération",
    "insufficient_scope": "Logiciel non autorisé pour cette opération",
    "invalid_token": "Authentification du logiciel refusée",
    "jeton_missing": "Dossier de l'usager non désigné",
    "jeton_invalide": "Désignation du dossier invalide ou expirée",
    "jeton_expire": "Désignation du dossier expirée",
    "rate_limited": "Trop d'appels en peu de temps",
    "overloaded": "Service momentanément surchargé",
    "role_insuffisant": "Rôle insuffisant pour cette action",
    "acces_non_autorise": "Accès non autorisé",
    "hors_perimetre": "Dossier hors du périmètre de l'organisation",
    "usager_hors_perimetre": "Dossier hors du périmètre de l'organisation",
    "formulaire_invalide": "Formulaire expiré ou d'une autre origine",
}
STATUS_REASONS = {
    400: "Demande invalide",
    401: "Authentification refusée",
    403: "Accès non autorisé",
    404: "Dossier ou ressource introuvable",
    409: "Action impossible dans l'état actuel",
    429: "Trop d'appels en peu de temps",
}
CSV_COLUMNS = (
    "Date et heure (Paris)",
    "Opération",
    "Organisation",
    "Agent",
    "Décision",
    "Motif du refus",
    "N° d'événement",
)


async def search_form(request: Request) -> Response:
    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        # The same refusal as the audit API for whoever may not read the journal.
        visible_organisations(session, principal)
        return Page("audit_recherche.html", _context({"periode": "30", "type": "numero"}, now))

    return await page(request, "console.audit.formulaire", work)


async def search_results(request: Request) -> Response:
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        criteria = _criteria(data)
        filters = _filters(state, criteria, now)
        found = search(session, filters, limit=LIMIT, cursor=None)
        rows = [_row(event, _labels()) for event in found.events]
        sealed = encrypt_field(
            state.services.keys,
            json.dumps({**criteria, "agent": principal.agent_id, "le": now.isoformat()}),
            context=SEAL_CONTEXT,
        )
        # The value typed is not sent back: the page keeps no NIR (nor does any URL).
        shown = {key: value for key, value in criteria.items() if key != "valeur"}
        return Page(
            "audit_recherche.html",
            _context(shown, now)
            | {
                "resultats": rows,
                "total": found.total,
                "limite": LIMIT,
                "scelle": sealed,
                "par_usager": bool(criteria["valeur"]),
                "refus": sum(1 for row in rows if row["refus"]),
            },
        )

    return await page(request, "console.audit.recherche", work)


async def export(request: Request) -> Response:
    """The search's results as a CSV file French Excel opens (``;``, UTF-8 with BOM)."""
    fields = await form(request)

    # ``page`` runs the work under the audit API's checks, audits it and sends the file it made.
    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        # Whoever may not read the journal is told so first, as on the audit API.
        visible_organisations(session, principal)
        criteria = _unseal(state, principal, data, now)
        filters = _filters(state, criteria, now)
        labels = _labels()
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        count = 0
        for event in iter_events(session, filters):
            if count == EXPORT_LIMIT:
                writer.writerow([f"Export limité aux {EXPORT_LIMIT} premiers événements : resserrez la période."])
                break
            row = _row(event, labels)
            writer.writerow(
                [
                    _cell(value)
                    for value in (
                        row["quand"].strftime("%d/%m/%Y %H:%M:%S"),
                        row["operation"],
                        row["organisation"],
                        row["agent"],
                        row["decision"],
                        row["motif"] if row["refus"] else "",
                        event.id,
                    )
                ]
            )
            count += 1
        assert state.audit.details is not None
        state.audit.details |= {"format": "csv", "lignes": count}
        content = ("\ufeff" + buffer.getvalue()).encode("utf-8")
        return Page(download=Download(content, "text/csv; charset=utf-8", "journal-audit.csv"))

    return await page(request, "console.audit.export", work)


async def letter(request: Request) -> Response:
    """« Qui a consulté mon dossier » for one usager, as a PDF letter to them."""
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        # Whoever may not read the journal is told so first, as on the audit API.
        visible_organisations(session, principal)
        criteria = _unseal(state, principal, data, now)
        if not criteria["valeur"]:
            raise ConsoleRefused(
                RefusalKind.INVALID, "USAGER_ABSENT", "La lettre porte sur un usager : recherchez-le d'abord."
            )
        filters = _filters(state, criteria, now)
        result = report_module.who_accessed(session, filters)
        labels = _labels()
        names = _organisation_names(session)
        accesses = [
            (
                local_time(datetime.fromisoformat(line["date"])).strftime("%d/%m/%Y %H:%M"),
                names.get(line["organisation"]["code"], line["organisation"]["libelle"] or "Organisme non précisé"),
                labels.get(line["operation"], "Consultation")
                + (f" (mission : {line['finalite']})" if line.get("finalite") else ""),
            )
            for line in result.accesses
        ]
        refused = [
            (names.get(entry["organisation"]["code"], entry["organisation"]["libelle"] or "Organisme non précisé"), n)
            for entry in result.organisations
            if (n := entry["tentativesRefusees"])
        ]
        agent = session.get(Agent, principal.agent_id) if principal.agent_id is not None else None
        sender = "France Travail" if principal.is_cssi else names.get(principal.organisation or "", "Relais")
        debut, end = _window(criteria, now)
        fin = end - timedelta(seconds=1) if end is not None else now
        content = report_module.letter_pdf(
            report_module.Letter(
                sender=sender,
                signer=f"{agent.prenom} {agent.nom}".strip() if agent is not None else principal.label,
                signer_role=(
                    "Responsable de la sécurité des systèmes d'information (CSSI), France Travail"
                    if principal.is_cssi
                    else f"Responsable de la sécurité des systèmes d'information, {sender}"
                ),
                place_and_date=f"Le {french_date(local_time(now).date())}",
                usager=_masked(criteria),
                scope="les organismes du réseau pour l'emploi" if principal.is_cssi else f"l'organisme « {sender} »",
                period=f"du {french_date(local_time(debut).date())} au {french_date(local_time(fin).date())}",
                accesses=accesses,
                refused=refused,
                truncated=result.truncated,
            )
        )
        assert state.audit.details is not None
        state.audit.details |= {"format": "pdf", "acces": result.total, "refus": sum(n for _, n in refused)}
        return Page(download=Download(content, "application/pdf", "qui-a-consulte-mon-dossier.pdf"))

    return await page(request, "console.audit.lettre", work)


# This module's pages beyond the search itself (wired in ``api.console.routes``).
ROUTES: list[BaseRoute] = [
    Route("/console/audit", search_form, methods=["GET"]),
    Route("/console/audit", search_results, methods=["POST"]),
    Route("/console/audit/export", export, methods=["POST"]),
    Route("/console/audit/lettre", letter, methods=["POST"]),
]


# Helpers ----------------------------------------------------------------------------------


def french_date(day: date) -> str:
    return long_date(day)


def reason_label(reason: str | None, status: int) -> str:
    """A refusal's reason in plain French: by its code, else by what the status says."""
    for part in reversed((reason or "").lower().split(":")):
        if part in REASONS:
            return REASONS[part]
    if status >= 500:
        return "Erreur technique"
    return STATUS_REASONS.get(status, "Refusé")


def _context(values: dict[str, str], now: datetime) -> dict[str, Any]:
    return {
        "periodes": PERIODS,
        "valeurs": values,
        "resultats": None,
        "aujourdhui": local_time(now).date().isoformat(),
    }


def _labels() -> dict[str, str]:
    return {**operation_labels(), **CONSOLE_LABELS}


def _row(event: AuditEvent, labels: dict[str, str]) -> dict[str, Any]:
    refused = event.decision != "allowed"
    return {
        "quand": local_time(event.occurred_at),
        "operation": labels.get(event.operation, event.operation),
        "organisation": event.organisation or "",
        "agent": " ".join(part for part in (event.agent_prenom, event.agent_nom) if part)
        or event.agent_identifiant
        or (f"agent {event.agent_id}" if event.agent_id else ""),
        "decision": DECISIONS.get(event.decision, event.decision),
        "refus": refused,
        "motif": reason_label(event.reason, event.http_status) if refused else "",
    }


def _criteria(data: dict[str, Any]) -> dict[str, str]:
    """What the form asks for, checked; dates as ISO days (the pickers' format, or jj/mm/aaaa)."""
    period = str(data.get("periode", "30"))
    kind = str(data.get("type", "numero"))
    if str(data.get("du", "")).strip() or str(data.get("au", "")).strip():
        # Dates typed are what the person wants, whichever period button is still ticked.
        period = "dates"
    if period not in PERIODS:
        raise ConsoleRefused(RefusalKind.INVALID, "PERIODE_INVALIDE", "Période : 7, 30 ou 90 jours, ou deux dates")
    if kind not in ("numero", "nir"):
        raise ConsoleRefused(RefusalKind.INVALID, "TYPE_INVALIDE", "Choisissez NIR ou numéro France Travail")
    criteria = {
        "periode": period,
        "type": kind,
        "valeur": str(data.get("valeur", "")).strip().replace(" ", ""),
        "du": "",
        "au": "",
    }
    if period == "dates":
        criteria["du"] = _day(data.get("du"), "du", required=True)
        criteria["au"] = _day(data.get("au"), "au", required=False)
        if criteria["au"] and criteria["au"] < criteria["du"]:
            raise ConsoleRefused(
                RefusalKind.INVALID, "PERIODE_INVALIDE", "La date de fin précède la date de début : corrigez les dates"
            )
    return criteria


def _day(value: Any, name: str, *, required: bool) -> str:
    text = str(value or "").strip()
    if not text:
        if required:
            raise ConsoleRefused(
                RefusalKind.INVALID, "PERIODE_INVALIDE", "Indiquez la date de début de la période (jj/mm/aaaa)"
            )
        return ""
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, pattern).date().isoformat()
        except ValueError:
            continue
    which = "de début" if name == "du" else "de fin"
    raise ConsoleRefused(RefusalKind.INVALID, "DATE_INVALIDE", f"Date {which} illisible : écrivez-la jj/mm/aaaa")


def _window(criteria: dict[str, str], now: datetime) -> tuple[datetime, datetime | None]:
    """The period in UTC instants: whole local days when dates were chosen; no end for "the last N days"."""
    if criteria["periode"] != "dates":
        return now - timedelta(days=int(criteria["periode"])), None
    start = datetime.combine(date.fromisoformat(criteria["du"]), time(), PARIS)
    last = date.fromisoformat(criteria["au"]) if criteria["au"] else local_time(now).date()
    end = datetime.combine(last + timedelta(days=1), time(), PARIS)
    return start.astimezone(UTC), end.astimezone(UTC)


def _filters(state: RequestState, criteria: dict[str, str], now: datetime) -> Filters:
    debut, fin = _window(criteria, now)
    body: dict[str, Any] = {"debut": debut.isoformat()}
    if fin is not None:
        body["fin"] = fin.isoformat()
    if criteria["valeur"]:
        key = "nir" if criteria["type"] == "nir" else "numeroFranceTravail"
        body["usager"] = {key: criteria["valeur"]}
    return audit_filters(state, body)


def _unseal(state: RequestState, principal: Principal, data: dict[str, Any], now: datetime) -> dict[str, str]:
    """The search a results page sealed, for the agent who made it, while it is fresh."""
    try:
        sealed = json.loads(decrypt_field(state.services.keys, str(data.get("recherche", "")), context=SEAL_CONTEXT))
        made = datetime.fromisoformat(sealed["le"])
        fresh = sealed["agent"] == principal.agent_id and now - made < timedelta(hours=SEALED_HOURS)
    except (FieldDecryptionError, ValueError, KeyError, TypeError):
        fresh = False
    if not fresh:
        raise ConsoleRefused(
            RefusalKind.INVALID, "RECHERCHE_EXPIREE", "Recherche expirée : relancez la recherche, puis téléchargez."
        )
    return {key: str(sealed.get(key, "")) for key in ("periode", "type", "valeur", "du", "au")}


def _masked(criteria: dict[str, str]) -> str:
    """The usager's number with only its last three characters shown (the letter may be lost)."""
    value = criteria["valeur"]
    shown = "*" * max(len(value) - 3, 0) + value[-3:]
    return f"NIR {shown}" if criteria["type"] == "nir" else f"numéro France Travail {shown}"


def _organisation_names(session: Session) -> dict[str, str]:
    return {code: libelle for code, libelle in session.exec(select(Organisation.code, Organisation.libelle)).all()}


def _cell(value: Any) -> str:
    # A cell starting with a formula character stays text in a spreadsheet.
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text
