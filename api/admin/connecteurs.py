"""Connecteurs v1: delivery status and history of an organisation's connectors, replay, pause.

Who: the RGC (titulaire or suppléant), the RSSI or the integrator of the connector's
organisation, the CSSI and the hub operator; a connector outside one's perimeter answers 404,
as if it did not exist. The console's integration page (``api.console.integration``) goes
through the same functions (``visible_organisations``, ``connector_for``, ``replay_event``).
What: identifiers, types, statuses and attempts of the messages, never their content (which
names usagers): an administrative role does not open beneficiary data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connexion.lifecycle import ConnexionResponse
from sqlmodel import Session, col, select

from adapters.outbound import deliveries, registry
from adapters.outbound.models import ACTIVE, Connector, DeliveryAttempt
from api.admin.admin_security import principal_of
from api.context import RequestState, current_request
from api.errors import json_response
from api.refusals import refusal_response
from habilitations.models import INTEGRATEUR, RGC_SUPPLEANT, RGC_TITULAIRE, RSSI
from habilitations.roles import Principal
from relais.core.outbox import DEAD, FAILED, OutboxMessage
from relais.core.refusals import RefusalKind, Refused

_ROLES = (RGC_TITULAIRE, RGC_SUPPLEANT, RSSI, INTEGRATEUR)
ETAT = {ACTIVE: "ACTIF"}
ROLE_INSUFFISANT = "ACCES_NON_AUTORISE"
CONNECTEUR_INCONNU = "CONNECTEUR_INCONNU"
EVENEMENT_INCONNU = "EVENEMENT_INCONNU"
PERIODE_INVALIDE = "PERIODE_INVALIDE"
# The audited reason of each refusal (codes only).
_REASONS = {
    ROLE_INSUFFISANT: "role_insuffisant",
    CONNECTEUR_INCONNU: "connecteur_inconnu",
    EVENEMENT_INCONNU: "evenement_inconnu",
    PERIODE_INVALIDE: "periode_invalide",
}


# Handlers ---------------------------------------------------------------------------------


def lister_connecteurs() -> ConnexionResponse:
    state = current_request()
    try:
        return json_response(200, {"connecteurs": connectors_view(state)})
    except Refused as refused:
        return _refused(refused)


def lire_connecteur(nom: str) -> ConnexionResponse:
    state = current_request()
    try:
        connector = _connector(state, nom)
    except Refused as refused:
        return _refused(refused)
    return json_response(200, _connecteur(state.session(), connector, max_attempts=_max_attempts(state)))


def suspendre_connecteur(nom: str) -> ConnexionResponse:
    state = current_request()
    try:
        connector = _connector(state, nom, lock=True)
    except Refused as refused:
        return _refused(refused)
    session = state.session()
    changed = registry.pause(session, connector, "suspendu par un agent", state.services.clock())
    state.audit.details = {"action": "suspendre", "effet": changed}
    session.flush()
    return json_response(200, _connecteur(session, connector, max_attempts=_max_attempts(state)))


def reprendre_connecteur(nom: str) -> ConnexionResponse:
    state = current_request()
    try:
        connector = _connector(state, nom, lock=True)
    except Refused as refused:
        return _refused(refused)
    session = state.session()
    waiting = registry.resume(session, connector, state.services.clock())
    state.audit.details = {"action": "reprendre", "messages": waiting}
    session.flush()
    return json_response(200, _connecteur(session, connector, max_attempts=_max_attempts(state)))


def lister_evenements(
    nom: str,
    statut: str | None = None,
    depuis: str | None = None,
    jusqua: str | None = None,
    limite: int = 100,
    decalage: int = 0,
) -> ConnexionResponse:
    state = current_request()
    try:
        connector = _connector(state, nom)
        since, until = _period(depuis, jusqua)
    except Refused as refused:
        return _refused(refused)
    state.audit.details = {"filtres": [n for n, v in (("statut", statut), ("depuis", depuis), ("jusqua", jusqua)) if v]}
    statuses = [deliveries.STATUS_OF[statut]] if statut else None
    page = deliveries.messages(
        state.session(), connector, statuses=statuses, since=since, until=until, limit=limite, offset=decalage
    )
    return json_response(200, {"total": page.total, "evenements": [_evenement(m) for m in page.messages]})


def lire_evenement(nom: str, evenementId: str) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        connector = _connector(state, nom)
        found = _message(session, connector, evenementId)
    except Refused as refused:
        return _refused(refused)
    return json_response(200, _evenement(found, deliveries.attempts(session, found)))


def rejouer_evenement(nom: str, evenementId: str) -> ConnexionResponse:
    state = current_request()
    try:
        found = replay_event(state, nom, evenementId)
    except Refused as refused:
        return _refused(refused)
    return json_response(202, _evenement(found))


def replay_event(state: RequestState, nom: str, event_id: str) -> OutboxMessage:
    """Put one message of connector ``nom`` back in the queue, as audited; raises Refused."""
    session = state.session()
    connector = _connector(state, nom)
    found = _message(session, connector, event_id, lock=True)
    deliveries.replay(session, found, state.services.clock())
    session.flush()
    state.audit.details = {"action": "rejouer", "evenement": event_id}
    return found


def rejouer_plage(nom: str, body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    try:
        connector = _connector(state, nom)
        since, until = _period(body.get("depuis"), body.get("jusqua"))
    except Refused as refused:
        return _refused(refused)
    session = state.session()
    statuses = [deliveries.STATUS_OF[s] for s in body.get("statuts") or ("ABANDONNE", "EN_ECHEC")]
    count = deliveries.replay_range(
        session, connector, state.services.clock(), statuses=statuses, since=since, until=until
    )
    session.flush()
    state.audit.details = {"action": "rejouer_plage", "nombre": count}
    return json_response(202, {"nombre": count})


def connectors_view(state: RequestState, *, failures: int = 0) -> list[dict[str, Any]]:
    """The connectors the caller may see, shaped as the API lists them; raises Refused.

    ``failures``: with each, its latest messages in failure (``EN_ECHEC``, ``ABANDONNE``), at most that many.
    """
    session = state.session()
    visible = visible_organisations(principal_of(state))
    query = select(Connector).order_by(col(Connector.name))
    if visible is not None:
        query = query.where(col(Connector.organisation_id).in_(visible))
    shaped = []
    for connector in session.exec(query).all():
        view = _connecteur(session, connector, max_attempts=_max_attempts(state))
        if failures:
            failed = deliveries.messages(session, connector, statuses=[FAILED, DEAD], limit=failures)
            view["echecs"] = [_evenement(message) for message in failed.messages]
        shaped.append(view)
    return shaped


def _max_attempts(state: RequestState) -> int:
    return state.services.settings.connector_max_attempts


def _refused(refused: Refused) -> ConnexionResponse:
    return refusal_response(refused, reason=_REASONS[refused.code])


# Access -----------------------------------------------------------------------------------


def visible_organisations(principal: Principal) -> frozenset[int] | None:
    """Organisation ids whose connectors the principal sees; None for all. Raises Refused."""
    if principal.is_operator or principal.is_cssi:
        return None
    ids = frozenset(organisation_id for role, organisation_id in principal.roles if role in _ROLES)
    if not ids:
        raise Refused(
            RefusalKind.FORBIDDEN,
            ROLE_INSUFFISANT,
            "Réservé au RGC, au RSSI et à l'intégrateur de l'organisation, au CSSI et à l'opérateur",
        )
    return ids


def _connector(state: RequestState, nom: str, *, lock: bool = False) -> Connector:
    """The connector ``nom`` if the caller may see it, recorded as the audited target; raises Refused."""
    state.audit.target = f"connecteur:{nom}"
    visible = visible_organisations(principal_of(state))
    session = state.session()
    connector = registry.by_name(session, nom, lock=lock)
    if connector is None or (visible is not None and connector.organisation_id not in visible):
        # One outside the caller's perimeter answers as if it did not exist.
        raise Refused(RefusalKind.UNKNOWN, CONNECTEUR_INCONNU, "Connecteur inconnu")
    state.audit.organisation = registry.organisation_code(session, connector) or state.audit.organisation
    return connector


def _message(session: Session, connector: Connector, event_id: str, *, lock: bool = False) -> OutboxMessage:
    found = deliveries.message(session, connector, event_id, lock=lock)
    if found is None:
        raise Refused(RefusalKind.UNKNOWN, EVENEMENT_INCONNU, "Événement inconnu pour ce connecteur")
    return found


def _period(depuis: str | None, jusqua: str | None) -> tuple[datetime | None, datetime | None]:
    since, until = _instant(depuis, "depuis"), _instant(jusqua, "jusqua")
    if since is not None and until is not None and since > until:
        raise Refused(RefusalKind.INVALID, PERIODE_INVALIDE, "Période invalide : depuis est après jusqua")
    return since, until


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Refused(
            RefusalKind.INVALID, PERIODE_INVALIDE, f"{name} invalide : date-heure RFC 3339 avec fuseau attendue"
        )
    return parsed


# Shapes -----------------------------------------------------------------------------------


def _connecteur(session: Session, connector: Connector, *, max_attempts: int) -> dict[str, Any]:
    """``max_attempts``: the deployment's default, for a connector without its own."""
    last = deliveries.last_delivery(session, connector)
    return {
        "nom": connector.name,
        "organisation": registry.organisation_code(session, connector),
        "type": connector.kind,
        "url": connector.url,
        "evenements": list(connector.events),
        "notifications": connector.notifications,
        "etat": ETAT.get(connector.state, "SUSPENDU"),
        "motifSuspension": connector.pause_reason,
        "dateSuspension": _iso(connector.paused_at),
        "echecsConsecutifs": connector.consecutive_failures,
        "tentativesMax": connector.max_attempts or max_attempts,
        "compteurs": deliveries.counts(session, connector),
        "derniereLivraison": _iso(last),
    }


def _evenement(message: OutboxMessage, attempts: list[DeliveryAttempt] | None = None) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "identifiant": deliveries.event_id_of(message),
        "type": message.topic,
        "statut": deliveries.STATUT[message.status],
        "tentatives": message.attempts,
        "dateCreation": _iso(message.created_at),
        "prochaineTentative": _iso(message.next_attempt_at) if message.status in deliveries.WAITING else None,
        "derniereErreur": message.last_error,
        "dateLivraison": _iso(message.delivered_at),
    }
    if attempts is not None:
        shaped["historique"] = [
            {
                "numero": attempt.attempt,
                "date": _iso(attempt.attempted_at),
                "resultat": deliveries.STATUT.get(attempt.outcome, "EN_ECHEC"),
                "codeHttp": attempt.http_status,
                "erreur": attempt.error,
                "dureeMs": attempt.duration_ms,
            }
            for attempt in attempts
        ]
    return shaped


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
