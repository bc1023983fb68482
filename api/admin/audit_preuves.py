"""Audit v1: the verifiable journal's signed checkpoints, inclusion and consistency proofs.

They let a third party (the CSSI, an RSSI) keep checkpoints and later check, with the public
key alone, that an event is in the journal and that the journal only grew since. The proofs
come from ``audit.checkpoints``; this module only serves them to security officers (an
RSSI gets the inclusion proof of their own organisation's events only).
"""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse

from api.admin.audit_access import AccessRefused, current_visibility
from api.context import current_request
from api.errors import erreur_partenaire, json_response, note_refusal
from audit import checkpoints
from audit.models import AuditEvent


def lire_dernier_point_de_controle() -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        current_visibility(session)
    except AccessRefused as refused:
        return refused.response
    checkpoint = checkpoints.latest_checkpoint(session)
    if checkpoint is None:
        return _refused(404, "POINT_DE_CONTROLE_ABSENT", "Aucun point de contrôle signé pour l'instant")
    return json_response(200, checkpoints.checkpoint_json(checkpoint))


def lire_point_de_controle(taille: int) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        current_visibility(session)
    except AccessRefused as refused:
        return refused.response
    checkpoint = checkpoints.checkpoint_for_size(session, taille)
    if checkpoint is None:
        return _refused(404, "POINT_DE_CONTROLE_ABSENT", "Aucun point de contrôle signé pour cette taille d'arbre")
    return json_response(200, checkpoints.checkpoint_json(checkpoint))


def lire_preuve_inclusion(evenementId: int, taille: int | None = None) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    state.audit.target = f"evenement:{evenementId}"
    try:
        _, visible = current_visibility(session)
    except AccessRefused as refused:
        return refused.response
    event = session.get(AuditEvent, evenementId)
    if event is None or (visible is not None and event.organisation not in visible):
        return _refused(404, "EVENEMENT_INCONNU", "Événement inconnu")
    try:
        proof = checkpoints.inclusion_proof(session, evenementId, taille)
    except ValueError:
        return _refused(400, "TAILLE_INVALIDE", "taille : l'arbre n'a pas (encore) cette taille")
    if proof is None:
        return _refused(
            404,
            "PREUVE_INDISPONIBLE",
            "Événement pas encore couvert par un point de contrôle signé : réessayer après le prochain",
        )
    return json_response(200, proof.as_json())


def lire_preuve_coherence(de: int, a: int) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        current_visibility(session)
    except AccessRefused as refused:
        return refused.response
    try:
        path = checkpoints.consistency_proof(session, de, a)
    except ValueError:
        return _refused(400, "TAILLE_INVALIDE", "de et a : 0 < de <= a <= taille actuelle de l'arbre")
    first, second = checkpoints.checkpoint_for_size(session, de), checkpoints.checkpoint_for_size(session, a)
    return json_response(
        200,
        {
            "de": de,
            "a": a,
            "preuve": path,
            "pointDeControleDe": checkpoints.checkpoint_json(first) if first else None,
            "pointDeControleA": checkpoints.checkpoint_json(second) if second else None,
        },
    )


def lire_cle_publique() -> ConnexionResponse:
    state = current_request()
    try:
        current_visibility(state.session())
    except AccessRefused as refused:
        return refused.response
    return json_response(200, {"clePublique": checkpoints.public_key_pem(state.services.settings)})


def _refused(status: int, code: str, message: str) -> ConnexionResponse:
    note_refusal(code.lower())
    return erreur_partenaire(status, code, message)
