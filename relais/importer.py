"""``relais import``: load organisations, clients and usagers from a JSON Lines file.

Each line is ``{"type": "organisation" | "client" | "usager", "data": {...}}`` as described
by ``specs/import-v1.schema.json``. Records are upserted by natural key (organisation code,
client_id, numéro France Travail), so importing the same file twice changes nothing.

The whole file is one transaction: the first bad line rejects everything. Error messages
name the line and the problem, never the value (a NIR, a name, a secret).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from sqlmodel import Session, select

from habilitations.clients import ClientRegistryError, upsert_client
from relais.db import Database
from relais.keys import KeySet
from relais.models import Organisation, Usager, UsagerOrganisation, utcnow
from relais.nir import NirError, is_valid_iso_date, normalize_nir
from relais.personal_data import blind_index, encrypt_field
from specs import SPECS_DIR

SCHEMA_PATH = SPECS_DIR / "import-v1.schema.json"
NIR_CONTEXT = "usager.nir"
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
RECORD_TYPES = ("organisation", "client", "usager")

Outcome = Literal["created", "updated", "unchanged"]
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


@dataclass
class ImportReport:
    organisations: Counts = field(default_factory=Counts)
    clients: Counts = field(default_factory=Counts)
    usagers: Counts = field(default_factory=Counts)

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
        for kind, counts in self._by_type().items():
            suffix = "es" if kind == "organisations" else "s"
            lines.append(
                f"{kind} : {counts.created} créé{suffix}, {counts.updated} modifié{suffix}, "
                f"{counts.unchanged} inchangé{suffix}"
            )
        return lines

    def _by_type(self) -> dict[str, Counts]:
        return {"organisations": self.organisations, "clients": self.clients, "usagers": self.usagers}


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def import_file(
    database: Database, keys: KeySet, path: Path, *, progress: ProgressCallback | None = None
) -> ImportReport:
    """Import a JSON Lines file in one transaction; raise :class:`DatasetError` on the first bad line."""
    with path.open("rb") as handle:
        return _import(database, keys, _parse_lines(handle), progress)


def import_records(
    database: Database,
    keys: KeySet,
    records: Iterable[Mapping[str, Any]],
    *,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import records already parsed (``relais demo``); record N is reported as line N."""
    return _import(database, keys, enumerate(records, start=1), progress)


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
) -> ImportReport:
    with database.transaction() as session:
        importer = _Importer(session, keys)
        for number, record in records:
            if record is not None:
                importer.import_record(number, record)
            if progress is not None:
                progress(1)
        return importer.report


class _Importer:
    def __init__(self, session: Session, keys: KeySet) -> None:
        self.session = session
        self.keys = keys
        self.report = ImportReport()
        self._organisation_ids: dict[str, int] = {}
        # Natural keys seen in this file, with their line, to reject duplicates.
        self._seen: dict[tuple[str, str], int] = {}

    def import_record(self, line: int, record: Any) -> None:
        _validate(line, record)
        kind, data = record["type"], record["data"]
        if kind == "organisation":
            self._note_key(line, kind, data["code"], f"organisation « {data['code']} » déjà définie")
            self.report.organisations.add(self._organisation(data))
        elif kind == "client":
            self._note_key(line, kind, data["client_id"], f"client « {data['client_id']} » déjà défini")
            self.report.clients.add(self._client(line, data))
        else:
            # The numéro identifies a person: it is not repeated in the message.
            self._note_key(line, kind, data["numeroFranceTravail"], "numéro France Travail déjà présent")
            self.report.usagers.add(self._usager(line, data))

    def _note_key(self, line: int, kind: str, key: str, message: str) -> None:
        first = self._seen.setdefault((kind, key), line)
        if first != line:
            raise DatasetError(line, f"{message} ligne {first}")

    # Organisations ------------------------------------------------------------------------

    def _organisation(self, data: Mapping[str, Any]) -> Outcome:
        wanted = {"type": data["type"], "libelle": data["libelle"], "territoire": list(data["territoire"])}
        existing = self.session.exec(select(Organisation).where(Organisation.code == data["code"])).first()
        if existing is None:
            organisation = Organisation(code=data["code"], **wanted)
            self.session.add(organisation)
            self.session.flush()
            outcome: Outcome = "created"
        else:
            organisation = existing
            outcome = _apply(organisation, wanted)
            if outcome == "updated":
                self.session.add(organisation)
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
        etat_civil = data["etatCivil"]
        nir13 = _nir13(line, etat_civil.get("nir"))
        wanted = {
            "nir_index": blind_index(self.keys, nir13),
            "date_naissance": _birth_date(line, etat_civil["dateNaissance"]),
            "civilite": etat_civil.get("civilite"),
            "nom": etat_civil["nom"],
            "prenom": etat_civil["prenom"],
            "nom_correspondance": etat_civil.get("nomCorrespondance"),
            "prenom_correspondance": etat_civil.get("prenomCorrespondance"),
            "top_identite_certifiee": data.get("topIdentiteCertifiee", "N"),
            "adresses": list(data.get("adresses", [])),
            "emails": list(data.get("emails", [])),
            "telephones": list(data.get("telephones", [])),
            "contrat": data.get("contrat"),
        }
        organisation_ids = {self._organisation_id(line, code) for code in data.get("organisations", [])}
        usager = self.session.exec(
            select(Usager).where(Usager.numero_france_travail == data["numeroFranceTravail"])
        ).first()
        if usager is None:
            usager = Usager(
                numero_france_travail=data["numeroFranceTravail"],
                nir_chiffre=encrypt_field(self.keys, nir13, context=NIR_CONTEXT),
                **wanted,
            )
            self.session.add(usager)
            if organisation_ids:
                # The attachments reference the usager row, which must exist first.
                self.session.flush()
                self._attach(usager.id, organisation_ids)
            return "created"
        # The ciphertext is randomised: compare blind indexes, re-encrypt only a changed NIR.
        if usager.nir_index != wanted["nir_index"]:
            usager.nir_chiffre = encrypt_field(self.keys, nir13, context=NIR_CONTEXT)
        outcome = _apply(usager, wanted)
        if self._attach(usager.id, organisation_ids):
            outcome = "updated"
            usager.updated_at = utcnow()
        if outcome == "updated":
            self.session.add(usager)
        return outcome

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


def _apply(row: Any, wanted: Mapping[str, Any]) -> Outcome:
    """Set the fields that differ; stamp ``updated_at`` when any did."""
    changed = False
    for name, value in wanted.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if not changed:
        return "unchanged"
    row.updated_at = utcnow()
    return "updated"


def _nir13(line: int, raw: Any) -> str:
    if not raw:
        # The schema leaves it optional, but the reference store finds usagers by NIR.
        raise DatasetError(line, "NIR obligatoire (champ data.etatCivil.nir)")
    try:
        return normalize_nir(raw)
    except NirError as exc:
        raise DatasetError(line, _nir_reason(exc)) from None


def _nir_reason(exc: NirError) -> str:
    # normalize_nir says « NIR invalide : clé de contrôle incorrecte »; the importer's style
    # is « NIR invalide (clé de contrôle incorrecte) ».
    message = str(exc)
    prefix = "NIR invalide : "
    return f"NIR invalide ({message.removeprefix(prefix)})" if message.startswith(prefix) else message


def _birth_date(line: int, raw: str) -> date:
    if not is_valid_iso_date(raw):
        raise DatasetError(line, "date de naissance invalide (date réelle attendue, au format AAAA-MM-JJ)")
    value = date.fromisoformat(raw)
    if not EARLIEST_BIRTH_DATE <= value <= date.today():
        raise DatasetError(line, "date de naissance invalide (hors de la plage 1900-01-01 à aujourd'hui)")
    return value


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
            return _nir_reason(exc)
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
