"""Rendez-vous partenaire: the rules, shared by the API and ``relais import``.

- A rendez-vous belongs to the usager and to the organisation that booked it. Any
  organisation the usager is attached to sees it (``lister``); only the one that booked it
  modifies or cancels it.
- ``motif`` ``ACC`` is reserved for the usager's **first** accompaniment appointment (rdv-insertion
  PR #3180): a second ``ACC`` is refused while an earlier one is still standing (any statut but
  ``ANNULE``); the later appointments take ``AUT``.
- Booking that first ``ACC`` appointment closes ``ACT380`` "1er RDV d'accompagnement à prendre"
  (sujet ``accompagnement:<usager id>``). If it is then cancelled (``ANNULE``, by PUT or DELETE)
  or its motif changed, and no other standing ``ACC`` remains, the ``ACT380`` that the booking
  closed is reopened for the same organisation: the first appointment is still to be taken.
- DELETE does not remove the row: the rendez-vous becomes ``ANNULE`` and stays in the usager's
  history (evidence of what was planned); deleting it again is a no-op.
- Every write publishes a domain event (``rendez_vous.pris``, ``rendez_vous.modifie``,
  ``rendez_vous.annule``, ``parcours.events``) concerning the booking organisation and the
  usager's département, in the same transaction; their connectors hear of it. An outcome
  (recorded with the appointment, or a change of statut) is told by its own event:
  ``rendez_vous.effectue``, ``rendez_vous.absent``, ``rendez_vous.annule``.

Every write locks the usager's row first (``FOR NO KEY UPDATE`` on PostgreSQL, a no-op on
SQLite), then the rendez-vous it changes, so two concurrent bookings of a first ``ACC`` cannot
both succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from parcours import activites as activites_domain
from parcours import events, writes
from parcours.activites import ACT380, sujet_accompagnement
from parcours.dates import paris_datetime
from parcours.perimeter import organisation_for
from parcours.ports import Refused
from parcours.tables import Activite, RendezVous, Usager
from relais.core.french_dates import PARIS
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

MOTIFS = ("ACC", "ORI", "AUT")
STATUTS = ("PRIS", "EFFECTUE", "MODIFIE", "ABSENT", "ANNULE")
MODALITES_CONTACT = ("PHYSIQUE", "TELEPHONE", "VISIO")
TYPES_RECEPTION = ("IND", "COL")
INITIATEURS = ("USAGER", "PARTENAIRE")
CODES_ORGANISME = ("IND", "FT", "CD", "DCD", "ML", "CE")
ANNULE = "ANNULE"
# The statuts that are an outcome, each told by its own event.
_OUTCOME_EVENTS = {"EFFECTUE": events.RDV_EFFECTUE, "ABSENT": events.RDV_ABSENT, ANNULE: events.RDV_ANNULE}
ACC = "ACC"
PAR = "rendez-vous"
# Dates given without an offset are the partners' local (metropolitan French) time.

ID_NON_RECONNU = "ID_NON_RECONNU"
ID_NON_RECONNU_MESSAGE = "Il n'existe pas de rdv pour l'id et l'utilisateur indiqué"
RDV_AUTRE_STRUCTURE = "RDV_AUTRE_STRUCTURE"

# Column lengths of ``RendezVous`` (the spec enforces the same bounds on API calls).
_TEXT_FIELDS: dict[str, tuple[str, int]] = {
    "adresse": ("adresse", 255),
    "libelleAdresse": ("libelle_adresse", 255),
    "information": ("information", 2000),
    "telephoneContactUsager": ("telephone_contact_usager", 32),
    "theme": ("theme", 255),
}
_ENUM_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "modaliteContact": ("modalite_contact", MODALITES_CONTACT),
    "typeReception": ("type_reception", TYPES_RECEPTION),
    "initiateur": ("initiateur", INITIATEURS),
}
_ORGANISME_FIELDS = ("code", "emailContact", "idStructure", "libelleStructure", "telephoneContact")
_INTERLOCUTEUR_FIELDS = ("email", "nom", "prenom")


# Writes ---------------------------------------------------------------------------------


def enregistrer_rendez_vous(
    session: Session, usager: Usager, organisation: Organisation, payload: dict[str, Any], *, now: datetime
) -> RendezVous:
    """Record a rendez-vous booked by ``organisation`` for ``usager`` (API create and import).

    An ``id`` in ``payload`` is kept as given (an import keeps the editor's ids); without one,
    Relais assigns a new id. Recording again an id that already belongs to this usager and
    organisation replaces that rendez-vous (a re-run import is idempotent); an id used by
    another usager or organisation is refused.
    """
    fields = _fields(payload, organisation)
    writes.lock_usager(session, usager)
    identifiant = payload.get("id")
    rdv: RendezVous | None = None
    if identifiant:
        if not _text(identifiant, 64):
            raise _invalide("id", "doit être une chaîne de 64 caractères au plus, sans caractère nul")
        rdv = _locked(session, identifiant)
        if rdv is not None and (rdv.usager_id != usager.id or rdv.organisation_id != organisation.id):
            raise Refused(
                RefusalKind.CONFLICT,
                "ID_DEJA_UTILISE",
                "Cet identifiant de rendez-vous est déjà utilisé pour un autre usager ou une autre structure",
            )
    assert organisation.id is not None
    was_standing = rdv is not None and _standing_acc(rdv)
    evenement: str | None = events.RDV_PRIS
    if rdv is None:
        rdv = RendezVous(usager_id=usager.id, organisation_id=organisation.id, created_at=now, **fields)
        if identifiant:
            rdv.id = identifiant
        # An editor's file often records an appointment with its outcome at once.
        evenement = _OUTCOME_EVENTS.get(rdv.statut, events.RDV_PRIS)
    else:
        evenement = _applied(rdv, fields)
    return _saved(session, usager, rdv, evenement, was_standing=was_standing, now=now)


def modifier_rendez_vous(
    session: Session, usager: Usager, organisation: Organisation, payload: dict[str, Any], *, now: datetime
) -> RendezVous:
    """``PUT``: replace the rendez-vous ``payload["id"]`` with the body (same shape as the creation)."""
    fields = _fields(payload, organisation)
    writes.lock_usager(session, usager)
    rdv = _owned(session, usager, organisation, payload.get("id"))
    was_standing = _standing_acc(rdv)
    evenement = _applied(rdv, fields)
    return _saved(session, usager, rdv, evenement, was_standing=was_standing, now=now)


def annuler_rendez_vous(
    session: Session, usager: Usager, organisation: Organisation, identifiant: str, *, now: datetime
) -> RendezVous:
    """``DELETE``: the rendez-vous becomes ``ANNULE`` and stays in the history (idempotent)."""
    writes.lock_usager(session, usager)
    rdv = _owned(session, usager, organisation, identifiant)
    if rdv.statut == ANNULE:
        return rdv
    was_standing = _standing_acc(rdv)
    rdv.statut = ANNULE
    return _saved(session, usager, rdv, events.RDV_ANNULE, was_standing=was_standing, now=now)


# Reads ----------------------------------------------------------------------------------


def rendez_vous_de(session: Session, usager_id: str) -> list[RendezVous]:
    """Every rendez-vous of the usager, past and upcoming, cancelled ones included, by date."""
    query = (
        select(RendezVous)
        .where(RendezVous.usager_id == usager_id)
        .order_by(col(RendezVous.date), col(RendezVous.created_at), col(RendezVous.id))
    )
    return list(session.exec(query))


def as_contract(rdv: RendezVous) -> dict[str, Any]:
    """The rendez-vous as the contract shows it (camelCase)."""
    return {
        "id": rdv.id,
        "date": format_date(rdv.date),
        "duree": rdv.duree,
        "motif": rdv.motif,
        "statut": rdv.statut,
        "modaliteContact": rdv.modalite_contact,
        "typeReception": rdv.type_reception,
        "initiateur": rdv.initiateur,
        "organisme": {key: rdv.organisme.get(key) for key in _ORGANISME_FIELDS},
        "interlocuteur": (
            None if rdv.interlocuteur is None else {key: rdv.interlocuteur.get(key) for key in _INTERLOCUTEUR_FIELDS}
        ),
        "adresse": rdv.adresse,
        "libelleAdresse": rdv.libelle_adresse,
        "information": rdv.information,
        "telephoneContactUsager": rdv.telephone_contact_usager,
        "theme": rdv.theme,
    }


def format_date(value: datetime) -> str:
    """ISO 8601 with milliseconds, in Paris time with its offset (e.g. 2025-10-01T10:30:00.000+02:00).

    Before 1911 Paris was 9 min 21 s ahead of Greenwich, an offset RFC 3339 cannot write: UTC then.
    """
    local = value.astimezone(PARIS)
    offset = local.utcoffset()
    if offset is None or offset.seconds % 60:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return local.isoformat(timespec="milliseconds")


def parse_date(value: Any) -> datetime:
    try:
        return paris_datetime(value)
    except ValueError as wrong:
        raise _invalide("date", str(wrong)) from None


# Rules ----------------------------------------------------------------------------------
#
# "First" accompaniment appointment is counted per accompaniment period: a period starts when
# ``ACT380`` is opened (an orientation decided for a structure), so after a re-orientation the
# new structure books its own first ``ACC``. Without any ``ACT380``, the whole history counts.


def _apply_acc_rules(session: Session, rdv: RendezVous, *, was_standing: bool, now: datetime) -> None:
    """Refuse a second standing ``ACC`` in the period; keep ``ACT380`` in line with the write.

    Only a write that makes the rendez-vous a standing ``ACC`` (a booking, a motif changed to
    ``ACC``, an un-cancellation) is checked: updating the statut of an existing ``ACC`` never is.
    """
    sujet = sujet_accompagnement(rdv.usager_id)
    standing = _standing_acc(rdv)
    if standing and not was_standing:
        # No autoflush: a refused write must not reach the database, even within the transaction.
        with session.no_autoflush:
            duplicate = _other_standing_acc(session, rdv, since=_period_start(session, sujet))
        if duplicate:
            raise Refused(
                RefusalKind.CONFLICT,
                "MOTIF_ACC_DEJA_UTILISE",
                "Le motif ACC est réservé au premier rendez-vous d'accompagnement : l'usager en a déjà un, "
                "utilisez le motif AUT",
            )
        activites_domain.fermer(session, sujet=sujet, par=PAR, now=now, codes=[ACT380])
    elif was_standing and not standing:
        last = _last_act380(session, sujet)
        if (
            last is not None
            and last.closed_at is not None
            and last.closed_by == PAR
            and not _other_standing_acc(session, rdv, since=last.date_creation)
        ):
            # The first appointment is to be taken again: reopen the to-do the booking closed.
            activites_domain.ouvrir(
                session,
                code=ACT380,
                organisation_id=last.organisation_id,
                usager_id=rdv.usager_id,
                sujet=sujet,
                now=now,
                attributs=[(str(a.get("nom")), str(a.get("valeur"))) for a in last.attributs],
            )


def _standing_acc(rdv: RendezVous) -> bool:
    return rdv.motif == ACC and rdv.statut != ANNULE


def _other_standing_acc(session: Session, rdv: RendezVous, *, since: datetime | None) -> bool:
    query = select(RendezVous.id).where(
        RendezVous.usager_id == rdv.usager_id,
        RendezVous.motif == ACC,
        RendezVous.statut != ANNULE,
        RendezVous.id != rdv.id,
    )
    if since is not None:
        query = query.where(col(RendezVous.created_at) >= since)
    return session.exec(query).first() is not None


def _last_act380(session: Session, sujet: str) -> Activite | None:
    return session.exec(
        select(Activite)
        .where(Activite.sujet == sujet, Activite.code_activite == ACT380)
        .order_by(col(Activite.date_creation).desc())
    ).first()


def _period_start(session: Session, sujet: str) -> datetime | None:
    last = _last_act380(session, sujet)
    return None if last is None else last.date_creation


# Helpers --------------------------------------------------------------------------------


def _fields(payload: Mapping[str, Any], organisation: Organisation) -> dict[str, Any]:
    """Validated column values from a contract body; ``Refused(INVALID)`` before any write."""
    if "date" not in payload or payload["date"] is None:
        raise _invalide("date", "est obligatoire")
    motif = payload.get("motif")
    if motif not in MOTIFS:
        raise _invalide("motif", f"doit valoir l'une des valeurs {', '.join(MOTIFS)}")
    statut = payload.get("statut")
    if statut not in STATUTS:
        raise _invalide("statut", f"doit valoir l'une des valeurs {', '.join(STATUTS)}")
    duree = payload.get("duree")
    if duree is not None and (not isinstance(duree, int) or isinstance(duree, bool) or not 0 <= duree <= 1440):
        raise _invalide("duree", "doit être un nombre entier de minutes entre 0 et 1440")
    fields: dict[str, Any] = {"date": parse_date(payload["date"]), "duree": duree, "motif": motif, "statut": statut}
    for key, (column, allowed) in _ENUM_FIELDS.items():
        value = payload.get(key)
        if value is not None and value not in allowed:
            raise _invalide(key, f"doit valoir l'une des valeurs {', '.join(allowed)}")
        fields[column] = value
    for key, (column, length) in _TEXT_FIELDS.items():
        value = payload.get(key)
        if value is not None and not _text(value, length):
            raise _invalide(key, f"doit être une chaîne de {length} caractères au plus, sans caractère nul")
        fields[column] = value
    fields["organisme"] = _organisme(payload.get("organisme"), organisation)
    fields["interlocuteur"] = _object(payload.get("interlocuteur"), "interlocuteur", _INTERLOCUTEUR_FIELDS)
    return fields


def _organisme(value: Any, organisation: Organisation) -> dict[str, Any]:
    """The ``organisme`` given, or the booking organisation's when none is (import)."""
    if value is None:
        return {
            "code": organisation.type if organisation.type in CODES_ORGANISME else "IND",
            "emailContact": None,
            "idStructure": organisation.code_safir,
            "libelleStructure": organisation.libelle,
            "telephoneContact": None,
        }
    organisme = _object(value, "organisme", _ORGANISME_FIELDS)
    assert organisme is not None
    if organisme.get("code") not in CODES_ORGANISME:
        raise _invalide("organisme.code", f"doit valoir l'une des valeurs {', '.join(CODES_ORGANISME)}")
    return organisme


def _object(value: Any, name: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _invalide(name, "doit être un objet")
    result: dict[str, Any] = {}
    for key in keys:
        item = value.get(key)
        if item is not None and not _text(item, 255):
            raise _invalide(f"{name}.{key}", "doit être une chaîne de 255 caractères au plus, sans caractère nul")
        result[key] = item
    return result


def _text(value: Any, length: int) -> bool:
    # PostgreSQL text cannot hold NUL characters.
    return isinstance(value, str) and len(value) <= length and "\x00" not in value


def _apply(rdv: RendezVous, fields: Mapping[str, Any]) -> None:
    for column, value in fields.items():
        setattr(rdv, column, value)


def _owned(session: Session, usager: Usager, organisation: Organisation, identifiant: Any) -> RendezVous:
    rdv = _locked(session, identifiant) if _text(identifiant, 64) and identifiant else None
    if rdv is None or rdv.usager_id != usager.id:
        raise Refused(RefusalKind.UNKNOWN, ID_NON_RECONNU, ID_NON_RECONNU_MESSAGE)
    if rdv.organisation_id != organisation.id:
        # RefusalKind.INVALID carrying this code: the API answers it 403 (see api.partner.rendez_vous_partenaire).
        raise Refused(
            RefusalKind.INVALID,
            RDV_AUTRE_STRUCTURE,
            "Ce rendez-vous a été pris par une autre structure : seule celle-ci peut le modifier ou l'annuler",
        )
    return rdv


def _locked(session: Session, identifiant: str) -> RendezVous | None:
    return session.exec(
        select(RendezVous)
        .where(RendezVous.id == identifiant)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _applied(rdv: RendezVous, fields: Mapping[str, Any]) -> str | None:
    """Apply ``fields``; the event to tell, None when nothing changed (a re-run import)."""
    before, statut = as_contract(rdv), rdv.statut
    _apply(rdv, fields)
    if as_contract(rdv) == before:
        return None
    return _OUTCOME_EVENTS.get(rdv.statut, events.RDV_MODIFIE) if rdv.statut != statut else events.RDV_MODIFIE


def _saved(
    session: Session, usager: Usager, rdv: RendezVous, evenement: str | None, *, was_standing: bool, now: datetime
) -> RendezVous:
    """Check the ACC rule and write; a refusal leaves the session unflushed for this row.

    A change is published as a domain event concerning the booking organisation and the
    usager's département.
    """
    _apply_acc_rules(session, rdv, was_standing=was_standing, now=now)
    saved = writes.save_version(session, rdv, now)
    if evenement is not None:
        departement = organisation_for(session, usager, "CD")
        events.rendez_vous(session, usager, saved, evenement, [departement.id if departement else None], now)
    return saved


def _invalide(champ: str, detail: str) -> Refused:
    return Refused(RefusalKind.INVALID, "RDV_INVALIDE", f"Rendez-vous : le champ {champ} {detail}")
