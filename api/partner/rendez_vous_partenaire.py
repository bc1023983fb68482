"""Rendez-vous partenaire v1: the appointments partners book for an usager."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import for_usager, render_erreur_partenaire
from parcours.ports import Caller, Refused, UsagerData
from relais.core.refusals import RefusalKind

# ``ID_NON_RECONNU`` is a 400 in France Travail's answers (rdv-insertion relies on it).
REFUSAL_STATUS = {RefusalKind.INVALID: 400, RefusalKind.UNKNOWN: 400, RefusalKind.CONFLICT: 409}
# A rendez-vous booked by another organisation: the caller may see it, not change it.
FORBIDDEN_CODES = frozenset({"RDV_AUTRE_STRUCTURE"})


def _render(status: int, refused: Refused) -> ConnexionResponse:
    return render_erreur_partenaire(403 if refused.code in FORBIDDEN_CODES else status, refused)


def _run(action: Any, *, status: int = 200) -> ConnexionResponse:
    return for_usager(action, status=status, refusal_status=REFUSAL_STATUS, render_refusal=_render)


def creer_rendez_vous(body: dict[str, Any]) -> ConnexionResponse:
    backend = current_request().services.backends.rendez_vous

    def create(caller: Caller, ref: str) -> UsagerData:
        return backend.creer(caller, ref, body)

    # France Travail answers the creation 202 (SIP Postman collection).
    return _run(create, status=202)


def modifier_rendez_vous(body: dict[str, Any]) -> ConnexionResponse:
    backend = current_request().services.backends.rendez_vous

    def update(caller: Caller, ref: str) -> UsagerData:
        return backend.modifier(caller, ref, body)

    return _run(update)


def supprimer_rendez_vous(id: str) -> ConnexionResponse:
    backend = current_request().services.backends.rendez_vous

    def cancel(caller: Caller, ref: str) -> UsagerData:
        return backend.supprimer(caller, ref, id)

    return _run(cancel)


def consulter_rendez_vous_usager() -> ConnexionResponse:
    backend = current_request().services.backends.rendez_vous

    def read(caller: Caller, ref: str) -> UsagerData:
        return backend.lister(caller, ref)

    return _run(read)
