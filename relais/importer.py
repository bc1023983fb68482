"""``relais import``: load organisations, clients, usagers and their parcours from a JSON Lines file.

Each line is ``{"type": ..., "data": {...}}`` as described by ``specs/import-v1.schema.json``:
``organisation``, ``client`` and ``usager`` records are upserted by natural key (organisation
code, client_id, numéro France Travail); ``orientation``, ``rendez-vous``,
``contrat-engagement`` and ``manquement`` records designate their usager by numéro France
Travail and are recorded through the reference store's domain rules, exactly as the API and
the producer feed record them, so the activities they imply (ACT382, ACT380, GLI100) are
opened and closed alike. Identifiers given in the file (a rendez-vous ``id``, an
``identifiantConsequenceSanction``) are kept. Importing the same file twice changes nothing.

``subscription``, ``agent``, ``designation`` and ``habilitation`` records load an
organisation's existing accounts at once. Agents are keyed by their ``pa-identifiant-agent``
value within their organisation (and client, for a technical identity). They go through
``habilitations.lifecycle`` acting as the hub operator, so the same rules hold (RGC
eligibility, subscriptions bound grants) and every change is audited on the ``cli`` channel.

The whole file is one transaction: the first bad line rejects everything. Error messages
name the line and the problem, never the value (a NIR, a name, a secret).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from sqlmodel import Session, SQLModel, select

from habilitations import lifecycle
from habilitations.clients import ClientRegistryError, upsert_client
from habilitations.lifecycle import LifecycleRefused
from habilitations.models import (
    ACTIF,
    HUMAIN,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    TECHNIQUE,
    Agent,
    Habilitation,
    Souscription,
)
from habilitations.roles import Principal
from parcours import (
    alimentation as alimentation_domain,
)
from parcours import (
    contrat as contrat_domain,
)
from parcours import (
    orientation as orientation_domain,
)
from parcours import (
    rendez_vous as rendez_vous_domain,
)
from parcours.alimentation import Outcome, appliquer, nir_reason
from parcours.perimeter import organisation_for
from parcours.ports import Refused
from parcours.tables import ContratEngagement, Orientation, RendezVous, Usager, UsagerOrganisation
from relais.core.db import Database
from relais.core.keys import KeySet
from relais.core.nir import NirError, normalize_nir
from relais.core.tables import Client, Organisation
from relais.core.text import champ_invalide
from specs import SPECS_DIR

SCHEMA_PATH = SPECS_DIR / "import-v1.schema.json"
RECORD_TYPES = (
    "organisation",
    "client",
    "usager",
    "orientation",
    "rendez-vous",
    "contrat-engagement",
    "manquement",
    "subscription",
    "agent",
    "designation",
    "habilitation",
)
_HABILITATION_RECORDS = ("subscription", "agent", "designation", "habilitation")
_HABILITATION_KINDS = ("souscriptions", "agents", "designations", "habilitations")
# Who the domain rules record as the agent of what an import creates (``agent_creation``...).
IMPORT_AGENT = "IMPORT"
# Columns that say when or how often a row was written, not what it holds.
_BOOKKEEPING = frozenset({"version", "created_at", "updated_at"})
# Called once per line read, so that a progress bar can advance.
ProgressCallback = Callable[[int], None]


class DatasetError(Exception):
    """The file is rejected. ``str()`` is the French message, without any personal data."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"ligne {line} : {reason}")
        self.line = line
        self.reason = reason


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


# (key in as_dict, French label, feminine) per record type, in report order.
_REPORTED = (
    ("organisations", "organisations", True),
    ("clients", "clients", False),
    ("usagers", "usagers", False),
    ("orientations", "orientations", True),
    ("rendez_vous", "rendez-vous", False),
    ("contrats_engagement", "contrats d'engagement", False),
    ("manquements", "manquements", False),
    ("souscriptions", "souscriptions", True),
    ("agents", "agents", False),
    ("designations", "désignations", True),
    ("habilitations", "habilitations", True),
)


@dataclass
class ImportReport:
    organisations: Counts = field(default_factory=Counts)
    clients: Counts = field(default_factory=Counts)
    usagers: Counts = field(default_factory=Counts)
    orientations: Counts = field(default_factory=Counts)
    rendez_vous: Counts = field(default_factory=Counts)
    contrats_engagement: Counts = field(default_factory=Counts)
    manquements: Counts = field(default_factory=Counts)
    souscriptions: Counts = field(default_factory=Counts)
    agents: Counts = field(default_factory=Counts)
    designations: Counts = field(default_factory=Counts)
    habilitations: Counts = field(default_factory=Counts)

    @property
    def changed(self) -> bool:
        return any(counts.created or counts.updated for counts in self._by_type().values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            kind: {"created": c.created, "updated": c.updated, "unchanged": c.unchanged}
            for kind, c in self._by_type().items()
        }

    def summary_lines(self) -> list[str]:
        """One French line per type, e.g. « usagers : 0 créés, 0 modifiés, 300 inchangés »."""
        lines = []
        for key, label, feminine in _REPORTED:
            if key not in self._by_type():
                continue
            counts = getattr(self, key)
            suffix = "es" if feminine else "s"
            lines.append(
                f"{label} : {counts.created} créé{suffix}, {counts.updated} modifié{suffix}, "
                f"{counts.unchanged} inchangé{suffix}"
            )
        return lines

    def _by_type(self) -> dict[str, Counts]:
        # Habilitations kinds are reported only when the file has some, so that the report
        # of a file without them reads as it always did.
        return {
            key: getattr(self, key)
            for key, _, _ in _REPORTED
            if key not in _HABILITATION_KINDS or getattr(self, key).total
        }


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def import_file(
    database: Database,
    keys: KeySet,
    path: Path,
    *,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import a JSON Lines file in one transaction; raise :class:`DatasetError` on the first bad line.

    ``now`` is the time the domain rules see (activities' creation and due dates...).
    """
    with path.open("rb") as handle:
        return _import(database, keys, _parse_lines(handle), progress, now)


def import_records(
    database: Database,
    keys: KeySet,
    records: Iterable[Mapping[str, Any]],
    *,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import records already parsed (``relais demo``); record N is reported as line N."""
    return _import(database, keys, enumerate(records, start=1), progress, now)


def _parse_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed record or None for a blank line)."""
    for number, raw in enumerate(lines, start=1):
        try:
            # Decoding line by line gives the exact line of an encoding error; utf-8-sig
            # tolerates the byte order mark some editors write on the first line.
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DatasetError(number, "encodage invalide (UTF-8 attendu)") from None
        if not line.strip():
            yield number, None
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            # The decoder's message only gives a position, never the content.
            raise DatasetError(number, f"JSON invalide (colonne {exc.colno})") from None


def _import(
    database: Database,
    keys: KeySet,
    records: Iterable[tuple[int, Any]],
    progress: ProgressCallback | None,
    now: datetime | None,
) -> ImportReport:
    with database.transaction() as session:
        importer = _Importer(session, keys, now or datetime.now(UTC))
        for number, record in records:
            if record is not None:
                importer.import_record(number, record)
            if progress is not None:
                progress(1)
        return importer.report


class _Importer:
    def __init__(self, session: Session, keys: KeySet, now: datetime) -> None:
        self.session = session
        self.keys = keys
        self.now = now
        self.report = ImportReport()
        self._organisation_ids: dict[str, int] = {}
        # Natural keys seen in this file, with their line, to reject duplicates.
        self._seen: dict[tuple[str, str], int] = {}

    def import_record(self, line: int, record: Any) -> None:
        _validate(line, record)
        kind, data = record["type"], record["data"]
        champ = champ_invalide(data, "data")
        if champ is not None:
            raise DatasetError(line, f"champ {champ} : caractère non autorisé (nul ou UTF-16 isolé)")
        try:
            self._dispatch(line, kind, data)
        except Refused as refused:
            # The domain rules' messages name fields, never values.
            raise DatasetError(line, refused.message) from None

    def _dispatch(self, line: int, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "organisation":
            self._note_key(line, kind, data["code"], f"organisation « {data['code']} » déjà définie")
            self.report.organisations.add(self._organisation(data))
        elif kind == "client":
            self._note_key(line, kind, data["client_id"], f"client « {data['client_id']} » déjà défini")
            self.report.clients.add(self._client(line, data))
        elif kind == "usager":
            # The numéro identifies a person: it is not repeated in the message.
            self._note_key(line, kind, data["numeroFranceTravail"], "numéro France Travail déjà présent")
            self.report.usagers.add(self._usager(line, data))
        elif kind == "orientation":
            self.report.orientations.add(self._orientation(line, data))
        elif kind == "rendez-vous":
            self._note_key(line, kind, data["id"], f"rendez-vous « {data['id']} » déjà défini")
            self.report.rendez_vous.add(self._rendez_vous(line, data))
        elif kind == "contrat-engagement":
            self._note_key(line, kind, data["numeroFranceTravail"], "contrat d'engagement de cet usager déjà défini")
            self.report.contrats_engagement.add(self._contrat_engagement(line, data))
        elif kind in _HABILITATION_RECORDS:
            self._habilitations_record(line, kind, data)
        else:
            for consequence in data["consequences"]:
                identifiant = consequence["identifiantConsequenceSanction"]
                self._note_key(line, "consequence", identifiant, f"conséquence « {identifiant} » déjà définie")
            self.report.manquements.add(self._manquement(line, data))

    def _habilitations_record(self, line: int, kind: str, data: Mapping[str, Any]) -> None:
        organisation_id = self._organisation_id(line, data["organisation"])
        try:
            if kind == "subscription":
                self._note_key(line, kind, f"{data['organisation']}/{data['api']}", "souscription déjà définie")
                self.report.souscriptions.add(_import_subscription(self.session, organisation_id, data, self.now))
            elif kind == "agent":
                key = f"{data['organisation']}/{data.get('client_id', '')}/{data['identifiant']}"
                self._note_key(line, kind, key, "agent déjà défini")
                self.report.agents.add(_import_agent(self.session, organisation_id, data, self.now))
            elif kind == "designation":
                key = f"{data['organisation']}/{data['agent']}/{data['role']}"
                self._note_key(line, kind, key, "désignation déjà définie")
                self.report.designations.add(_import_designation(self.session, organisation_id, data, self.now))
            else:
                key = f"{data['organisation']}/{data.get('client_id', '')}/{data['agent']}/{data['api']}"
                self._note_key(line, kind, key, "habilitation déjà définie")
                self.report.habilitations.add(_import_habilitation(self.session, organisation_id, data, self.now))
        except LifecycleRefused as refused:
            # Lifecycle messages name rules and fields, never values.
            raise DatasetError(line, refused.message) from None

    def _note_key(self, line: int, kind: str, key: str, message: str) -> None:
        first = self._seen.setdefault((kind, key), line)
        if first != line:
            raise DatasetError(line, f"{message} ligne {first}")

    # Organisations ------------------------------------------------------------------------

    def _organisation(self, data: Mapping[str, Any]) -> Outcome:
        wanted = {
            "type": data["type"],
            "libelle": data["libelle"],
            "territoire": list(data["territoire"]),
            "code_aurore": data.get("code_aurore"),
            "code_safir": data.get("code_safir"),
        }
        existing = self.session.exec(select(Organisation).where(Organisation.code == data["code"])).first()
        if existing is None:
            organisation = Organisation(code=data["code"], created_at=self.now, updated_at=self.now, **wanted)
            self.session.add(organisation)
            self.session.flush()
            outcome: Outcome = "created"
        else:
            organisation = existing
            outcome = appliquer(organisation, wanted, now=self.now)
            if outcome == "updated":
                self.session.add(organisation)
                self.session.flush()
        assert organisation.id is not None
        self._organisation_ids[organisation.code] = organisation.id
        return outcome

    def _organisation_id(self, line: int, code: str) -> int:
        if code not in self._organisation_ids:
            organisation = self.session.exec(select(Organisation).where(Organisation.code == code)).first()
            if organisation is None or organisation.id is None:
                raise DatasetError(line, f"organisation inconnue « {code} » (à déclarer plus haut dans le fichier)")
            self._organisation_ids[code] = organisation.id
        return self._organisation_ids[code]

    # Clients --------------------------------------------------------------------------------

    def _client(self, line: int, data: Mapping[str, Any]) -> Outcome:
        # Checked here first so that the message is the importer's, with its hint.
        self._organisation_id(line, data["organisation"])
        try:
            _, outcome = upsert_client(
                self.session,
                client_id=data["client_id"],
                organisation_code=data["organisation"],
                scopes=data["scopes"],
                secret=data["client_secret"],
                enabled=data.get("enabled", True),
                rate_limit_per_second=data.get("rate_limit_per_second"),
            )
        except ClientRegistryError as exc:
            raise DatasetError(line, str(exc)) from None
        return outcome

    # Usagers --------------------------------------------------------------------------------

    def _usager(self, line: int, data: Mapping[str, Any]) -> Outcome:
        organisation_ids = {self._organisation_id(line, code) for code in data.get("organisations", [])}
        # Identity and NIR: the producer feed's rule, so both check and encrypt alike.
        usager, outcome = alimentation_domain.enregistrer_usager(
            self.session, self.keys, data["numeroFranceTravail"], data, now=self.now
        )
        # The status as given, with the contrat d'engagement rules of a cessation or a return.
        statut = alimentation_domain.appliquer_contrat(self.session, usager, data.get("contrat"), now=self.now)
        if self._attach(usager.id, organisation_ids) and statut == "unchanged":
            usager.updated_at = self.now
            self.session.add(usager)
            statut = "updated"
        return "updated" if outcome == "unchanged" and statut == "updated" else outcome

    def _attach(self, usager_id: str, organisation_ids: set[int]) -> bool:
        """Make the usager's explicit attachments exactly ``organisation_ids``; True if they changed."""
        rows = self.session.exec(select(UsagerOrganisation).where(UsagerOrganisation.usager_id == usager_id)).all()
        current = {row.organisation_id for row in rows}
        if current == organisation_ids:
            return False
        for row in rows:
            if row.organisation_id not in organisation_ids:
                self.session.delete(row)
        for organisation_id in sorted(organisation_ids - current):
            self.session.add(UsagerOrganisation(usager_id=usager_id, organisation_id=organisation_id))
        self.session.flush()
        return True

    def _usager_of(self, line: int, data: Mapping[str, Any]) -> Usager:
        usager = alimentation_domain.usager_par_numero(self.session, data["numeroFranceTravail"])
        if usager is None:
            # The numéro identifies a person: it is not repeated in the message.
            raise DatasetError(
                line, "usager inconnu pour ce numéro France Travail (à déclarer plus haut dans le fichier)"
            )
        return usager

    # Orientations ---------------------------------------------------------------------------

    def _orientation(self, line: int, data: Mapping[str, Any]) -> Outcome:
        """EN_ATTENTE or BROUILLON: preconiser. OUVERT with a decision: preconiser, then decider.
        OUVERT without one: orienter (the forced orientation). See the schema's description."""
        usager = self._usager_of(line, data)
        preconisation = {
            "parcours": data["parcours"],
            "organisme": data["organisme"],
            "structure": data.get("structure"),
            "origine": data.get("origine"),
            "criteres_orientation": data.get("criteres_orientation"),
        }
        etat = data.get("etat") or orientation_domain.EN_ATTENTE
        agent = data.get("agent_creation") or IMPORT_AGENT
        existing = _same_orientation(orientation_domain.orientations(self.session, usager.id), preconisation)
        if existing is not None:
            if etat != orientation_domain.OUVERT or existing.etat != orientation_domain.EN_ATTENTE:
                # Already recorded; what happened to it since is the API's business.
                return "unchanged"
            self._ouvrir(usager, preconisation, data, agent)
            return "updated"
        if etat == orientation_domain.OUVERT:
            if data.get("decision") is not None:
                orientation_domain.preconiser(self.session, usager, dict(preconisation), now=self.now, agent=agent)
            self._ouvrir(usager, preconisation, data, agent)
        else:
            payload = {**preconisation, "etat": etat}
            orientation_domain.preconiser(self.session, usager, payload, now=self.now, agent=agent)
        return "created"

    def _ouvrir(self, usager: Usager, preconisation: Mapping[str, Any], data: Mapping[str, Any], agent: str) -> None:
        decision = data.get("decision")
        if decision is not None:
            orientation_domain.decider(
                self.session, usager, dict(decision), now=self.now, agent=decision.get("agent_decision") or agent
            )
        else:
            forced = {**preconisation, "structure_decision": data.get("structure_decision")}
            orientation_domain.orienter(self.session, usager, forced, now=self.now, agent=agent)

    # Rendez-vous ----------------------------------------------------------------------------

    def _rendez_vous(self, line: int, data: Mapping[str, Any]) -> Outcome:
        usager = self._usager_of(line, data)
        organisation = self._rendez_vous_organisation(line, usager, data)
        payload = {key: value for key, value in data.items() if key not in ("numeroFranceTravail", "organisation")}
        existing = self.session.get(RendezVous, data["id"])
        if existing is not None and existing.usager_id != usager.id:
            raise DatasetError(line, f"rendez-vous « {data['id']} » déjà enregistré pour un autre usager")
        return self._recorded(
            existing,
            lambda: rendez_vous_domain.enregistrer_rendez_vous(
                self.session, usager, organisation, payload, now=self.now
            ),
        )

    def _rendez_vous_organisation(self, line: int, usager: Usager, data: Mapping[str, Any]) -> Organisation:
        organisation: Organisation | None
        if data.get("organisation"):
            organisation = self.session.get(Organisation, self._organisation_id(line, data["organisation"]))
        elif data.get("organisme"):
            organisation = organisation_for(self.session, usager, data["organisme"]["code"])
        else:
            raise DatasetError(line, "champ obligatoire absent : data.organisation ou data.organisme")
        if organisation is None:
            raise DatasetError(
                line, "aucune organisation de ce type ne couvre le département de l'usager : précisez data.organisation"
            )
        return organisation

    # Contrats d'engagement ------------------------------------------------------------------

    def _contrat_engagement(self, line: int, data: Mapping[str, Any]) -> Outcome:
        usager = self._usager_of(line, data)
        payload = {key: value for key, value in data.items() if key != "numeroFranceTravail"}
        existing = self.session.exec(select(ContratEngagement).where(ContratEngagement.usager_id == usager.id)).first()
        return self._recorded(
            existing, lambda: contrat_domain.enregistrer_contrat(self.session, usager.id, payload, now=self.now)
        )

    # Manquements ----------------------------------------------------------------------------

    def _manquement(self, line: int, data: Mapping[str, Any]) -> Outcome:
        usager = self._usager_of(line, data)
        results = alimentation_domain.ouvrir_manquement(self.session, usager, data, now=self.now, agent=IMPORT_AGENT)
        return "created" if any(outcome == "created" for _, outcome in results) else "unchanged"

    # Helpers ----------------------------------------------------------------------------------

    def _recorded(self, existing: SQLModel | None, record: Callable[[], SQLModel]) -> Outcome:
        """Run a domain rule that records a row as given; undo it when it changed nothing.

        Such a rule bumps the row's version even when it writes the same values again: the
        savepoint keeps a re-import from touching anything (activities included) when the
        row already holds what the file says.
        """
        before = _content(existing) if existing is not None else None
        savepoint = self.session.begin_nested()
        row = record()
        if before is not None and _content(row) == before:
            savepoint.rollback()
            return "unchanged"
        savepoint.commit()
        return "created" if before is None else "updated"


# Habilitations records ----------------------------------------------------------------------
#
# The import acts as the hub operator: the lifecycle functions check the same rules as for the
# admin API and write one audit event per change (none when a record is already as given).

_OPERATOR = Principal.command_line()


def _import_subscription(session: Session, organisation_id: int, data: Mapping[str, Any], now: datetime) -> Outcome:
    existing = session.exec(
        select(Souscription).where(Souscription.organisation_id == organisation_id, Souscription.api == data["api"])
    ).first()
    before = (list(existing.scopes), existing.reference, existing.demandee_le) if existing is not None else None
    subscription = lifecycle.set_subscription(
        session,
        _OPERATOR,
        organisation_id=organisation_id,
        api=data["api"],
        scopes=data["scopes"],
        reference=data.get("reference"),
        demandee_le=_date(data.get("demandee_le")),
        now=now,
    )
    if before is None:
        return "created"
    after = (list(subscription.scopes), subscription.reference, subscription.demandee_le)
    return "unchanged" if after == before else "updated"


def _import_agent(session: Session, organisation_id: int, data: Mapping[str, Any], now: datetime) -> Outcome:
    technical = data.get("type", HUMAIN) == TECHNIQUE
    client_id = data.get("client_id", "") if technical else ""
    if technical != bool(data.get("client_id")):
        raise LifecycleRefused("client_id", "champ client_id : requis pour une identité technique, et pour elle seule")
    existing = _imported_agent(session, organisation_id, client_id, data["identifiant"])
    if technical:
        if existing is None:
            client = session.exec(select(Client).where(Client.client_id == client_id)).first()
            if client is None or client.organisation_id != organisation_id:
                raise LifecycleRefused("client_inconnu", "champ client_id : client inconnu dans cette organisation")
            lifecycle.create_technical_identity(
                session, _OPERATOR, client_id=client_id, nom=data["nom"], identifiant=data["identifiant"], now=now
            )
            return "created"
        changes = {"nom": data["nom"]}
    else:
        fields = ("nom", "prenom", "email", "sub", "siret", "statut_emploi")
        if existing is None:
            lifecycle.create_agent(
                session,
                _OPERATOR,
                organisation_id=organisation_id,
                identifiant=data["identifiant"],
                **{name: data[name] for name in fields if name in data},
                now=now,
            )
            return "created"
        changes = {name: data[name] for name in fields if name in data}
    assert existing.id is not None
    version = existing.version
    lifecycle.update_agent(session, _OPERATOR, existing.id, changes=changes, now=now)
    return "unchanged" if existing.version == version else "updated"


def _import_designation(session: Session, organisation_id: int, data: Mapping[str, Any], now: datetime) -> Outcome:
    agent = _imported_agent(session, organisation_id, "", data["agent"])
    if agent is None or agent.id is None:
        raise LifecycleRefused("agent_inconnu", "champ agent : agent inconnu (à déclarer plus haut dans le fichier)")
    acte = _date(data.get("acte_engagement_le"))
    for current in lifecycle.current_designations(session, organisation_id, now):
        if current.agent_id == agent.id and current.role == data["role"]:
            if current.acte_engagement_le == acte or data["role"] not in (RGC_TITULAIRE, RGC_SUPPLEANT):
                return "unchanged"
            assert current.id is not None
            lifecycle.end_designation(session, _OPERATOR, current.id, motif="import", now=now)
            lifecycle.designate(
                session,
                _OPERATOR,
                organisation_id=organisation_id,
                agent_id=agent.id,
                role=data["role"],
                acte_engagement_le=acte,
                now=now,
            )
            return "updated"
    lifecycle.designate(
        session,
        _OPERATOR,
        organisation_id=organisation_id,
        agent_id=agent.id,
        role=data["role"],
        acte_engagement_le=acte,
        now=now,
    )
    return "created"


def _import_habilitation(session: Session, organisation_id: int, data: Mapping[str, Any], now: datetime) -> Outcome:
    agent = _imported_agent(session, organisation_id, data.get("client_id", ""), data["agent"])
    if agent is None or agent.id is None:
        raise LifecycleRefused("agent_inconnu", "champ agent : agent inconnu (à déclarer plus haut dans le fichier)")
    wanted = {
        "scopes": list(dict.fromkeys(data["scopes"])),
        "finalite": data["finalite"],
        "justification": data.get("justification"),
        "date_fin": _date(data.get("date_fin")),
    }
    existing = session.exec(
        select(Habilitation).where(
            Habilitation.agent_id == agent.id, Habilitation.api == data["api"], Habilitation.etat == ACTIF
        )
    ).first()
    if existing is not None:
        if all(getattr(existing, name) == value for name, value in wanted.items()):
            return "unchanged"
        lifecycle.revoke_habilitation(session, _OPERATOR, existing.id, motif="import", now=now)
    lifecycle.grant_habilitation(session, _OPERATOR, agent_id=agent.id, api=data["api"], now=now, **wanted)
    return "created" if existing is None else "updated"


def _imported_agent(session: Session, organisation_id: int, client_id: str, identifiant: str) -> Agent | None:
    return session.exec(
        select(Agent).where(
            Agent.organisation_id == organisation_id, Agent.client_id == client_id, Agent.identifiant == identifiant
        )
    ).first()


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


def _content(row: SQLModel) -> dict[str, Any]:
    return {name: value for name, value in row.model_dump().items() if name not in _BOOKKEEPING}


def _same_orientation(candidates: Iterable[Orientation], preconisation: Mapping[str, Any]) -> Orientation | None:
    """The usager's orientation (most recent first) that was preconised as ``preconisation`` says."""
    wanted = (
        preconisation.get("origine"),
        preconisation["parcours"],
        preconisation["organisme"],
        _structure_key(preconisation.get("structure")),
    )
    for orientation in candidates:
        # A refusal replaces parcours and organisme with the counter-proposal; the decision
        # keeps what was preconised.
        decision = orientation.decision or {}
        preconised = (
            orientation.origine,
            decision.get("parcours_preconise", orientation.parcours),
            decision.get("organisme_preconise", orientation.organisme),
            _structure_key(decision["structure"] if "structure" in decision else orientation.structure),
        )
        if preconised == wanted:
            return orientation
    return None


def _structure_key(structure: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if not structure:
        return None
    key = tuple(structure.get(name) or None for name in ("code_aurore", "code_safir", "libelle_structure"))
    return key if any(key) else None


# Schema -----------------------------------------------------------------------------------


@cache
def _schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def _validator(kind: str | None = None) -> Draft202012Validator:
    """The whole-line validator, or (``kind``) one for a record's ``data`` alone.

    The whole-line schema chooses the record type with a ``oneOf``, whose errors say little;
    validating ``data`` against its own definition yields the precise problem to report.
    """
    schema = _schema()
    if kind is not None:
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _validate(line: int, record: Any) -> None:
    if _validator().is_valid(record):
        return
    _check_envelope(line, record)
    error = best_match(_validator(record["type"]).iter_errors(record["data"]))
    if error is None:
        raise DatasetError(line, "enregistrement non conforme au schéma")
    raise DatasetError(line, _describe(error, prefix="data"))


def _check_envelope(line: int, record: Any) -> None:
    """The ``{"type", "data"}`` wrapper, checked by hand for messages clearer than ``oneOf``'s."""
    if not isinstance(record, dict):
        raise DatasetError(line, 'chaque ligne doit être un objet JSON {"type": ..., "data": {...}}')
    for name in ("type", "data"):
        if name not in record:
            raise DatasetError(line, f"champ obligatoire absent : {name}")
    extra = sorted(set(record) - {"type", "data"})
    if extra:
        raise DatasetError(line, f"champ inconnu : {extra[0][:64]}")
    if record["type"] not in RECORD_TYPES:
        raise DatasetError(line, f"champ type : valeur non autorisée (valeurs admises : {', '.join(RECORD_TYPES)})")
    if not isinstance(record["data"], dict):
        raise DatasetError(line, "champ data : type incorrect (attendu : object)")


def _describe(error: ValidationError, prefix: str = "") -> str:
    """A French reason built from the schema side of the error only, never from the value."""
    path = _path(prefix, error.absolute_path)
    where = f"champ {path}" if path else "enregistrement"
    validator, expected = error.validator, error.validator_value
    if validator == "required" and isinstance(error.instance, dict):
        missing = next((name for name in expected if name not in error.instance), "?")
        return f"champ obligatoire absent : {_path(path, [missing])}"
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unknown = sorted(name for name in error.instance if name not in known)
        return f"champ inconnu : {_path(path, [unknown[0][:64]])}" if unknown else f"{where} : champ inconnu"
    if path.endswith(".nir") and isinstance(error.instance, str):
        try:
            normalize_nir(error.instance)
        except NirError as exc:
            return nir_reason(exc)
        return "NIR invalide (format)"
    return f"{where} : {_REASONS.get(str(validator), 'valeur non conforme au schéma')}{_allowed(error)}"


_REASONS = {
    "type": "type incorrect",
    "enum": "valeur non autorisée",
    "const": "valeur non autorisée",
    "pattern": "format invalide",
    "format": "format invalide",
    "minLength": "texte trop court",
    "maxLength": "texte trop long",
    "minItems": "liste trop courte",
    "uniqueItems": "liste avec des éléments en double",
    "minimum": "valeur trop petite",
    "oneOf": "valeur non conforme",
}


def _allowed(error: ValidationError) -> str:
    """The schema's expectation (allowed values, type), which is never personal data."""
    if error.validator == "enum":
        return " (valeurs admises : " + ", ".join(str(value) for value in error.validator_value) + ")"
    if error.validator == "type":
        expected = error.validator_value
        names = expected if isinstance(expected, list) else [expected]
        return " (attendu : " + " ou ".join(str(name) for name in names) + ")"
    return ""


def _path(prefix: str, parts: Iterable[Any]) -> str:
    path = prefix
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}" if path else str(part)
    return path
