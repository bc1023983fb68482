"""The partner ports implemented by forwarding to France Travail.

Each method sends the call the contract describes, with the scope set of its API, the agent of
the ``pa-*`` headers and, for per-usager calls, the upstream jeton kept behind the caller's
Relais jeton (``jetons.py``). Success answers go back through the ports as data; any other
answer is raised as ``UpstreamAnswer`` and reaches the caller as France Travail sent it.

The gateway is built once per app but serves each call in that call's own unit of work: the
web shell hands it providers (``session``, ``clock``, ``jeton_ttl``, ``audit``) that answer
for the call being served, so the jeton mapping, the audit draft and the request's other
writes commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from sqlmodel import Session

from adapters.france_travail import jetons
from adapters.france_travail.client import FranceTravailClient, UpstreamResponse
from adapters.france_travail.credentials import Credentials, token_providers
from adapters.france_travail.errors import GatewayRefused, UpstreamAnswer
from adapters.france_travail.tokens import Scopes
from parcours.ports import ActivitesPage, Backends, Caller, Issue, UsagerData, UsagerMatch
from relais.core.auditing import AuditDraft
from relais.core.config import Settings
from relais.core.keys import KeySet
from relais.core.nir import NirError
from relais.core.personal_data import blind_index
from relais.core.refusals import RefusalKind

# Scope sets per API, as France Travail lists them (contract §0.3): one token each, since a
# single unsubscribed scope fails the whole token request.
RECHERCHE = frozenset({"api_rechercher-usagerv2", "rechercheusager", "profil_accedant"})
# FT's scope group for this API (the collection's ref_scopes_infos_admin) has no profil_accedant.
INFOS = frozenset({"api_informations-administrativesv1", "informationsadministrativesusager"})
STATUT = frozenset({"api_contrat-usagerv2", "statutcontratusager", "profil_accedant"})
ORIENTATION = frozenset({"api_orientationusagerv1", "orientationusager", "profil_accedant"})
ACTIVITES = frozenset({"api_activites-operationnellesv2", "activitesCD"})
RDV = frozenset({"api_rendez-vous-partenairev1", "gererRDV"})
# FT's applicative scope for this API is not public: the technical scope only (README, differences).
CONTRAT_ENGAGEMENT = frozenset({"api_contrat-engagementv1"})
SANCTIONS = frozenset({"api_gestion-sanctions-rsav1", "gestiondesmanquements"})
SANCTIONS_DECISION = SANCTIONS | {"decisionSanctionPartenaire"}
SANCTIONS_RADIATION = SANCTIONS | {"demandeRadiation"}
DIAGNOSTIC = frozenset({"api_diagnosticargumentev4", "diagnosticusageragent"})

P = "/partenaire"
# France Travail's message for an unknown rendez-vous (contract §0.6).
ID_NON_RECONNU_MESSAGE = "Il n'existe pas de rdv pour l'id et l'utilisateur indiqué"


class _Gateway:
    def __init__(
        self,
        client: FranceTravailClient,
        session: Callable[[], Session],
        keys: KeySet,
        clock: Callable[[], datetime],
        jeton_ttl: Callable[[], timedelta],
        audit: Callable[[], AuditDraft | None],
    ) -> None:
        self._client = client
        self._session = session
        self._keys = keys
        self._clock = clock
        self._jeton_ttl = jeton_ttl
        self._audit = audit

    def _call(
        self,
        method: str,
        path: str,
        scopes: Scopes,
        caller: Caller,
        *,
        jeton: str | None = None,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        return self._client.call(
            method, path, scopes=scopes, caller=caller, audit=self._audit(), jeton=jeton, body=body, params=params
        )

    def _for_usager(
        self,
        method: str,
        path: str,
        scopes: Scopes,
        caller: Caller,
        ref: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> UsagerData:
        try:
            row = jetons.recall(self._session(), self._keys, client_id=caller.client_id, ref=ref, now=self._clock())
        except jetons.JetonInconnu:
            # The upstream jeton expired and was purged: the caller must search again.
            raise GatewayRefused(
                RefusalKind.UNKNOWN,
                "JETON_USAGER_EXPIRE",
                "Jeton usager expiré : refaites la recherche usager",
                reason="gateway_jeton_inconnu",
            ) from None
        response = self._call(
            method, path, scopes, caller, jeton=jetons.upstream_jeton(self._keys, row), body=body, params=params
        )
        payload = _success(response)
        return UsagerData(_nir_index(self._keys, payload) or row.nir_index, payload)


class RechercherUsagerGateway(_Gateway):
    def par_nir(self, caller: Caller, *, nir: str, date_naissance: date) -> UsagerMatch:
        body = {"nir": nir, "dateNaissance": date_naissance.isoformat()}
        response = self._call(
            "POST", f"{P}/rechercher-usager/v2/usagers/par-datenaissance-et-nir", RECHERCHE, caller, body=body
        )
        return self._match(caller, response, blind_index(self._keys, nir))

    def par_numero_france_travail(self, caller: Caller, *, numero: str) -> UsagerMatch:
        response = self._call(
            "POST",
            f"{P}/rechercher-usager/v2/usagers/par-numero-francetravail",
            RECHERCHE,
            caller,
            body={"numeroFranceTravail": numero},
        )
        return self._match(caller, response, None)

    def _match(self, caller: Caller, response: UpstreamResponse, nir_index: str | None) -> UsagerMatch:
        body = response.body
        code = body.get("codeRetour") if response.status == 200 and isinstance(body, dict) else None
        if code == "S002":
            return UsagerMatch(Issue.NOT_FOUND)
        if code == "S003":
            return UsagerMatch(Issue.SEVERAL)
        upstream_jeton = body.get("jetonUsager") if isinstance(body, dict) else None
        if code != "S001" or not isinstance(upstream_jeton, str) or upstream_jeton in ("", "null"):
            # R997, R001, R002, R998, R999, the 204 some recettes answer, or anything new.
            raise UpstreamAnswer(response.status, body, response.headers)
        ref = jetons.remember(
            self._session(),
            self._keys,
            client_id=caller.client_id,
            upstream_jeton=upstream_jeton,
            nir_index=nir_index,
            now=self._clock(),
            ttl=self._jeton_ttl(),
        )
        return UsagerMatch(
            Issue.FOUND, ref=ref, nir_index=nir_index, identite_certifiee=body.get("topIdentiteCertifiee") == "O"
        )


class InformationsAdministrativesGateway(_Gateway):
    def lire(self, caller: Caller, ref: str) -> UsagerData:
        return self._for_usager("GET", f"{P}/informations-administratives/v1/usager", INFOS, caller, ref)


class StatutUsagerGateway(_Gateway):
    def lire_contrat(self, caller: Caller, ref: str) -> UsagerData:
        data = self._for_usager("GET", f"{P}/contrat-usager/v2/contrat", STATUT, caller, ref)
        # The port answers the ``m_contrat`` object; the API layer wraps it again.
        payload = data.payload
        if isinstance(payload, dict) and "m_contrat" in payload:
            return UsagerData(data.nir_index, payload["m_contrat"] or None)
        return data


class ActivitesGateway(_Gateway):
    def chercher(
        self,
        caller: Caller,
        *,
        code_activite: str | None,
        code_famille: str | None,
        code_domaine: str | None,
        cursor: str | None,
        limit: int,
    ) -> ActivitesPage:
        # v1 and v2 are both served from v2 upstream; France Travail pages by itself (``limit``
        # is the reference store's page size).
        params = {
            name: value
            for name, value in (
                ("codeActivite", code_activite),
                ("codeFamille", code_famille),
                ("codeDomaine", code_domaine),
                ("cursor", cursor),
            )
            if value is not None
        }
        response = self._call(
            "GET", f"{P}/activites-operationnelles/v2/activites/chercher", ACTIVITES, caller, params=params
        )
        body = _success(response)
        if body is None:
            return ActivitesPage([], None)
        if isinstance(body, list):
            return ActivitesPage(body, None)
        if not isinstance(body, dict):
            raise UpstreamAnswer(502, body, response.headers)
        next_cursor = body.get("cursor")
        return ActivitesPage(list(body.get("activites") or []), next_cursor if isinstance(next_cursor, str) else None)


class OrientationGateway(_Gateway):
    _BASE = f"{P}/orientationusager/v1"

    def lire(self, caller: Caller, ref: str, *, etat: str | None) -> UsagerData:
        params = {"etatOrientation": etat} if etat is not None else None
        return self._for_usager("GET", f"{self._BASE}/lectureOrientation", ORIENTATION, caller, ref, params=params)

    def calculer(self, caller: Caller, ref: str, criteres: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", f"{self._BASE}/calculOrientation", ORIENTATION, caller, ref, body=criteres)

    def decider(self, caller: Caller, ref: str, decision: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", f"{self._BASE}/decisionOrientation", ORIENTATION, caller, ref, body=decision)

    def orienter(self, caller: Caller, ref: str, orientation: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", f"{self._BASE}/orientation", ORIENTATION, caller, ref, body=orientation)


class RendezVousGateway(_Gateway):
    _BASE = f"{P}/rendez-vous-partenaire/v1"

    def creer(self, caller: Caller, ref: str, rendez_vous: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", f"{self._BASE}/rendez-vous", RDV, caller, ref, body=rendez_vous)

    def modifier(self, caller: Caller, ref: str, rendez_vous: dict[str, Any]) -> UsagerData:
        return self._for_usager("PUT", f"{self._BASE}/rendez-vous", RDV, caller, ref, body=rendez_vous)

    def supprimer(self, caller: Caller, ref: str, identifiant: str) -> UsagerData:
        if identifiant in (".", ".."):
            # Quoted, any other identifier stays one path segment; these two would move up the path.
            raise GatewayRefused(
                RefusalKind.INVALID, "ID_NON_RECONNU", ID_NON_RECONNU_MESSAGE, reason="gateway_id_invalide"
            )
        path = f"{self._BASE}/rendez-vous/{quote(identifiant, safe='')}"
        return self._for_usager("DELETE", path, RDV, caller, ref)

    def lister(self, caller: Caller, ref: str) -> UsagerData:
        return self._for_usager("GET", f"{self._BASE}/rendez-vous-usager", RDV, caller, ref)


class ContratEngagementGateway(_Gateway):
    _BASE = f"{P}/contrat-engagement/v1"

    def lire(self, caller: Caller, ref: str) -> UsagerData:
        return self._for_usager("GET", f"{self._BASE}/lecture", CONTRAT_ENGAGEMENT, caller, ref)

    def signer_premier(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", f"{self._BASE}/signer", CONTRAT_ENGAGEMENT, caller, ref, body=body)

    def refuser_premier(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", f"{self._BASE}/refuser", CONTRAT_ENGAGEMENT, caller, ref, body=body)

    def refuser(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._for_usager("PATCH", f"{self._BASE}/refuser", CONTRAT_ENGAGEMENT, caller, ref, body=body)

    def signer(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._for_usager("PATCH", f"{self._BASE}/signer", CONTRAT_ENGAGEMENT, caller, ref, body=body)


class SanctionsGateway(_Gateway):
    _BASE = f"{P}/gestion-sanctions-rsa/v1"

    def detail_manquement(self, caller: Caller, ref: str, identifiant: str) -> UsagerData:
        params = {"identifiantSanction": identifiant}
        return self._for_usager("GET", f"{self._BASE}/detailManquement", SANCTIONS, caller, ref, params=params)

    def evenement(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", f"{self._BASE}/evenementSanctionRSA", SANCTIONS, caller, ref, body=body)

    def decision_partenaire(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        path = f"{self._BASE}/decisionSanctionRSAPartenaire"
        return self._for_usager("POST", path, SANCTIONS_DECISION, caller, ref, body=body)

    def demande_radiation(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", f"{self._BASE}/demandeRadiation", SANCTIONS_RADIATION, caller, ref, body=body)


class DiagnosticGateway(_Gateway):
    _BASE = f"{P}/diagnosticargumente/v4/diagnostics"

    def lister(self, caller: Caller, ref: str) -> UsagerData:
        return self._for_usager("GET", self._BASE, DIAGNOSTIC, caller, ref)

    def creer(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._for_usager("POST", self._BASE, DIAGNOSTIC, caller, ref, body=body)

    def supprimer(self, caller: Caller, ref: str, identifiant: str) -> UsagerData:
        if identifiant in (".", ".."):
            # Quoted, any other identifier stays one path segment; these two would move up the path.
            raise GatewayRefused(
                RefusalKind.UNKNOWN,
                "DIAGNOSTIC_INCONNU",
                "Il n'existe pas de diagnostic pour l'id et l'usager indiqués",
                reason="gateway_id_invalide",
            )
        path = f"{self._BASE}/{quote(identifiant, safe='')}/supprime"
        return self._for_usager("DELETE", path, DIAGNOSTIC, caller, ref)


def _success(response: UpstreamResponse) -> Any:
    """The payload of a 2xx answer (None for 204); anything else goes back as France Travail sent it."""
    if 200 <= response.status < 300:
        return None if response.status == 204 else response.body
    raise UpstreamAnswer(response.status, response.body, response.headers)


def _nir_index(keys: KeySet, payload: Any) -> str | None:
    """The NIR's blind index when the answer carries one (Informations administratives)."""
    etat_civil = payload.get("etatCivil") if isinstance(payload, dict) else None
    nir = etat_civil.get("nir") if isinstance(etat_civil, dict) else None
    if not isinstance(nir, str):
        return None
    try:
        return blind_index(keys, nir)
    except NirError:
        return None


def build_gateway_backends(
    settings: Settings,
    *,
    session: Callable[[], Session],
    keys: KeySet,
    clock: Callable[[], datetime],
    jeton_ttl: Callable[[], timedelta],
    audit: Callable[[], AuditDraft | None],
    http: httpx.Client | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Backends:
    """Every partner port served from France Travail, as configured by ``RELAIS_FT_*``.

    ``session``, ``clock``, ``jeton_ttl`` and ``audit`` answer for the call being served
    (its unit of work, its clock, its audit draft): see the module docstring.
    """
    default = (
        Credentials(settings.ft_client_id, settings.ft_client_secret)
        if settings.ft_client_id and settings.ft_client_secret
        else None
    )
    if not (settings.ft_api_url and settings.ft_token_url) or (
        default is None and settings.ft_credentials_file is None
    ):
        raise ValueError(
            "RELAIS_BACKEND=france-travail : RELAIS_FT_API_URL, RELAIS_FT_TOKEN_URL et des identifiants "
            "(RELAIS_FT_CREDENTIALS_FILE, ou RELAIS_FT_CLIENT_ID et RELAIS_FT_CLIENT_SECRET) sont requis"
        )
    http = http or httpx.Client(
        timeout=httpx.Timeout(settings.ft_timeout_seconds, connect=settings.ft_connect_timeout_seconds)
    )
    tokens = token_providers(
        http,
        token_url=settings.ft_token_url,
        realm=settings.ft_realm,
        margin_seconds=settings.ft_token_margin_seconds,
        credentials_file=settings.ft_credentials_file,
        default=default,
    )
    extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    client = FranceTravailClient(
        http,
        tokens,
        api_url=settings.ft_api_url,
        max_retries=settings.ft_max_retries,
        max_retry_wait=settings.ft_max_retry_wait_seconds,
        **extra,
    )
    parts = (client, session, keys, clock, jeton_ttl, audit)
    return Backends(
        rechercher_usager=RechercherUsagerGateway(*parts),
        informations_administratives=InformationsAdministrativesGateway(*parts),
        statut_usager=StatutUsagerGateway(*parts),
        activites=ActivitesGateway(*parts),
        orientation=OrientationGateway(*parts),
        rendez_vous=RendezVousGateway(*parts),
        contrat_engagement=ContratEngagementGateway(*parts),
        sanctions=SanctionsGateway(*parts),
        diagnostic=DiagnosticGateway(*parts),
    )
