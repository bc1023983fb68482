"""Every partner port served from Relais' own database: the reference store's ``Backends``.

The stores are built once per app but read and write in the unit of work of the call they
serve: ``session`` and ``clock`` answer for that call (the web shell passes providers bound
to the current request), so a call's reads, writes and audit event share one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from adapters.reference_store.activites import ActivitesStore
from adapters.reference_store.contrat_engagement import ContratEngagementStore
from adapters.reference_store.diagnostic import DiagnosticStore
from adapters.reference_store.orientation import OrientationStore
from adapters.reference_store.rendez_vous import RendezVousStore
from adapters.reference_store.sanctions import SanctionsStore
from adapters.reference_store.store import ReferenceStore
from parcours.orientation_rules import RuleTable
from parcours.ports import Backends
from relais.core.keys import KeySet


def build_reference_backends(
    *,
    session: Callable[[], Session],
    keys: KeySet,
    clock: Callable[[], datetime],
    rules: Callable[[], RuleTable],
) -> Backends:
    """``rules`` gives the orientation rule table that ``calculOrientation`` applies."""
    store = ReferenceStore(session, keys)
    return Backends(
        rechercher_usager=store,
        informations_administratives=store,
        statut_usager=store,
        activites=ActivitesStore(session, clock),
        orientation=OrientationStore(session, clock, rules),
        rendez_vous=RendezVousStore(session, clock),
        contrat_engagement=ContratEngagementStore(session, clock),
        sanctions=SanctionsStore(session, clock),
        diagnostic=DiagnosticStore(session, clock),
    )
