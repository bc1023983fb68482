"""The words of the RGC's pages: states, employment statuses, roles, reasons and review findings
in French, and the labels of the APIs and operations an agent may be granted.

The codes are the habilitations domain's; only their wording lives here.
"""

from __future__ import annotations

from habilitations.models import Habilitation
from habilitations.profiles import api_profiles

ETATS = {
    "actif": "Active",
    "suspendu_inactivite": "Suspendue (inactivité)",
    "bloque": "Bloquée (sécurité)",
    "revoque": "Révoquée",
    "supprime": "Supprimée",
}
# The account's state reads in the masculine ("le compte").
ETATS_COMPTE = {
    "actif": "Actif",
    "suspendu_inactivite": "Suspendu (inactivité)",
    "bloque": "Bloqué (sécurité)",
    "revoque": "Révoqué",
    "supprime": "Supprimé",
}
STATUTS = {
    "fonctionnaire": "Fonctionnaire",
    "contractuel": "Contractuel",
    "prestataire": "Prestataire",
    "interimaire": "Intérimaire",
}
ROLES = {
    "rgc_titulaire": "RGC titulaire",
    "rgc_suppleant": "RGC suppléant",
    "rssi": "RSSI (responsable de la sécurité)",
    "cssi": "CSSI de France Travail",
    "operateur": "Opérateur du hub",
    "integrateur": "Intégrateur",
}
# The roles the designation form offers; the domain still decides who may give which.
ROLES_PROPOSES = ("rgc_suppleant", "rssi", "rgc_titulaire", "integrateur")
MOTIFS_FIN = {
    "depart": "Départ de l'organisation",
    "changement_fonction": "Changement de fonction",
    "absence_prolongee": "Absence de plus de deux mois",
    "fin_de_mission": "Fin de la mission",
}
# What the review campaign's checks find (habilitations.campaign_evidence), in plain words.
ANOMALIES = {
    "DEVRAIT_ETRE_SUSPENDU": "Plus de deux mois sans activité : le compte aurait dû être suspendu",
    "SCOPE_INUTILISE_90_JOURS": "Droits non utilisés depuis 90 jours : sont-ils encore nécessaires ?",
    "HORS_SOUSCRIPTION": "Droits hors de la souscription de l'organisation",
    "SANS_JUSTIFICATION": "Habilitation accordée sans justification",
    "BLOCAGE_SECURITE": "Bloquée par la sécurité depuis la dernière revue",
}
# Reason codes the RGC meets (revocations, blocks, reactivations): shown in words.
MOTIFS = {
    "changement_fonction": "Changement de fonction",
    "depart": "Départ de l'organisation",
    "fin_de_besoin": "Fin du besoin",
    "verification_faite": "Vérification faite",
    "erreur_de_blocage": "Blocage par erreur",
    "usage_suspect": "Usage suspect",
    "incident_securite": "Incident de sécurité",
    "inactivite": "Deux mois sans activité",
    "reactivation": "Réactivation",
    "reprise_activite": "Reprise d'activité",
    **MOTIFS_FIN,
}


def motif(code: str | None) -> str:
    """A reason code in words; an unknown code reads as a phrase rather than as a code."""
    if not code:
        return "—"
    return MOTIFS.get(code) or code.replace("_", " ").replace("-", " ").capitalize()


def api_titles() -> dict[str, str]:
    """Each API's title, by its code."""
    return {api: profile.title for api, profile in api_profiles().items()}


def operation_labels(grant: Habilitation) -> list[str]:
    """The operations the grant lets the agent call, by their French labels."""
    profile = api_profiles().get(grant.api)
    return [op.label for op in profile.callable_with(grant.scopes)] if profile is not None else []
