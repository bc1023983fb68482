"""Errors in each contract's own format, whatever layer refuses the call.

France Travail's APIs do not share one error shape, so Relais answers in the shape of
the API that was called:

- the token endpoint: OAuth2 ``{error, error_description}``;
- Rechercher usager: its ``ResultatDTO`` with a ``codeRetour`` (R997, R001, R998...);
- the per-usager APIs: ``{codeHttp, codeErreur, message}``, the platform's shape seen on
  Rendez-vous partenaire (a Relais choice where the public contract is silent).

Messages name the offending header or field, never its value: values may be a NIR.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from typing import Any

import structlog
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from api.context import current_request
from api.validation import UNSTORABLE_DETAIL, InputRefused
from relais.core import agent_headers
from relais.core.access_tokens import InvalidAccessToken, TokenAudience, verify_relais_token
from relais.core.admin_tokens import ADMIN_CLIENT_ID, admin_agent_id
from relais.core.jeton import JETON_HEADER
from relais.core.observability import safe_exception_fields

log = structlog.get_logger("relais.errors")

JSON = "application/json"
# The audit operation (and metrics label) of a call that matched no operation of the specs.
PROBE_OPERATION = "unknown"
AGENT_HEADERS = agent_headers.ALL
RECHERCHE_PREFIX = "/partenaire/rechercher-usager/"
OAUTH_PREFIX = "/connexion/"
PARTNER_PREFIX = "/partenaire/"
# Relais' producer feed answers in the partner APIs' error shape too.
ALIMENTATION_PREFIX = "/relais/alimentation/"
# So do Relais' own APIs (habilitations, audit, connectors, agent login).
RELAIS_PREFIX = "/relais/"
# The admin APIs (bearer: an admin token); every call to them, probes included, is audited.
ADMIN_PREFIXES = ("/relais/habilitations/", "/relais/audit/", "/relais/connecteurs/", "/relais/connexion/")
# APIs whose calls are about one usager and so carry ``ft-jeton-usager``.
PER_USAGER_PREFIXES = (
    "/partenaire/informations-administratives/",
    "/partenaire/contrat-usager/",
    "/partenaire/orientationusager/",
    "/partenaire/rendez-vous-partenaire/",
    "/partenaire/contrat-engagement/",
    "/partenaire/gestion-sanctions-rsa/",
    "/partenaire/diagnosticargumente/",
)
ACTIVITES_PREFIX = "/partenaire/activites-operationnelles/"


class Family(enum.Enum):
    OAUTH = "oauth"
    RECHERCHE = "recherche"
    ACTIVITES = "activites"
    PARTENAIRE = "partenaire"
    OTHER = "other"


def family_of(path: str) -> Family:
    if path.startswith(OAUTH_PREFIX):
        return Family.OAUTH
    if path.startswith(RECHERCHE_PREFIX):
        return Family.RECHERCHE
    if path.startswith(ACTIVITES_PREFIX):
        return Family.ACTIVITES
    if path.startswith((PARTNER_PREFIX, RELAIS_PREFIX)):
        return Family.PARTENAIRE
    return Family.OTHER


# Rechercher usager's code table (contract §1).
R997 = ("R997", "Une erreur de validation s'est produite")
R001 = ("R001", "Accès non autorisé")
R002 = ("R002", "L'usager n'est pas rattaché à la structure de l'accédant")
R998 = ("R998", "Un service a répondu en erreur")
R999 = ("R999", "Service indisponible, veuillez réessayer ultérieurement")


def resultat(code: tuple[str, str], detail: str | None = None, *, jeton: str = "null") -> dict[str, str]:
    code_retour, message = code
    return {
        "codeRetour": code_retour,
        "message": f"{message} : {detail}" if detail else message,
        "topIdentiteCertifiee": "null",
        "jetonUsager": jeton,
    }


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> ConnexionResponse:
    # connexion reads ``mimetype`` in error handlers and ``content_type`` from handlers.
    return ConnexionResponse(
        status_code=status,
        mimetype=JSON,
        content_type=JSON,
        body=json.dumps(body, ensure_ascii=False).encode(),
        headers=dict(headers or {}),
    )


def erreur_partenaire(status: int, code: str, message: str) -> ConnexionResponse:
    return json_response(status, {"codeHttp": status, "codeErreur": code, "message": message})


def erreurs_activites(status: int, code: str, message: str, details: str | None = None) -> ConnexionResponse:
    """Activités opérationnelles answers its 400s as an array of ``{code, message, details}``."""
    return json_response(status, [{"code": code, "message": message, "details": details}])


def note_refusal(reason: str) -> None:
    """Record why the call was refused in its audit event (codes only, no values).

    The first reason noted wins: it is the root cause, later layers only translate it.
    """
    try:
        draft = current_request().audit
    except LookupError:
        return
    if draft.reason is None:
        draft.reason = reason[:255]


# Bad requests -----------------------------------------------------------------------

_FIELD = re.compile(r" - '([A-Za-z0-9_.\-\[\]]{1,64})'\s*$")
_REQUIRED = re.compile(r"^'([A-Za-z0-9_\-]{1,64})' is a required property")
_EXTRA = re.compile(r"\('([A-Za-z0-9_\-]{1,64})' (?:was|were) unexpected\)")


def describe_bad_request(headers: Mapping[str, str], path: str, detail: str) -> tuple[str, str]:
    """(reason code, French message) for a request the spec rejected, free of its values."""
    if path.startswith((PARTNER_PREFIX, ALIMENTATION_PREFIX)):
        for name in AGENT_HEADERS:
            value = headers.get(name)
            if value is None:
                return f"agent_header_missing:{name}", f"en-tête {name} absent"
            if not value.strip():
                return f"agent_header_empty:{name}", f"en-tête {name} vide"
            if "|" in value:
                return f"agent_header_pipe:{name}", f"en-tête {name} invalide : le caractère | est interdit"
            if len(value) > 100:
                return f"agent_header_too_long:{name}", f"en-tête {name} trop long (100 caractères au plus)"
    first_line = detail.splitlines()[0] if detail else ""
    if match := _REQUIRED.match(first_line):
        return f"field_missing:{match[1]}", f"champ {match[1]} obligatoire"
    if match := _EXTRA.search(first_line):
        return f"field_unexpected:{match[1]}", f"champ {match[1]} non prévu par le contrat"
    if match := _FIELD.search(first_line):
        if first_line.startswith(UNSTORABLE_DETAIL):
            return f"field_invalid:{match[1]}", f"champ {match[1]} invalide : caractère non autorisé"
        return f"field_invalid:{match[1]}", f"champ {match[1]} invalide"
    if "JSON" in first_line:
        return "body_not_json", "corps de requête JSON invalide"
    return "bad_request", "requête invalide"


def bad_request(path: str, reason: str, message: str, status: int = 400) -> ConnexionResponse:
    note_refusal(reason)
    family = family_of(path)
    if family is Family.RECHERCHE:
        return json_response(status, resultat(R997, message))
    if family is Family.OAUTH:
        return json_response(status, {"error": "invalid_request", "error_description": message})
    if family is Family.ACTIVITES:
        return erreurs_activites(status, "REQUETE_INVALIDE", "Requête invalide", message)
    return erreur_partenaire(status, "REQUETE_INVALIDE", f"Requête invalide : {message}")


# Authentication and authorisation ---------------------------------------------------


def unauthorized(reason: str) -> ConnexionResponse:
    note_refusal(f"invalid_token:{reason}")
    return json_response(
        401,
        {"error": "invalid_token", "error_description": "Jeton d'accès absent, invalide ou expiré"},
        {"WWW-Authenticate": 'Bearer realm="/agent", error="invalid_token"'},
    )


def forbidden_scope(path: str) -> ConnexionResponse:
    note_refusal("insufficient_scope")
    headers = {"WWW-Authenticate": 'Bearer realm="/agent", error="insufficient_scope"'}
    if family_of(path) is Family.RECHERCHE:
        return json_response(403, resultat(R001), headers)
    return json_response(
        403,
        {
            "codeHttp": 403,
            "codeErreur": "ACCES_NON_AUTORISE",
            "message": "Accès non autorisé : les scopes du jeton d'accès ne couvrent pas cette opération",
        },
        headers,
    )


class AgentForbidden(ProblemException):
    """The agent named by ``pa-identifiant-agent`` may not make this call (habilitations.policy)."""

    def __init__(self, reason: str) -> None:
        super().__init__(status=403, title="Forbidden", detail="agent non habilité")
        self.reason = reason


# What a refused agent is told, by reason family: enough to know whom to ask, never a value.
_AGENT_MESSAGES = {
    "agent_inconnu": "l'agent désigné par l'en-tête pa-identifiant-agent n'est pas connu de votre organisation",
    "agent_absent": "en-tête pa-identifiant-agent absent ou invalide",
    "agent_": "le compte de l'agent n'est pas actif (suspendu, bloqué ou révoqué) : contactez votre RGC",
    "habilitation_": "l'agent n'est pas habilité pour cette opération : contactez votre RGC",
    "hors_souscription": "votre organisation n'a pas souscrit à cette opération",
    "client_": "l'application appelante ne détient pas les scopes de cette opération",
}


def forbidden_agent(path: str, reason: str) -> ConnexionResponse:
    """403 for an agent without the right habilitation, in the called API's own format."""
    note_refusal(reason)
    if family_of(path) is Family.RECHERCHE:
        return json_response(403, resultat(R001, "agent non habilité"))
    detail = next(
        (message for prefix, message in _AGENT_MESSAGES.items() if reason == prefix or reason.startswith(prefix)),
        "agent non habilité",
    )
    return erreur_partenaire(403, "ACCES_NON_AUTORISE", f"Accès non autorisé : {detail}")


def server_error(path: str) -> tuple[int, dict[str, Any]]:
    family = family_of(path)
    if family is Family.RECHERCHE:
        return 500, resultat(R998)
    if family is Family.OAUTH:
        return 500, {"error": "server_error", "error_description": "Erreur interne, réessayez plus tard"}
    return 500, {"codeHttp": 500, "codeErreur": "ERREUR_INTERNE", "message": "Erreur interne du service"}


def audit_failure_response(path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The answer when a call's audit event cannot be written (see api.pipeline)."""
    status, body = server_error(path)
    payload = json.dumps(body, ensure_ascii=False).encode()
    return status, [(b"content-type", JSON.encode()), (b"content-length", str(len(payload)).encode())], payload


# Connexion error handlers -------------------------------------------------------------


async def handle_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    path = request.url.path
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if family_of(path) is Family.OTHER and isinstance(exc, ProblemException):
        return json_response(status, {"title": exc.title, "detail": exc.detail, "status": status})
    if isinstance(exc, AgentForbidden):
        return forbidden_agent(path, exc.reason)
    if isinstance(exc, InputRefused):
        return bad_request(path, exc.reason, exc.message, exc.status)
    if status == 401:
        return unauthorized("rejected")
    if status == 403:
        return forbidden_scope(path)
    if status in (400, 415):
        detail = str(getattr(exc, "detail", "") or "")
        if path.startswith(PER_USAGER_PREFIXES) and not _agent_header_problem(request.headers, path):
            if not request.headers.get(JETON_HEADER):
                return jeton_refused("jeton_missing", 401, "JETON_USAGER_ABSENT", "En-tête ft-jeton-usager absent")
        reason, message = describe_bad_request(request.headers, path, detail)
        if status == 415:
            reason, message = "unsupported_media_type", "type de contenu non pris en charge"
        return bad_request(path, reason, message, status)
    if status in (404, 405):
        note_refusal("no_such_operation")
        _attribute_probe(request, path)
        return erreur_partenaire(status, "RESSOURCE_INCONNUE", "Ressource ou méthode inconnue")
    return handle_unexpected_for(path, exc)


async def handle_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    return handle_unexpected_for(request.url.path, exc)


def handle_unexpected_for(path: str, exc: Exception) -> ConnexionResponse:
    log.error("unexpected_error", **safe_exception_fields(exc))
    note_refusal("internal_error")
    status, body = server_error(path)
    return json_response(status, body)


def _attribute_probe(request: ConnexionRequest, path: str) -> None:
    """A valid token on an unknown path or method is a probe worth auditing.

    The pipeline audits only calls that matched an operation; this one is audited under
    ``PROBE_OPERATION`` when its token verifies for the audience of the prefix called (a
    partner token under the partner APIs, an agent's admin token under the admin APIs). An
    anonymous or forged probe is only logged: auditing it would let anyone fill the journal.
    The signature check needs no database.
    """
    if path.startswith((PARTNER_PREFIX, ALIMENTATION_PREFIX)):
        audience = TokenAudience.PARTNER
    elif path.startswith(ADMIN_PREFIXES):
        audience = TokenAudience.ADMIN
    else:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return
    try:
        state = current_request()
    except LookupError:
        return
    services = state.services
    try:
        claims = verify_relais_token(
            services.keys, services.settings, token.strip(), audience=audience, now=services.clock()
        )
        if audience is TokenAudience.ADMIN:
            # The agent as the token names them; whether they are still active is the
            # business of a matched operation's bearer check (api.admin.admin_security).
            state.audit.agent_id = admin_agent_id(claims)
            state.audit.client_id = ADMIN_CLIENT_ID
        else:
            state.audit.client_id = str(claims["sub"])
    except InvalidAccessToken:
        return
    state.audit.operation = PROBE_OPERATION


def _agent_header_problem(headers: Mapping[str, str], path: str) -> bool:
    return describe_bad_request(headers, path, "")[0].startswith("agent_header")


def jeton_refused(reason: str, status: int, code: str, message: str) -> ConnexionResponse:
    note_refusal(reason)
    return erreur_partenaire(status, code, message)
