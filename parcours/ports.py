"""Backend ports: what the partner API handlers need, in the contracts' own terms.

Handlers never see how data is stored or fetched. A backend answers for a ``Caller`` (the
client, its organisation and the agent named in the ``pa-*`` headers) so that it can apply
the caller's perimeter, and designates usagers by an opaque ``ref`` that Relais wraps in
the ``jetonUsager`` it hands out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from relais.core.refusals import RefusalKind
from relais.core.refusals import Refused as KernelRefused


@dataclass(frozen=True)
class Perimetre:
    """What decides which usagers an organisation reaches (``parcours.perimeter.is_attached``).

    A snapshot of the organisation's row. The security check reads it with the client's rights,
    under the call's habilitation policy version (``organisation`` is one of the tables whose
    every change bumps that version), so a call that carries it does not read the row again.
    """

    organisation_id: int
    territoire: frozenset[str]
    code_aurore: str | None


@dataclass(frozen=True)
class Caller:
    client_id: str
    organisation: str
    agent_nom: str
    agent_prenom: str
    agent_identifiant: str
    # The organisation's perimeter as read by the security check, when it was; None: read it.
    perimetre: Perimetre | None = None


class Issue(enum.Enum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    SEVERAL = "several"
    NOT_ATTACHED = "not_attached"


@dataclass(frozen=True)
class UsagerMatch:
    """The outcome of a search; ``ref`` and the rest are set only when ``issue`` is FOUND."""

    issue: Issue
    ref: str | None = None
    nir_index: str | None = None
    identite_certifiee: bool = False


@dataclass(frozen=True)
class UsagerData:
    """Per-usager data as the contract shapes it, with the usager's NIR index for the audit."""

    nir_index: str | None
    # A JSON object, or an array where the contract answers one (lectureOrientation).
    payload: dict[str, Any] | list[Any] | None


class UsagerNotAttached(Exception):
    """The usager exists but is outside the caller's perimeter (anymore)."""


class RechercherUsagerBackend(Protocol):
    def par_nir(self, caller: Caller, *, nir: str, date_naissance: date) -> UsagerMatch: ...

    def par_numero_france_travail(self, caller: Caller, *, numero: str) -> UsagerMatch: ...


class InformationsAdministrativesBackend(Protocol):
    def lire(self, caller: Caller, ref: str) -> UsagerData:
        """``payload`` is the UsagerResource, or None when there is nothing to return."""
        ...


class StatutUsagerBackend(Protocol):
    def lire_contrat(self, caller: Caller, ref: str) -> UsagerData:
        """``payload`` is the ``m_contrat`` object, or None when the usager has none."""
        ...


# Parcours ports ----------------------------------------------------------------------
#
# A write either succeeds, returning what the contract answers, or raises ``Refused`` and
# changes nothing. Bodies and answers are the contract's own JSON objects (dicts), already
# validated against the spec by the time a backend sees them.


class Refused(KernelRefused):
    """A call the parcours rules refuse. ``code`` and ``message`` follow the contract (French).

    The root refusal of the parcours domain; ``kind`` tells the API layer which status fits.
    """

    def __init__(self, kind: RefusalKind, code: str, message: str) -> None:
        super().__init__(kind, code, message)


@dataclass(frozen=True)
class ActivitesPage:
    """One page of a structure's open activities, in v2 field names; ``cursor`` for the next."""

    activites: list[dict[str, Any]]
    cursor: str | None


class ActivitesBackend(Protocol):
    def chercher(
        self,
        caller: Caller,
        *,
        code_activite: str | None,
        code_famille: str | None,
        code_domaine: str | None,
        cursor: str | None,
        limit: int,
    ) -> ActivitesPage: ...


class OrientationBackend(Protocol):
    def lire(self, caller: Caller, ref: str, *, etat: str | None) -> UsagerData:
        """``payload`` is the list of orientations, or None when there is none."""
        ...

    def calculer(self, caller: Caller, ref: str, criteres: dict[str, Any]) -> UsagerData: ...

    def decider(self, caller: Caller, ref: str, decision: dict[str, Any]) -> UsagerData: ...

    def orienter(self, caller: Caller, ref: str, orientation: dict[str, Any]) -> UsagerData: ...


class RendezVousBackend(Protocol):
    def creer(self, caller: Caller, ref: str, rendez_vous: dict[str, Any]) -> UsagerData: ...

    def modifier(self, caller: Caller, ref: str, rendez_vous: dict[str, Any]) -> UsagerData: ...

    def supprimer(self, caller: Caller, ref: str, identifiant: str) -> UsagerData: ...

    def lister(self, caller: Caller, ref: str) -> UsagerData: ...


class ContratEngagementBackend(Protocol):
    def lire(self, caller: Caller, ref: str) -> UsagerData: ...

    def signer_premier(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData: ...

    def refuser_premier(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData: ...

    def refuser(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData: ...

    def signer(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData: ...


class SanctionsBackend(Protocol):
    def detail_manquement(self, caller: Caller, ref: str, identifiant: str) -> UsagerData: ...

    def evenement(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData: ...

    def decision_partenaire(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData: ...

    def demande_radiation(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData: ...


class DiagnosticBackend(Protocol):
    def lister(self, caller: Caller, ref: str) -> UsagerData:
        """``payload`` is ``{"diagnostics": [...]}``, the list possibly empty."""
        ...

    def creer(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData: ...

    def supprimer(self, caller: Caller, ref: str, identifiant: str) -> UsagerData: ...


@dataclass(frozen=True)
class Backends:
    rechercher_usager: RechercherUsagerBackend
    informations_administratives: InformationsAdministrativesBackend
    statut_usager: StatutUsagerBackend
    activites: ActivitesBackend
    orientation: OrientationBackend
    rendez_vous: RendezVousBackend
    contrat_engagement: ContratEngagementBackend
    sanctions: SanctionsBackend
    # Diagnostic argumenté v4; None where a backend set does not serve it (its calls answer 503).
    diagnostic: DiagnosticBackend | None = None
