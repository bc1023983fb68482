"""Audit v1: the verifiable journal's signed checkpoints, inclusion and consistency proofs.

They let a third party (the CSSI, an RSSI) keep checkpoints and later check, with the public
key alone, that an event is in the journal and that the journal only grew since. The proofs
come from ``audit.checkpoints``; this module only serves them to security officers (an
RSSI gets the inclusion proof of their own organisation's events only).
"""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.admin.audit_access import current_visibility, refused_answer
from api.context import current_request
from api.errors import json_response
from audit import checkpoints
from audit.models import AuditEvent
from audit.refusals import AuditRefused, RefusalKind


def lire_dernier_point_de_controle() -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        current_visibility(session)
        checkpoint = checkpoints.latest_checkpoint(session)
        if checkpoint is None:
            raise _no_checkpoint("Aucun point de contrôle signé pour l'instant")
    except AuditRefused as refused:
        return refused_answer(refused)
    return json_response(200, checkpoints.checkpoint_json(checkpoint))


def lire_point_de_controle(taille: int) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        current_visibility(session)
        checkpoint = checkpoints.checkpoint_for_size(session, taille)
        if checkpoint is None:
            raise _no_checkpoint("Aucun point de contrôle signé pour cette taille d'arbre")
    except AuditRefused as refused:
        return refused_answer(refused)
    return json_response(200, checkpoints.checkpoint_json(checkpoint))


def lire_preuve_inclusion(evenementId: int, taille: int | None = None) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    state.audit.target = f"evenement:{evenementId}"
    try:
        _, visible = current_visibility(session)
        event = session.get(AuditEvent, evenementId)
        if event is None or (visible is not None and event.organisation not in visible):
            raise AuditRefused(RefusalKind.UNKNOWN, "EVENEMENT_INCONNU", "Événement inconnu")
        try:
            proof = checkpoints.inclusion_proof(session, evenementId, taille)
        except ValueError:
            raise _bad_size("taille : l'arbre n'a pas (encore) cette taille") from None
        if proof is None:
            raise AuditRefused(
                RefusalKind.UNKNOWN,
                "PREUVE_INDISPONIBLE",
                "Événement pas encore couvert par un point de contrôle signé : réessayer après le prochain",
            )
    except AuditRefused as refused:
        return refused_answer(refused)
    return json_response(200, proof.as_json())


def lire_preuve_coherence(de: int, a: int) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        current_visibility(session)
        try:
            path = checkpoints.consistency_proof(session, de, a)
        except ValueError:
            raise _bad_size("de et a : 0 < de <= a <= taille actuelle de l'arbre") from None
    except AuditRefused as refused:
        return refused_answer(refused)
    first, second = checkpoints.checkpoint_for_size(session, de), checkpoints.checkpoint_for_size(session, a)
    answer: dict[str, Any] = {"de": de, "a": a, "preuve": path}
    # A size no signed checkpoint has is simply left out (the spec's schema has no null for it).
    if first is not None:
        answer["pointDeControleDe"] = checkpoints.checkpoint_json(first)
    if second is not None:
        answer["pointDeControleA"] = checkpoints.checkpoint_json(second)
    return json_response(200, answer)


def lire_cle_publique() -> ConnexionResponse:
    state = current_request()
    try:
        current_visibility(state.session())
    except AuditRefused as refused:
        return refused_answer(refused)
    return json_response(200, {"clePublique": checkpoints.public_key_pem(state.services.settings)})


def _no_checkpoint(message: str) -> AuditRefused:
    return AuditRefused(RefusalKind.UNKNOWN, "POINT_DE_CONTROLE_ABSENT", message)


def _bad_size(message: str) -> AuditRefused:
    # The proofs' tree sizes are numbers the caller chose: a size the tree does not have is a
    # bad request, not an unknown object.
    return AuditRefused(RefusalKind.INVALID, "TAILLE_INVALIDE", message)
