"""Intégrateur et opérateur: état des connecteurs, rejeu, dépôt de fichiers CSV avec essai à blanc.

Who: the integrator of an organisation (a designation with the ``integrateur`` role, given by
its RGC) for that organisation, and the hub operator for every one. An RGC or a security
officer without that role is refused, as the integrator is on their pages.

The connectors' state and the replay are the connectors admin API's own functions
(``api.admin.connecteurs``); a file goes through the same code as ``relais fichiers import``
(``adapters.inbound.csv_import.check_csv``): same tolerance, same rules, same audit events.
The file is read from the form and never stored nor written to a log: after a clean dry run,
the page carries it back in its « Importer » form (a POST body, never a URL), sealed with the
field key and bound to the agent and the hour, so that the page holds no NIR in clear and a
carried file cannot be replayed by someone else or later.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.inbound.csv_import import check_csv, header_fits
from adapters.inbound.feed import FeedRejected, RowError
from adapters.inbound.mapping import FeedFormat, FormatError, available_formats, load_format
from api.admin.connecteurs import connectors_view, replay_event
from api.console import session as console_session
from api.console.web import ConsoleRefused, Page, page, require_form
from api.context import RequestState
from habilitations.models import INTEGRATEUR
from habilitations.roles import Principal
from relais.core.french_dates import PARIS
from relais.core.keys import EnvelopeError, KeySet, seal, unseal
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

# A département's export of results or decisions is far smaller; the form carries it back once.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# How long the « Importer » button of a dry run stays good.
CARRIED_FOR = timedelta(hours=1)
_CARRIED_AAD = b"relais-console-import-v1|"
_CARRIED_MAX_LENGTH = (MAX_UPLOAD_BYTES + 1024) * 4 // 3 + 1024
# Failures shown per connector (the admin API pages through the rest).
FAILURES_SHOWN = 20
EVENTS = {
    "orientation.a_decider": "Orientation à décider",
    "orientation.decidee": "Orientation décidée",
    "rendez_vous.pris": "Rendez-vous pris",
    "rendez_vous.modifie": "Rendez-vous modifié",
    "rendez_vous.annule": "Rendez-vous annulé",
    "rendez_vous.effectue": "Rendez-vous effectué",
    "rendez_vous.absent": "Absence au rendez-vous",
    "contrat_engagement.signe": "Contrat d'engagement signé",
    "contrat_engagement.refuse": "Contrat d'engagement refusé",
    "sanction.a_instruire": "Sanction à instruire",
    "sanction.etat_modifie": "Sanction : état modifié",
    "sanction.decidee": "Sanction décidée",
    "connecteurs.connecteur.suspendu": "Connecteur suspendu",
    "relais.test": "Message d'essai",
}
STATUTS = {"EN_ECHEC": "En échec, nouvel essai prévu", "ABANDONNE": "Abandonné après le dernier essai"}
KINDS = {"webhook": "Webhook signé", "email": "Courriel"}
DONE = {"rejoue": "Le message est remis dans la file : il sera renvoyé dans un instant."}


def _allowed(session: Session, principal: Principal) -> list[Organisation]:
    """The organisations whose connectors and files this person handles; else a refusal."""
    query = select(Organisation).order_by(col(Organisation.code))
    if not principal.is_operator:
        ids = {organisation_id for role, organisation_id in principal.roles if role == INTEGRATEUR}
        if not ids:
            raise ConsoleRefused(
                RefusalKind.FORBIDDEN,
                "ACCES_NON_AUTORISE",
                "Réservé à l'intégrateur de l'organisation (désigné par son RGC) et à l'opérateur du hub.",
            )
        query = query.where(col(Organisation.id).in_(ids))
    return list(session.exec(query).all())


def _formats(state: RequestState) -> list[FeedFormat]:
    extra = state.services.settings.inbound_formats_dir
    return [load_format(name, extra) for name in available_formats(extra)]


def _local(value: str | None) -> str | None:
    """An instant of the API's shape, as a French reader reads it (Paris time)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


def _connectors(state: RequestState, organisations: list[Organisation]) -> list[dict[str, Any]]:
    codes = {organisation.code for organisation in organisations}
    shown = []
    for view in connectors_view(state, failures=FAILURES_SHOWN):
        if view["organisation"] not in codes:
            continue  # seen by the API through another role, not handled here
        compteurs = view["compteurs"]
        shown.append(
            {
                "nom": view["nom"],
                "organisation": view["organisation"],
                "type": KINDS.get(view["type"], view["type"]),
                "actif": view["etat"] == "ACTIF",
                "motif_suspension": view["motifSuspension"],
                "derniere_livraison": _local(view["derniereLivraison"]),
                "en_attente": compteurs.get("EN_ATTENTE", 0),
                "en_echec": compteurs.get("EN_ECHEC", 0),
                "abandonnes": compteurs.get("ABANDONNE", 0),
                "livres": compteurs.get("LIVRE", 0),
                "echecs": [
                    {
                        "identifiant": failure["identifiant"],
                        "evenement": EVENTS.get(failure["type"], "Autre événement"),
                        "date": _local(failure["dateCreation"]),
                        "statut": STATUTS.get(failure["statut"], failure["statut"]),
                        "tentatives": failure["tentatives"],
                        "raison": failure["derniereErreur"] or "Raison non enregistrée",
                    }
                    for failure in view.get("echecs", [])
                ],
            }
        )
    return shown


def _home_context(state: RequestState, organisations: list[Organisation]) -> dict[str, Any]:
    return {
        "connecteurs": _connectors(state, organisations),
        "organisations": organisations,
        "formats": _formats(state),
        "choix": {},
        "resultat": None,
    }


async def home(request: Request) -> Response:
    done = request.query_params.get("fait")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        organisations = _allowed(session, principal)
        state.audit.target = "connecteurs"
        return Page("integration.html", _home_context(state, organisations) | {"fait": DONE.get(done or "")})

    return await page(request, "console.integration.tableau", work)


async def replay(request: Request) -> Response:
    nom = str(request.path_params["nom"])
    fields = await _form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        organisations = _allowed(session, principal)
        if not any(view["nom"] == nom for view in _connectors(state, organisations)):
            raise ConsoleRefused(RefusalKind.UNKNOWN, "CONNECTEUR_INCONNU", "Connecteur inconnu.")
        replay_event(state, nom, str(data.get("evenement", "")))
        return Page(redirect_to="/console/integration?fait=rejoue")

    return await page(request, "console.integration.rejouer", work)


async def upload(request: Request) -> Response:
    fields = await _form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        content, problem = _content(data, state.services.keys, principal, now)
        organisations = _allowed(session, principal)
        codes = [organisation.code for organisation in organisations]
        organisation = str(data.get("organisation") or (codes[0] if len(codes) == 1 else ""))
        if organisation not in codes:
            raise ConsoleRefused(
                RefusalKind.INVALID, "ORGANISATION_INVALIDE", "Choisissez une organisation de la liste."
            )
        try:
            feed_format = load_format(str(data.get("format", "")), state.services.settings.inbound_formats_dir)
        except FormatError:
            raise ConsoleRefused(
                RefusalKind.INVALID, "FORMAT_INCONNU", "Choisissez le format du fichier dans la liste."
            ) from None
        if problem is not None:
            raise ConsoleRefused(RefusalKind.INVALID, "FICHIER_INVALIDE", problem)
        dry_run = data.get("action") != "importer"
        state.audit.organisation = organisation
        context = _home_context(state, organisations) | {
            "choix": {"organisation": organisation, "format": feed_format.nom},
        }
        try:
            result = check_csv(
                session,
                state.services.keys,
                content,
                feed_format,
                organisation=organisation,
                audit=state.services.audit_recorder,
                now=now,
                actor=principal.label,
                dry_run=dry_run,
            )
        except FeedRejected as rejected:
            # Counts only: the file's values never reach the audit trail.
            state.audit.details = {"format": feed_format.nom, "essai": dry_run, "erreurs": len(rejected.errors)}
            context["resultat"] = {
                "essai": dry_run,
                "erreurs": [_error(error) for error in rejected.errors],
                "format_suggere": _other_format(content, feed_format, context["formats"], rejected.errors),
            }
            return Page("integration.html", context)
        state.audit.target = f"fichier:{result.sha256}"
        state.audit.details = {"format": feed_format.nom, "essai": dry_run, **result.report.as_dict()}
        context["resultat"] = {
            "essai": dry_run,
            "erreurs": [],
            "deja_importe": _local(result.already_imported_at.isoformat()) if result.already_imported_at else None,
            "rapport": result.report,
            # Carried back by the « Importer » form only after a clean dry run.
            "contenu": _carry(state.services.keys, principal, content, now) if dry_run else None,
        }
        return Page("integration.html", context)

    return await page(request, "console.integration.import", work)


def _other_format(content: bytes, chosen: FeedFormat, formats: list[FeedFormat], errors: list[RowError]) -> str | None:
    """When the header was refused, the format whose columns the file has (the person picked another)."""
    if not any(error.position == 1 and error.column is None for error in errors):
        return None
    for other in formats:
        if other.nom != chosen.nom and header_fits(content, other):
            return other.description or other.nom
    return None


def _error(error: RowError) -> dict[str, Any]:
    if error.position == 0:
        ligne = "Fichier"
    elif error.position == 1 and error.column is None:
        ligne = "1 (en-tête)"
    else:
        ligne = str(error.position)
    return {"ligne": ligne, "colonne": error.column or "—", "probleme": error.message}


async def _form(request: Request) -> dict[str, Any] | None:
    """The posted form when its CSRF token matches the session's; an uploaded file as its bytes.

    The file is read at most one byte past the limit, then its spooled copy is closed at once.
    """
    data = await request.form(max_files=1, max_fields=20, max_part_size=MAX_UPLOAD_BYTES * 2)
    try:
        fields: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, UploadFile):
                fields[key] = await value.read(MAX_UPLOAD_BYTES + 1) if value.filename else b""
            else:
                fields[key] = value
    finally:
        await data.close()
    token = request.cookies.get(console_session.SESSION_COOKIE)
    if not console_session.csrf_valid(token, fields.get(console_session.CSRF_FIELD)):
        return None
    return fields


def _content(fields: dict[str, Any], keys: KeySet, principal: Principal, now: datetime) -> tuple[bytes, str | None]:
    """The file's bytes (uploaded, or carried back after a dry run), or why there are none."""
    uploaded = fields.get("fichier")
    if isinstance(uploaded, bytes) and uploaded:
        content = uploaded
    elif isinstance(fields.get("contenu"), str) and fields["contenu"]:
        carried = _carried(keys, principal, fields["contenu"], now)
        if carried is None:
            return b"", "Le fichier vérifié n'est plus disponible : déposez-le à nouveau."
        content = carried
    else:
        return b"", "Choisissez un fichier CSV à déposer (un fichier vide ne peut être importé)."
    if len(content) > MAX_UPLOAD_BYTES:
        return b"", f"Fichier trop volumineux pour la console (au plus {MAX_UPLOAD_BYTES // (1024 * 1024)} Mo)."
    return content, None


def _carry(keys: KeySet, principal: Principal, content: bytes, now: datetime) -> str:
    stamp = json.dumps({"agent": principal.agent_id, "le": now.isoformat()}).encode("utf-8")
    return seal(keys.field_keys, keys.current_field_kid, stamp + b"\n" + content, aad_prefix=_CARRIED_AAD)


def _carried(keys: KeySet, principal: Principal, token: str, now: datetime) -> bytes | None:
    """The file a dry run carried, for the agent who ran it and within the hour; else None."""
    try:
        plain = unseal(keys.field_keys, token, aad_prefix=_CARRIED_AAD, max_length=_CARRIED_MAX_LENGTH)
        stamp, _, content = plain.partition(b"\n")
        made = json.loads(stamp)
        fresh = now - datetime.fromisoformat(made["le"]) <= CARRIED_FOR
    except (EnvelopeError, ValueError, KeyError, TypeError):
        return None
    return content if made.get("agent") == principal.agent_id and fresh else None


# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = [
    Route("/console/integration", home, methods=["GET"]),
    Route("/console/integration/connecteurs/{nom:str}/rejouer", replay, methods=["POST"]),
    Route("/console/integration/fichiers", upload, methods=["POST"]),
]
