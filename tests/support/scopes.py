"""The scopes the test clients hold, the partner routes the tests call, and the credentials
and agent headers they call with."""

from __future__ import annotations

RECHERCHE_SCOPES = "api_rechercher-usagerv2 rechercheusager profil_accedant"
INFOS_SCOPES = "api_informations-administrativesv1 informationsadministrativesusager profil_accedant"
STATUT_SCOPES = "api_contrat-usagerv2 statutcontratusager profil_accedant"
ORIENTATION_SCOPES = "api_orientationusagerv1 orientationusager profil_accedant"
ACTIVITES_V1_SCOPES = "api_activites-operationnellesv1 activitesCD referentielCD profil_accedant"
ACTIVITES_V2_SCOPES = "api_activites-operationnellesv2 activitesCD"
RDV_SCOPES = "api_rendez-vous-partenairev1 gererRDV"
CONTRAT_ENGAGEMENT_SCOPES = "api_contrat-engagementv1 contratengagement"
SANCTIONS_SCOPES = "api_gestion-sanctions-rsav1 gestiondesmanquements decisionSanctionPartenaire demandeRadiation"
DIAGNOSTIC_SCOPES = "api_diagnosticargumentev4 diagnosticusageragent"
# Relais' producer feed (France Travail and other producers), never held by a département.
ALIMENTATION_SCOPES = "api_alimentationv1 alimentationusager alimentationorientation alimentationmanquement"
PARCOURS_SCOPES = " ".join(
    (
        ORIENTATION_SCOPES,
        ACTIVITES_V1_SCOPES,
        ACTIVITES_V2_SCOPES,
        RDV_SCOPES,
        CONTRAT_ENGAGEMENT_SCOPES,
        SANCTIONS_SCOPES,
        DIAGNOSTIC_SCOPES,
    )
)
ALL_SCOPES = sorted(set(f"{RECHERCHE_SCOPES} {INFOS_SCOPES} {STATUT_SCOPES} {PARCOURS_SCOPES}".split()))
SECRET = "s3cret-for-tests-only-0123456789"
AGENT = {"pa-nom-agent": "Martin", "pa-prenom-agent": "Claire", "pa-identifiant-agent": "AGT-0042"}
TOKEN_URL = "/connexion/oauth2/access_token?realm=/agent"
RECHERCHE = "/partenaire/rechercher-usager/v2/usagers"
INFOS = "/partenaire/informations-administratives/v1/usager"
STATUT = "/partenaire/contrat-usager/v2/contrat"
