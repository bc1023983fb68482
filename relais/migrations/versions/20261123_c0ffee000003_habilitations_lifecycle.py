"""habilitations lifecycle: existing clients keep working through a transitional identity

No schema change. For every client registered before enforcement, its organisation gets a
subscription per API covering the scopes its clients hold, and the client gets a
transitional technical identity ``*`` habilitated for its scopes (purpose ``transition``):
partner calls whose ``pa-identifiant-agent`` matches no agent are made under it until the
organisation's RGC habilitates its first person (or the operator revokes it). Each step has
its audit event (channel cli), as ``habilitations.lifecycle`` wrote them when this revision
was made. A database without clients (a new install) is left untouched.

Everything below is frozen on purpose: table snapshots as they stood at this revision and
copies of the rules, constants and hashing the application used then (``habilitations``
lifecycle and policy, ``audit.journal``, ``audit.merkle``, the served APIs' scopes). A
migration must write the same data whenever it runs: do NOT update these copies to follow
later changes of the application.

Revision ID: c0ffee000003
Revises: c0ffee000002
"""

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import UTCDateTime

revision: str = "c0ffee000003"
down_revision: str | None = "c0ffee000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class _Refused(Exception):
    """habilitations.lifecycle.LifecycleRefused, as far as this migration needs it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} : {message}")
        self.code = code


def upgrade() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    clients = bind.execute(
        sa.select(_CLIENT.c.client_id, _CLIENT.c.organisation_id, _CLIENT.c.scopes).order_by(_CLIENT.c.id)
    ).all()
    held: dict[int, set[str]] = {}
    for client in clients:
        held.setdefault(client.organisation_id, set()).update(client.scopes)
    for organisation_id, scopes in held.items():
        for api, covered in _subscribable(scopes).items():
            _set_subscription(bind, organisation_id=organisation_id, api=api, scopes=covered, now=now)
    for client in clients:
        try:
            _create_transitional_identity(bind, client, now=now)
        except _Refused as refused:
            if refused.code != "hors_souscription":  # a client whose scopes name no served API
                raise


def downgrade() -> None:
    # Transitional identities and subscriptions stay: the audit trail refers to them.
    pass


# Table snapshots at this revision --------------------------------------------------------

_CLIENT = sa.table(
    "client",
    sa.column("id", sa.Integer()),
    sa.column("client_id", sa.String()),
    sa.column("organisation_id", sa.Integer()),
    sa.column("scopes", sa.JSON()),
)
_ORGANISATION = sa.table("organisation", sa.column("id", sa.Integer()), sa.column("code", sa.String()))
# Declared with their primary key, so that an insert gives back the generated id.
_metadata = sa.MetaData()
_SOUSCRIPTION = sa.Table(
    "souscription",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("organisation_id", sa.Integer()),
    sa.Column("api", sa.String()),
    sa.Column("scopes", sa.JSON()),
    sa.Column("reference", sa.String()),
    sa.Column("demandee_le", sa.Date()),
    sa.Column("created_at", UTCDateTime()),
)
_AGENT = sa.Table(
    "agent",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("organisation_id", sa.Integer()),
    sa.Column("identifiant", sa.String()),
    sa.Column("type", sa.String()),
    sa.Column("client_id", sa.String()),
    sa.Column("sub", sa.String()),
    sa.Column("email", sa.String()),
    sa.Column("nom", sa.String()),
    sa.Column("prenom", sa.String()),
    sa.Column("siret", sa.String()),
    sa.Column("statut_emploi", sa.String()),
    sa.Column("etat", sa.String()),
    sa.Column("etat_motif", sa.String()),
    sa.Column("etat_depuis", UTCDateTime()),
    sa.Column("derniere_connexion", UTCDateTime()),
    sa.Column("derniere_connexion_acr", sa.String()),
    sa.Column("derniere_activite", UTCDateTime()),
    sa.Column("created_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime()),
    sa.Column("version", sa.Integer()),
)
_HABILITATION = sa.table(
    "habilitation",
    sa.column("id", sa.String()),
    sa.column("agent_id", sa.Integer()),
    sa.column("api", sa.String()),
    sa.column("scopes", sa.JSON()),
    sa.column("finalite", sa.String()),
    sa.column("justification", sa.String()),
    sa.column("accordee_par", sa.Integer()),
    sa.column("accordee_par_libelle", sa.String()),
    sa.column("accordee_le", UTCDateTime()),
    sa.column("date_fin", sa.Date()),
    sa.column("etat", sa.String()),
    sa.column("etat_motif", sa.String()),
    sa.column("etat_depuis", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
    sa.column("version", sa.Integer()),
)
_AUDIT_EVENT = sa.Table(
    "audit_event",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("seq", sa.Integer()),
    sa.Column("occurred_at", UTCDateTime()),
    sa.Column("request_id", sa.String()),
    sa.Column("channel", sa.String()),
    sa.Column("operation", sa.String()),
    sa.Column("client_id", sa.String()),
    sa.Column("organisation", sa.String()),
    sa.Column("agent_nom", sa.String()),
    sa.Column("agent_prenom", sa.String()),
    sa.Column("agent_identifiant", sa.String()),
    sa.Column("usager_id", sa.String()),
    sa.Column("usager_nir_index", sa.String()),
    sa.Column("decision", sa.String()),
    sa.Column("reason", sa.String()),
    sa.Column("http_status", sa.Integer()),
    sa.Column("agent_id", sa.Integer()),
    sa.Column("habilitation_id", sa.String()),
    sa.Column("acr", sa.String()),
    sa.Column("scopes", sa.String()),
    sa.Column("purpose", sa.String()),
    sa.Column("data_origin", sa.String()),
    sa.Column("upstream_request_id", sa.String()),
    sa.Column("target", sa.String()),
    sa.Column("details", sa.JSON()),
    sa.Column("prev_hash", sa.String()),
    sa.Column("hash", sa.String()),
)


# habilitations.policy.subscribable, on the served APIs of this revision ------------------

# API name (its spec file's stem) → every scope its operations require, as
# ``habilitations.policy.api_scopes`` read them from ``specs/`` when this revision was made.
_API_SCOPES: dict[str, frozenset[str]] = {
    "activites-operationnelles-v1": frozenset(
        {"activitesCD", "api_activites-operationnellesv1", "profil_accedant", "referentielCD"}
    ),
    "activites-operationnelles-v2": frozenset({"activitesCD", "api_activites-operationnellesv2"}),
    "alimentation-v1": frozenset(
        {"alimentationmanquement", "alimentationorientation", "alimentationusager", "api_alimentationv1"}
    ),
    "contrat-engagement-v1": frozenset({"api_contrat-engagementv1", "contratengagement"}),
    "gestion-sanctions-rsa-v1": frozenset(
        {"api_gestion-sanctions-rsav1", "decisionSanctionPartenaire", "demandeRadiation", "gestiondesmanquements"}
    ),
    "informations-administratives-v1": frozenset(
        {"api_informations-administrativesv1", "informationsadministrativesusager", "profil_accedant"}
    ),
    "orientation-usager-v1": frozenset({"api_orientationusagerv1", "orientationusager", "profil_accedant"}),
    "rechercher-usager-v2": frozenset({"api_rechercher-usagerv2", "profil_accedant", "rechercheusager"}),
    "rendez-vous-partenaire-v1": frozenset({"api_rendez-vous-partenairev1", "gererRDV"}),
    "statut-usager-v2": frozenset({"api_contrat-usagerv2", "profil_accedant", "statutcontratusager"}),
}


def _subscribable(held: set[str]) -> dict[str, list[str]]:
    """API name → the scopes of it ``held`` covers, for the APIs whose ``api_...`` scope is held."""
    found: dict[str, list[str]] = {}
    for api, needed in sorted(_API_SCOPES.items()):
        technical = {scope for scope in needed if scope.startswith("api_")}
        if technical and technical <= held:
            found[api] = sorted(needed & held)
    return found


# habilitations.lifecycle, as the operator's command line ran it -------------------------

_ACTOR = "cli:operateur"  # Principal.command_line().libelle
_CHANNEL = "cli"
_ACTIF = "actif"
_TECHNIQUE = "technique"
_HUMAIN = "humain"
_TRANSITION_IDENTIFIANT = "*"
_TRANSITION_FINALITE = "transition"
_TRANSITION_JUSTIFICATION = "Client antérieur à l'application des habilitations"
_REFERENCE = "migration"


def _set_subscription(bind: sa.Connection, *, organisation_id: int, api: str, scopes: list[str], now: datetime) -> None:
    """lifecycle.set_subscription: create or redefine the subscription, with its audit event."""
    organisation = _organisation_code(bind, organisation_id)
    wanted = list(dict.fromkeys(scopes))
    existing = bind.execute(
        sa.select(_SOUSCRIPTION.c.id, _SOUSCRIPTION.c.scopes, _SOUSCRIPTION.c.reference, _SOUSCRIPTION.c.demandee_le)
        .where(_SOUSCRIPTION.c.organisation_id == organisation_id, _SOUSCRIPTION.c.api == api)
        .with_for_update()
    ).first()
    if existing is None:
        before = None
        subscription_id = _insert(
            bind,
            _SOUSCRIPTION.insert().values(
                organisation_id=organisation_id,
                api=api,
                scopes=wanted,
                reference=_REFERENCE,
                demandee_le=None,
                created_at=now,
            ),
        )
    else:
        before = list(existing.scopes)
        if before == wanted and existing.reference == _REFERENCE and existing.demandee_le is None:
            return
        subscription_id = existing.id
        bind.execute(
            _SOUSCRIPTION.update()
            .where(_SOUSCRIPTION.c.id == subscription_id)
            .values(scopes=wanted, reference=_REFERENCE, demandee_le=None)
        )
    _audit(
        bind,
        "habilitations.souscription.definir",
        organisation=organisation,
        target=f"souscription:{subscription_id}",
        habilitation_id=None,
        details={"api": api, "scopes_avant": before, "scopes_apres": wanted},
        now=now,
    )


def _create_transitional_identity(bind: sa.Connection, client: Any, *, now: datetime) -> None:
    """lifecycle.create_transitional_identity: the identity ``*`` of the client, habilitated
    for the client's scopes on every API its organisation subscribes to."""
    organisation_id = client.organisation_id
    organisation = _organisation_code(bind, organisation_id)
    if _has_transitional_identity(bind, organisation_id, client.client_id):
        raise _Refused("identite_transitoire_existante", "Ce client a déjà une identité transitoire")
    habilitated_person = bind.execute(
        sa.select(_HABILITATION.c.id)
        .select_from(_HABILITATION.join(_AGENT, _AGENT.c.id == _HABILITATION.c.agent_id))
        .where(
            _AGENT.c.organisation_id == organisation_id,
            _AGENT.c.type == _HUMAIN,
            _HABILITATION.c.etat == _ACTIF,
        )
    ).first()
    if habilitated_person is not None:
        raise _Refused(
            "organisation_deja_habilitee", "L'organisation habilite déjà ses agents : pas d'identité transitoire"
        )
    subscriptions = bind.execute(
        sa.select(_SOUSCRIPTION.c.api, _SOUSCRIPTION.c.scopes).where(_SOUSCRIPTION.c.organisation_id == organisation_id)
    ).all()
    scoped = [(api, sorted(set(scopes) & set(client.scopes))) for api, scopes in subscriptions]
    scoped = [(api, scopes) for api, scopes in sorted(scoped) if scopes]
    if not scoped:
        raise _Refused("hors_souscription", "Aucune souscription de l'organisation ne couvre les scopes du client")
    agent_id = _insert(
        bind,
        _AGENT.insert().values(
            organisation_id=organisation_id,
            identifiant=_TRANSITION_IDENTIFIANT,
            type=_TECHNIQUE,
            client_id=client.client_id,
            sub=None,
            email=None,
            nom=f"Transition {client.client_id}",
            prenom="",
            siret=None,
            statut_emploi=None,
            etat=_ACTIF,
            etat_motif=None,
            etat_depuis=now,
            derniere_connexion=None,
            derniere_connexion_acr=None,
            derniere_activite=None,
            created_at=now,
            updated_at=now,
            version=0,
        ),
    )
    _audit(
        bind,
        "habilitations.identite_technique.creer",
        organisation=organisation,
        target=f"agent:{agent_id}",
        habilitation_id=None,
        details={"apres": _ACTIF, "type": _TECHNIQUE, "client_id": client.client_id},
        now=now,
    )
    for api, scopes in scoped:
        grant_id = uuid.uuid4().hex  # relais.core.tables.new_id
        bind.execute(
            _HABILITATION.insert().values(
                id=grant_id,
                agent_id=agent_id,
                api=api,
                scopes=scopes,
                finalite=_TRANSITION_FINALITE,
                justification=_TRANSITION_JUSTIFICATION,
                accordee_par=None,
                accordee_par_libelle=_ACTOR,
                accordee_le=now,
                date_fin=None,
                etat=_ACTIF,
                etat_motif=None,
                etat_depuis=now,
                updated_at=now,
                version=0,
            )
        )
        _audit(
            bind,
            "habilitations.habilitation.accorder",
            organisation=organisation,
            target=f"habilitation:{grant_id}",
            habilitation_id=grant_id,
            details={"apres": _ACTIF, "api": api, "scopes": scopes, "date_fin": None},
            now=now,
        )


def _insert(bind: sa.Connection, statement: sa.Insert) -> int:
    """Run the insert, return the id the database generated."""
    key = bind.execute(statement).inserted_primary_key
    assert key is not None
    return int(key[0])


def _organisation_code(bind: sa.Connection, organisation_id: int) -> str:
    code = bind.execute(sa.select(_ORGANISATION.c.code).where(_ORGANISATION.c.id == organisation_id)).scalar()
    if code is None:
        raise _Refused("organisation_inconnue", "Organisation inconnue")
    return str(code)


def _has_transitional_identity(bind: sa.Connection, organisation_id: int, client_id: str) -> bool:
    found = bind.execute(
        sa.select(_AGENT.c.id).where(
            _AGENT.c.organisation_id == organisation_id,
            _AGENT.c.client_id == client_id,
            _AGENT.c.identifiant == _TRANSITION_IDENTIFIANT,
        )
    ).first()
    return found is not None


# audit.journal.append_event, as it wrote a lifecycle event at this revision ----------------

# audit.journal.SEQUENCER_LOCK_KEY ("RELAISAU").
_SEQUENCER_LOCK_KEY = 0x52454C4149534155
# The lengths of the audit_event text columns this migration fills.
_LIMITS = {"channel": 16, "operation": 128, "organisation": 32, "habilitation_id": 32, "target": 128}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTENT_FIELDS = (
    "seq",
    "occurred_at",
    "request_id",
    "channel",
    "operation",
    "client_id",
    "organisation",
    "agent_nom",
    "agent_prenom",
    "agent_identifiant",
    "usager_id",
    "usager_nir_index",
    "decision",
    "reason",
    "http_status",
    "agent_id",
    "habilitation_id",
    "acr",
    "scopes",
    "purpose",
    "data_origin",
    "upstream_request_id",
    "target",
    "details",
)
_CONTENT_VERSION = 1
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _audit(
    bind: sa.Connection,
    operation: str,
    *,
    organisation: str,
    target: str,
    habilitation_id: str | None,
    details: dict[str, Any],
    now: datetime,
) -> None:
    """One ``allowed`` event of the command line (lifecycle._audit, then journal.append_event)."""
    request_id = f"{_CHANNEL}-{uuid.uuid4().hex}"
    texts: dict[str, str | None] = {
        "channel": _CHANNEL,
        "operation": operation,
        "organisation": organisation,
        "habilitation_id": habilitation_id,
        "target": target,
    }
    event: dict[str, Any] = dict.fromkeys(_CONTENT_FIELDS)
    event.update({name: _clean(name, value) for name, value in texts.items()})
    event.update(
        seq=_next_seq(bind),
        occurred_at=now,
        request_id=_escape_text(request_id)[:64],
        decision="allowed",
        http_status=200,
        agent_id=None,
        details=_escape_any({"acteur": _ACTOR, **details}),
    )
    leaf = _event_leaf_hash(event)
    bind.execute(_AUDIT_EVENT.insert().values(**event, prev_hash="", hash=leaf.hex()))


def _next_seq(bind: sa.Connection) -> int:
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": _SEQUENCER_LOCK_KEY})
        return int(bind.execute(sa.text("SELECT nextval('audit_event_seq_seq')")).scalar_one())
    return int(bind.execute(sa.select(sa.func.coalesce(sa.func.max(_AUDIT_EVENT.c.seq), 0))).scalar_one() or 0) + 1


def _escape_text(value: str) -> str:
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", value)


def _escape_any(value: Any) -> Any:
    if isinstance(value, str):
        return _escape_text(value)
    if isinstance(value, Mapping):
        return {_escape_text(str(key)): _escape_any(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_escape_any(item) for item in value]
    return value


def _clean(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    return _escape_text(value)[: _LIMITS[name]]


def _timestamp_text(value: datetime) -> str:
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def _event_leaf_hash(event: Mapping[str, Any]) -> bytes:
    """RFC 6962 leaf hash (SHA-256 of 0x00 and the canonical JSON of the event's content)."""
    content = {name: event[name] for name in _CONTENT_FIELDS}
    occurred_at = content["occurred_at"]
    if isinstance(occurred_at, datetime):
        content["occurred_at"] = _timestamp_text(occurred_at)
    document = {**content, "v": _CONTENT_VERSION}
    return hashlib.sha256(b"\x00" + _ENCODER.encode(document).encode()).digest()
