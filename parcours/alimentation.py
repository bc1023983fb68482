"""Producer-side rules: an usager's identity and registration status, as producers feed them.

France Travail (and any other producer) is the source of who an usager is and of their
registration (``m_contrat`` of Statut usager). These functions are the one way Relais
records both: the producer feed (``/relais/alimentation/v1``) and ``relais import`` call them,
so the NIR is checked, encrypted and indexed the same way whichever door it came through.

A manquement that France Travail opens, with the consequences it proposes, goes through
the sanctions rules the same way (``ouvrir_manquement``).

Registration status moves keep the contrat d'engagement in step (contract §8): an
inscription that ends (``Cessé`` or ``Radié``) suspends a signed contract, and a new
inscription brings a suspended contract back to its previous state, through
``contrat_domain``. Every refusal is a ``Refused`` whose message names fields, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from parcours import contrat as contrat_domain
from parcours import sanctions as sanctions_domain
from parcours.perimeter import departement_of
from parcours.ports import Refused
from parcours.tables import ConsequenceSanction, Usager
from relais.core.french_dates import local_date
from relais.core.keys import KeySet
from relais.core.nir import NIR_CONTEXT, NirError, is_valid_iso_date, normalize_nir
from relais.core.personal_data import blind_index, encrypt_field
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

Outcome = Literal["created", "updated", "unchanged"]

EARLIEST_BIRTH_DATE = date(1900, 1, 1)

IDENTIFIE = "Identifié"
INSCRIT = "Inscrit"
CESSE = "Cessé"
RADIE = "Radié"
# An inscription that ended: the usager is no longer registered (cessation or radiation).
STATUTS_CLOS = (CESSE, RADIE)

# The registration details an inscription carries (its own, replaced by a new inscription).
CHAMPS_INSCRIPTION = (
    "m_motif_inscription_code",
    "m_motif_inscription_lib",
    "m_categ_inscription_code",
    "m_categ_inscription_lib",
    "m_situation_reg_emp_code",
    "m_situation_reg_emp_lib",
)
# Computed by France Travail over sliding windows: kept when a call does not give them.
CHAMPS_DUREES = ("m_duree_inscription_12", "m_duree_inscription_24", "m_duree_inscription_36")
CHAMPS_CLOTURE = ("m_motif_cloture_code", "m_motif_cloture_lib")


# Identity -------------------------------------------------------------------------------------


def nir_reason(exc: NirError) -> str:
    """« NIR invalide (clé de contrôle incorrecte) » from normalize_nir's « NIR invalide : … »."""
    message = str(exc)
    prefix = "NIR invalide : "
    return f"NIR invalide ({message.removeprefix(prefix)})" if message.startswith(prefix) else message


def valider_nir(raw: Any) -> str:
    """The 13-character NIR, or ``Refused(INVALID)``; the message never quotes the value."""
    if not raw:
        # Optional in some shapes, but the reference store finds usagers by NIR.
        raise Refused(RefusalKind.INVALID, "NIR_OBLIGATOIRE", "NIR obligatoire (champ etatCivil.nir)")
    try:
        return normalize_nir(str(raw))
    except NirError as exc:
        raise Refused(RefusalKind.INVALID, "NIR_INVALIDE", nir_reason(exc)) from None


def valider_date_naissance(raw: Any, *, now: datetime) -> date:
    if not isinstance(raw, str) or not is_valid_iso_date(raw):
        raise Refused(
            RefusalKind.INVALID,
            "DATE_NAISSANCE_INVALIDE",
            "date de naissance invalide (date réelle attendue, au format AAAA-MM-JJ)",
        )
    value = date.fromisoformat(raw)
    if not EARLIEST_BIRTH_DATE <= value <= local_date(now):
        raise Refused(
            RefusalKind.INVALID,
            "DATE_NAISSANCE_INVALIDE",
            "date de naissance invalide (hors de la plage 1900-01-01 à aujourd'hui)",
        )
    return value


def usager_par_numero(session: Session, numero: str, *, lock: bool = False) -> Usager | None:
    query = select(Usager).where(Usager.numero_france_travail == numero)
    if lock:
        # FOR NO KEY UPDATE, as the other domain rules lock the usager: it serialises writes on
        # the usager without blocking inserts that reference it. populate_existing: the locked
        # read must see the committed row, not a stale copy.
        query = query.with_for_update(key_share=True).execution_options(populate_existing=True)
    return session.exec(query).first()


@dataclass(frozen=True)
class Producteur:
    """Who writes through the producer feed: its organisation, and whether its client is
    national (France Travail's national applications write for every territory)."""

    organisation: Organisation | None
    national: bool = False

    def couvre(self, usager: Usager) -> bool:
        if self.national:
            return True
        return self.organisation is not None and departement_of(usager) in self.organisation.territoire


def verifier_territoire(producteur: Producteur | None, usager: Usager) -> None:
    """A producer writes only for usagers of its organisation's territory (the département of
    their first address), unless its client is national. ``None``: the operator's import."""
    if producteur is not None and not producteur.couvre(usager):
        raise Refused(
            RefusalKind.FORBIDDEN,
            "HORS_TERRITOIRE",
            "L'usager ne réside pas dans le territoire de l'organisation productrice",
        )


def enregistrer_usager(
    session: Session,
    keys: KeySet,
    numero: str,
    data: Mapping[str, Any],
    *,
    now: datetime,
    producteur: Producteur | None = None,
) -> tuple[Usager, Outcome]:
    """Create or update the usager ``numero`` from its identity, as given (idempotent).

    ``data`` holds ``etatCivil`` (``nom``, ``prenom``, ``dateNaissance`` and ``nir``
    required), ``adresses``, ``emails``, ``telephones`` and ``topIdentiteCertifiee`` (N when
    absent), in Informations administratives' field names, already shaped by the caller's
    schema. The registration status and the attachments are not touched here.
    """
    etat_civil = data["etatCivil"]
    nir13 = valider_nir(etat_civil.get("nir"))
    wanted: dict[str, Any] = {
        "nir_index": blind_index(keys, nir13),
        "date_naissance": valider_date_naissance(etat_civil.get("dateNaissance"), now=now),
        "civilite": etat_civil.get("civilite"),
        "nom": etat_civil["nom"],
        "prenom": etat_civil["prenom"],
        "nom_correspondance": etat_civil.get("nomCorrespondance"),
        "prenom_correspondance": etat_civil.get("prenomCorrespondance"),
        "top_identite_certifiee": data.get("topIdentiteCertifiee") or "N",
        "adresses": [dict(item) for item in data.get("adresses") or []],
        "emails": [dict(item) for item in data.get("emails") or []],
        "telephones": [dict(item) for item in data.get("telephones") or []],
    }
    # The new address must lie in the producer's territory, and so must the usager's current
    # one: a producer neither creates an usager elsewhere nor moves another's usager to itself.
    verifier_territoire(producteur, Usager.model_construct(adresses=wanted["adresses"]))
    usager = usager_par_numero(session, numero, lock=True)
    if usager is not None:
        verifier_territoire(producteur, usager)
    if usager is None:
        usager = Usager(
            numero_france_travail=numero,
            nir_chiffre=encrypt_field(keys, nir13, context=NIR_CONTEXT),
            created_at=now,
            updated_at=now,
            **wanted,
        )
        try:
            # A savepoint, so that a concurrent creation of the same numéro is a clean refusal.
            with session.begin_nested():
                session.add(usager)
        except IntegrityError:
            raise Refused(
                RefusalKind.CONFLICT,
                "MODIFICATION_CONCURRENTE",
                "Usager enregistré au même moment par un autre appel : renouvelez l'appel",
            ) from None
        return usager, "created"
    # The ciphertext is randomised: compare blind indexes, re-encrypt only a changed NIR.
    if usager.nir_index != wanted["nir_index"]:
        usager.nir_chiffre = encrypt_field(keys, nir13, context=NIR_CONTEXT)
    outcome = appliquer(usager, wanted, now=now)
    if outcome == "updated":
        session.add(usager)
        session.flush()
    return usager, outcome


def appliquer(row: Any, wanted: Mapping[str, Any], *, now: datetime) -> Outcome:
    """Set the fields that differ; stamp ``updated_at`` when any did."""
    changed = False
    for name, value in wanted.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if not changed:
        return "unchanged"
    row.updated_at = now
    return "updated"


# Registration status (m_contrat) -----------------------------------------------------------------


def statut_de(usager: Usager) -> str | None:
    return None if not usager.contrat else str(usager.contrat.get("m_statut"))


def enregistrer_inscription(
    session: Session, usager: Usager, inscription: Mapping[str, Any], *, now: datetime
) -> Outcome:
    """The usager registers (``m_statut`` Inscrit) on ``m_date_effet_statut``.

    A first inscription, or a new one after a cessation or a radiation: a suspended contrat
    d'engagement then returns to its state before suspension. Sent again for the same date,
    it updates the registration details and is otherwise unchanged; an usager already
    registered since another date is refused (409), as is a date before the end of the
    previous inscription (400).
    """
    effet = _date_effet(inscription)
    actuel = dict(usager.contrat or {})
    statut = actuel.get("m_statut")
    depuis = _date_or_none(actuel.get("m_date_effet_statut"))
    if statut == INSCRIT and depuis is not None and depuis != effet:
        raise Refused(
            RefusalKind.CONFLICT,
            "USAGER_DEJA_INSCRIT",
            "L'usager est déjà inscrit depuis une autre date : enregistrez d'abord la cessation",
        )
    if statut in STATUTS_CLOS and depuis is not None and effet < depuis:
        raise Refused(
            RefusalKind.INVALID,
            "DATE_EFFET_INVALIDE",
            "m_date_effet_statut précède la fin de l'inscription précédente",
        )
    contrat = {
        **{name: actuel.get(name) for name in CHAMPS_DUREES},
        **{name: inscription.get(name) for name in CHAMPS_INSCRIPTION},
        **{name: inscription[name] for name in CHAMPS_DUREES if inscription.get(name) is not None},
        **dict.fromkeys(CHAMPS_CLOTURE),
        "m_statut": INSCRIT,
        "m_date_effet_statut": effet.isoformat(),
    }
    return appliquer_contrat(session, usager, contrat, now=now)


def enregistrer_cessation(session: Session, usager: Usager, cessation: Mapping[str, Any], *, now: datetime) -> Outcome:
    """The usager's inscription ends on ``m_date_effet_statut``: ``Cessé`` (default) or ``Radié``.

    A signed contrat d'engagement is suspended. The registration details stay, as Statut
    usager shows them for a closed inscription. Sent again identically, it is unchanged; an
    usager who is not registered is refused (409), as is a date before the inscription (400).
    """
    effet = _date_effet(cessation)
    nouveau = cessation.get("m_statut") or CESSE
    if nouveau not in STATUTS_CLOS:
        raise Refused(RefusalKind.INVALID, "STATUT_INVALIDE", "m_statut doit valoir Cessé ou Radié")
    actuel = dict(usager.contrat or {})
    statut = actuel.get("m_statut")
    depuis = _date_or_none(actuel.get("m_date_effet_statut"))
    cloture = {name: cessation.get(name) for name in CHAMPS_CLOTURE}
    if statut == nouveau and depuis == effet and all(actuel.get(k) == v for k, v in cloture.items()):
        return "unchanged"
    if statut != INSCRIT:
        raise Refused(
            RefusalKind.CONFLICT,
            "USAGER_NON_INSCRIT",
            f"L'usager n'est pas inscrit (statut {statut or 'inconnu'}) : cessation impossible",
        )
    if depuis is not None and effet < depuis:
        raise Refused(
            RefusalKind.INVALID,
            "DATE_EFFET_INVALIDE",
            "m_date_effet_statut précède la date d'inscription",
        )
    contrat = {**actuel, **cloture, "m_statut": nouveau, "m_date_effet_statut": effet.isoformat()}
    return appliquer_contrat(session, usager, contrat, now=now)


def appliquer_contrat(session: Session, usager: Usager, contrat: Mapping[str, Any] | None, *, now: datetime) -> Outcome:
    """Set the usager's ``m_contrat`` as given, with the contrat d'engagement rules of its move.

    ``relais import`` states the status directly; the feed's inscription and cessation come
    through here too, so an inscription that ends suspends the contract whichever way it came.
    """
    wanted = dict(contrat) if contrat else None
    avant = statut_de(usager)
    if (usager.contrat or None) == wanted:
        return "unchanged"
    usager.contrat = wanted
    usager.updated_at = now
    session.add(usager)
    session.flush()
    apres = statut_de(usager)
    if apres in STATUTS_CLOS and avant not in STATUTS_CLOS:
        contrat_domain.suspendre_sur_cessation(session, usager.id, now=now)
    elif apres == INSCRIT and avant != INSCRIT:
        contrat_domain.reprendre_sur_reinscription(session, usager.id, now=now)
    return "updated"


def _date_effet(body: Mapping[str, Any]) -> date:
    raw = body.get("m_date_effet_statut")
    if not isinstance(raw, str) or not is_valid_iso_date(raw):
        raise Refused(
            RefusalKind.INVALID,
            "DATE_EFFET_INVALIDE",
            "m_date_effet_statut invalide (date réelle attendue, au format AAAA-MM-JJ)",
        )
    return date.fromisoformat(raw)


def _date_or_none(raw: Any) -> date | None:
    return date.fromisoformat(raw) if isinstance(raw, str) and is_valid_iso_date(raw) else None


# Manquements ---------------------------------------------------------------------------------------

CHAMPS_MANQUEMENT = ("natureManquement", "rangManquement", "dateManquement", "libelleManquement")


def ouvrir_manquement(
    session: Session, usager: Usager, manquement: Mapping[str, Any], *, now: datetime, agent: str
) -> list[tuple[ConsequenceSanction, Outcome]]:
    """A manquement and the consequences France Travail proposes, through the sanctions rule.

    ``manquement`` holds ``natureManquement``, ``rangManquement``, ``dateManquement``,
    ``libelleManquement`` and ``consequences`` (``identifiantConsequenceSanction`` optional,
    ``typeConsequenceSanction``, ``modaliteProposee``, ``montantPropose``, ``dureeProposee``).
    Each consequence is proposed by ``sanctions_domain.proposer_consequence`` (its GLI100
    activity on the département's list). A consequence whose identifier is already recorded
    with the same proposal for this usager is a replay, left as it is (``unchanged``), whatever
    happened to it since; with another proposal, or for another usager, it is refused (409).
    """
    commun = {name: manquement[name] for name in CHAMPS_MANQUEMENT if manquement.get(name) is not None}
    identifiants = [c.get("identifiantConsequenceSanction") for c in manquement["consequences"]]
    donnes = [identifiant for identifiant in identifiants if identifiant]
    if len(set(donnes)) != len(donnes):
        raise Refused(
            RefusalKind.INVALID,
            "CONSEQUENCE_EN_DOUBLE",
            "identifiantConsequenceSanction en double dans le manquement",
        )
    results: list[tuple[ConsequenceSanction, Outcome]] = []
    for consequence in manquement["consequences"]:
        payload = {**commun, **consequence}
        identifiant = consequence.get("identifiantConsequenceSanction")
        existing = session.get(ConsequenceSanction, identifiant) if identifiant else None
        if existing is not None:
            if existing.usager_id != usager.id or not meme_proposition(existing, payload):
                raise Refused(
                    RefusalKind.CONFLICT,
                    "CONSEQUENCE_EXISTANTE",
                    "identifiantConsequenceSanction déjà enregistré pour une autre proposition",
                )
            results.append((existing, "unchanged"))
            continue
        created = sanctions_domain.proposer_consequence(session, usager, payload, now=now, agent=agent)
        results.append((created, "created"))
    return results


def meme_proposition(consequence: ConsequenceSanction, payload: Mapping[str, Any]) -> bool:
    """Whether a recorded consequence is the proposal ``payload`` describes (a replay)."""
    manquement = consequence.manquement or {}
    montant = payload.get("montantPropose")
    return (
        consequence.type_consequence == payload.get("typeConsequenceSanction")
        and consequence.modalite_proposee == payload.get("modaliteProposee")
        and consequence.montant_propose == (None if montant is None else float(montant))
        and consequence.duree_proposee == payload.get("dureeProposee")
        and all(manquement.get(name) == payload.get(name) for name in CHAMPS_MANQUEMENT)
    )
