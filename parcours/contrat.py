"""Contrat d'engagement: the lifecycle rules, shared by the API, the producer feed and ``relais import``.

States (``etat``) and transitions, after France Travail's ``API_ContratEngagement`` diagram:

- ``A_SIGNER`` → ``SIGNE`` (signature) or ``REFUSE`` (refusal);
- ``REFUSE`` → ``SIGNE`` (the usager signs after all);
- ``SIGNE`` → ``SUSPENDU`` on the usager's cessation d'inscription;
- ``SUSPENDU`` → its state before suspension when the usager registers again, or
  ``CLOTURE`` once it has been suspended for 12 months;
- ``SIGNE`` or ``REFUSE`` → ``A_SIGNER`` on a re-orientation ("modification essentielle du
  parcours"): the previous signature or refusal no longer holds.

``CLOTURE`` is final for that contract; a new contract may then be signed (it replaces the
closed one, the usager has one current contract). Every transition loads the row locked
(``with_for_update``), checks the state it expects, and bumps ``version``: a call that finds
the state already moved is refused (``Refused(CONFLICT)``) and changes nothing.

A signature or a refusal through the API publishes a domain event concerning the usager's
département (``contrat_engagement.signe``, ``contrat_engagement.refuse``, ``parcours.events``)
in the same transaction.

The 12-month closure is applied by ``cloturer_suspensions_echues`` (a periodic batch) and
also lazily whenever a contract is read or moved, so a late batch never lets a stale
``SUSPENDU`` through. The closure date is the day the 12 months are reached, not the day
the closure happened to be noticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from parcours import events, writes
from parcours import rendez_vous as rendez_vous_domain
from parcours.dates import paris_datetime
from parcours.ports import Refused
from parcours.tables import ContratEngagement
from relais.core.calendar import add_months
from relais.core.french_dates import local_date
from relais.core.refusals import RefusalKind
from relais.core.tables import new_id

A_SIGNER = "A_SIGNER"
SIGNE = "SIGNE"
REFUSE = "REFUSE"
SUSPENDU = "SUSPENDU"
CLOTURE = "CLOTURE"
ETATS = (A_SIGNER, SIGNE, REFUSE, SUSPENDU, CLOTURE)
# States a contract may be in before a suspension, to which it returns on re-registration.
ETATS_SUSPENDABLES = (A_SIGNER, SIGNE, REFUSE)
MOIS_AVANT_CLOTURE = 12
# Dates given without an offset are the partners' local (metropolitan French) time.


# Agents ---------------------------------------------------------------------------------
#
# ``ContratEngagement.agent`` holds ``{"signature": {nom, prenom, identifiant}, "refus": {...}}``:
# the agent who recorded the current signature and the one who recorded the refusal.


AGENT_KEYS = ("nom", "prenom", "identifiant")


def agent_of(nom: str, prenom: str, identifiant: str) -> dict[str, str]:
    return {"nom": nom, "prenom": prenom, "identifiant": identifiant}


# Reading --------------------------------------------------------------------------------


def contrat_de(session: Session, usager_id: str, *, now: datetime, lock: bool = False) -> ContratEngagement | None:
    """The usager's current contract, with a due 12-month closure applied; locked if ``lock``."""
    query = select(ContratEngagement).where(ContratEngagement.usager_id == usager_id)
    if lock:
        # populate_existing: the locked read must see the committed row, not a stale copy.
        query = query.with_for_update().execution_options(populate_existing=True)
    contrat = session.exec(query).first()
    if contrat is not None and _cloture_due(contrat, now):
        if not lock:
            # Re-read locked before writing, so two readers never both close it.
            return contrat_de(session, usager_id, now=now, lock=True)
        _cloturer(session, contrat, now)
    return contrat


# Domain events (producer feed, orientation rules, batch) ---------------------------------


def remettre_a_signer(session: Session, usager_id: str, *, now: datetime) -> None:
    """A (re)orientation: a signed or refused contract must be signed again.

    No contract: nothing (the first one is signed through the API). ``A_SIGNER`` stays;
    ``SUSPENDU`` and ``CLOTURE`` are unchanged (the usager is not registered any more).
    """
    contrat = contrat_de(session, usager_id, now=now, lock=True)
    if contrat is None or contrat.etat not in (SIGNE, REFUSE):
        return
    contrat.etat = A_SIGNER
    contrat.date_signature = None
    contrat.date_refus = None
    contrat.agent = None
    _saved(session, contrat, now)


def suspendre_sur_cessation(session: Session, usager_id: str, *, now: datetime) -> None:
    """Cessation d'inscription: a signed contract is suspended (its state is kept to come back to)."""
    contrat = contrat_de(session, usager_id, now=now, lock=True)
    if contrat is None or contrat.etat != SIGNE:
        return
    contrat.etat_avant_suspension = contrat.etat
    contrat.etat = SUSPENDU
    contrat.date_suspension = local_date(now)
    _saved(session, contrat, now)


def reprendre_sur_reinscription(session: Session, usager_id: str, *, now: datetime) -> None:
    """The usager registers again: a suspended (not yet closed) contract returns to its previous state."""
    contrat = contrat_de(session, usager_id, now=now, lock=True)
    if contrat is None or contrat.etat != SUSPENDU:
        return
    contrat.etat = contrat.etat_avant_suspension or SIGNE
    contrat.etat_avant_suspension = None
    contrat.date_suspension = None
    _saved(session, contrat, now)


def cloturer_suspensions_echues(session: Session, *, now: datetime) -> int:
    """Close every contract suspended for 12 months or more; returns how many were closed."""
    limite = add_months(local_date(now), -MOIS_AVANT_CLOTURE)
    query = (
        select(ContratEngagement)
        .where(ContratEngagement.etat == SUSPENDU, col(ContratEngagement.date_suspension) <= limite)
        .with_for_update()
    )
    count = 0
    for contrat in session.exec(query).all():
        if _cloture_due(contrat, now):
            _cloturer(session, contrat, now)
            count += 1
    return count


# API operations ---------------------------------------------------------------------------


def signer_premier(
    session: Session,
    usager_id: str,
    *,
    date_signature: datetime,
    agent: Mapping[str, str],
    organisme: str | None,
    contenu: Mapping[str, Any],
    now: datetime,
) -> ContratEngagement:
    """``POST /signer``: create the usager's first contract, signed.

    Refused when the usager already has a current contract (409); a closed contract is
    replaced by the new one.
    """
    contrat = _premier(session, usager_id, etat=SIGNE, route="/signer", organisme=organisme, contenu=contenu, now=now)
    contrat.date_signature = date_signature
    contrat.agent = {"signature": dict(agent)}
    return _published(session, _saved(session, contrat, now), events.CONTRAT_SIGNE, now)


def refuser_premier(
    session: Session,
    usager_id: str,
    *,
    date_refus: datetime,
    agent: Mapping[str, str],
    organisme: str | None,
    contenu: Mapping[str, Any],
    now: datetime,
) -> ContratEngagement:
    """``POST /refuser`` (choix Relais): create the usager's first contract, refused."""
    contrat = _premier(session, usager_id, etat=REFUSE, route="/refuser", organisme=organisme, contenu=contenu, now=now)
    contrat.date_refus = date_refus
    contrat.agent = {"refus": dict(agent)}
    return _published(session, _saved(session, contrat, now), events.CONTRAT_REFUSE, now)


def _premier(
    session: Session,
    usager_id: str,
    *,
    etat: str,
    route: str,
    organisme: str | None,
    contenu: Mapping[str, Any],
    now: datetime,
) -> ContratEngagement:
    """The usager's first contract in ``etat``, not yet saved: the part ``POST /signer`` and
    ``POST /refuser`` share (content checked first, then 409 on a current contract, a closed
    one reset). The caller sets its date and agent, then saves it."""
    normalised = valider_contenu(contenu)
    contrat = contrat_de(session, usager_id, now=now, lock=True)
    if contrat is not None and contrat.etat != CLOTURE:
        raise Refused(
            RefusalKind.CONFLICT,
            "CONTRAT_EXISTANT",
            f"L'usager a déjà un contrat d'engagement (état {contrat.etat}) : utilisez PATCH {route}",
        )
    contrat = _nouveau(session, contrat, usager_id, now)
    contrat.etat = etat
    contrat.organisme = organisme
    _apply_contenu(contrat, normalised)
    return contrat


def refuser(
    session: Session,
    usager_id: str,
    *,
    date_refus: datetime,
    agent: Mapping[str, str],
    now: datetime,
) -> ContratEngagement:
    """``PATCH /refuser``: the usager refuses a contract to sign (``A_SIGNER`` only)."""
    contrat = _existing(session, usager_id, now)
    if contrat.etat != A_SIGNER:
        raise Refused(
            RefusalKind.CONFLICT,
            "ETAT_CONTRAT_INCOMPATIBLE",
            f"Un contrat d'engagement à l'état {contrat.etat} ne peut pas être refusé (état attendu : A_SIGNER)",
        )
    contrat.etat = REFUSE
    contrat.date_refus = date_refus
    contrat.agent = {**(contrat.agent or {}), "refus": dict(agent)}
    return _published(session, _saved(session, contrat, now), events.CONTRAT_REFUSE, now)


def signer(
    session: Session,
    usager_id: str,
    *,
    date_signature: datetime,
    agent: Mapping[str, str],
    organisme: str | None,
    contenu: Mapping[str, Any],
    now: datetime,
) -> ContratEngagement:
    """``PATCH /signer``: sign a contract that is to sign or was refused."""
    contenu = valider_contenu(contenu)
    contrat = _existing(session, usager_id, now)
    if contrat.etat not in (A_SIGNER, REFUSE):
        raise Refused(
            RefusalKind.CONFLICT,
            "ETAT_CONTRAT_INCOMPATIBLE",
            f"Un contrat d'engagement à l'état {contrat.etat} ne peut pas être signé "
            "(état attendu : A_SIGNER ou REFUSE)",
        )
    contrat.etat = SIGNE
    contrat.date_signature = date_signature
    contrat.organisme = organisme or contrat.organisme
    contrat.agent = {**(contrat.agent or {}), "signature": dict(agent)}
    _apply_contenu(contrat, contenu)
    return _published(session, _saved(session, contrat, now), events.CONTRAT_SIGNE, now)


# Import -------------------------------------------------------------------------------------


def enregistrer_contrat(
    session: Session, usager_id: str, payload: dict[str, Any], *, now: datetime
) -> ContratEngagement:
    """Record a contract as given (``relais import``): camelCase fields of the contract, its state kept.

    Fields: ``etat`` (required), ``dateSignature``, ``dateRefus``, ``dateSuspension``,
    ``dateCloture``, ``etatAvantSuspension``, ``organisme``, ``engagements``, ``planAction``,
    ``intensiteHebdomadaire``, ``agentSignature`` and ``agentRefus`` ({nom, prenom, identifiant}).
    Re-importing replaces the usager's contract (same row, version bumped). A contract
    suspended for 12 months or more is recorded closed. Raises ``Refused(INVALID)`` on an
    inconsistent payload, before writing anything.
    """
    etat = payload.get("etat")
    if etat not in ETATS:
        raise _invalide("etat", f"doit valoir l'une des valeurs {', '.join(ETATS)}")
    date_signature = _datetime(payload, "dateSignature")
    date_refus = _datetime(payload, "dateRefus")
    date_suspension = _date(payload, "dateSuspension")
    date_cloture = _date(payload, "dateCloture")
    etat_avant = payload.get("etatAvantSuspension")
    if etat == SIGNE and date_signature is None:
        raise _invalide("dateSignature", "est obligatoire pour un contrat SIGNE")
    if etat == REFUSE and date_refus is None:
        raise _invalide("dateRefus", "est obligatoire pour un contrat REFUSE")
    if etat == SUSPENDU:
        if date_suspension is None:
            raise _invalide("dateSuspension", "est obligatoire pour un contrat SUSPENDU")
        etat_avant = etat_avant or SIGNE
        if etat_avant not in ETATS_SUSPENDABLES:
            raise _invalide("etatAvantSuspension", f"doit valoir l'une des valeurs {', '.join(ETATS_SUSPENDABLES)}")
    else:
        etat_avant = None
        if etat != CLOTURE:
            date_suspension = None
    if etat == CLOTURE and date_cloture is None:
        raise _invalide("dateCloture", "est obligatoire pour un contrat CLOTURE")
    contenu = valider_contenu(payload)
    organisme = payload.get("organisme")
    if organisme is not None and not _text(organisme, 8):
        raise _invalide("organisme", "doit être un code de 8 caractères au plus (CD, FT, ML, CE, DCD...)")
    agents: dict[str, Any] = {}
    for key, role in (("agentSignature", "signature"), ("agentRefus", "refus")):
        value = payload.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(_text(value.get(k), 100) for k in AGENT_KEYS):
            raise _invalide(key, "doit contenir nom, prenom et identifiant")
        agents[role] = agent_of(value["nom"], value["prenom"], value["identifiant"])
    contrat = session.exec(
        select(ContratEngagement).where(ContratEngagement.usager_id == usager_id).with_for_update()
    ).first()
    if contrat is None:
        contrat = ContratEngagement(usager_id=usager_id, etat=etat, created_at=now)
    contrat.etat = etat
    contrat.etat_avant_suspension = etat_avant
    contrat.organisme = organisme
    contrat.date_signature = date_signature
    contrat.date_refus = date_refus
    contrat.date_suspension = date_suspension
    contrat.date_cloture = date_cloture if etat == CLOTURE else None
    contrat.engagements = contenu.get("engagements", [])
    contrat.plan_action = contenu.get("planAction", [])
    contrat.intensite_hebdomadaire = contenu.get("intensiteHebdomadaire")
    contrat.agent = agents or None
    if _cloture_due(contrat, now):
        _cloturer(session, contrat, now)
    return _saved(session, contrat, now)


# Helpers -------------------------------------------------------------------------------------


def echeance_cloture(contrat: ContratEngagement) -> date | None:
    """The day a suspended contract is closed, if it stays suspended."""
    if contrat.etat != SUSPENDU or contrat.date_suspension is None:
        return None
    return add_months(contrat.date_suspension, MOIS_AVANT_CLOTURE)


def _cloture_due(contrat: ContratEngagement, now: datetime) -> bool:
    echeance = echeance_cloture(contrat)
    return echeance is not None and local_date(now) >= echeance


def _cloturer(session: Session, contrat: ContratEngagement, now: datetime) -> None:
    contrat.date_cloture = echeance_cloture(contrat)
    contrat.etat = CLOTURE
    contrat.etat_avant_suspension = None
    _saved(session, contrat, now)


def _existing(session: Session, usager_id: str, now: datetime) -> ContratEngagement:
    contrat = contrat_de(session, usager_id, now=now, lock=True)
    if contrat is None:
        raise Refused(
            RefusalKind.CONFLICT,
            "CONTRAT_INEXISTANT",
            "L'usager n'a pas de contrat d'engagement : utilisez POST /signer pour créer le premier",
        )
    return contrat


def _nouveau(session: Session, closed: ContratEngagement | None, usager_id: str, now: datetime) -> ContratEngagement:
    """A fresh contract row; a closed contract is reset into it under a new identifier."""
    if closed is None:
        return ContratEngagement(usager_id=usager_id, etat=A_SIGNER, created_at=now)
    closed.id = new_id()
    closed.etat_avant_suspension = None
    closed.organisme = None
    closed.engagements = []
    closed.plan_action = []
    closed.intensite_hebdomadaire = None
    closed.date_signature = None
    closed.date_refus = None
    closed.date_suspension = None
    closed.date_cloture = None
    closed.agent = None
    closed.created_at = now
    return closed


def _apply_contenu(contrat: ContratEngagement, normalised: Mapping[str, Any]) -> None:
    """Engagements, action plan and intensity (``valider_contenu``) replace the previous ones."""
    if "engagements" in normalised:
        contrat.engagements = normalised["engagements"]
    if "planAction" in normalised:
        contrat.plan_action = normalised["planAction"]
    if "intensiteHebdomadaire" in normalised:
        contrat.intensite_hebdomadaire = normalised["intensiteHebdomadaire"]


def valider_contenu(contenu: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's content keeping only its known keys; ``Refused(INVALID)`` on a bad value.

    Absent or null entries are left out (they do not replace what the contract holds).
    """
    result: dict[str, Any] = {}
    for key, item_keys in (("engagements", ("code", "libelle")), ("planAction", ("code", "libelle", "dateEcheance"))):
        items = contenu.get(key)
        if items is None:
            continue
        if not isinstance(items, list) or len(items) > 100:
            raise _invalide(key, "doit être une liste de 100 éléments au plus")
        cleaned = []
        for item in items:
            if not isinstance(item, Mapping) or not _text(item.get("libelle"), 1000) or not item["libelle"]:
                raise _invalide(key, "doit contenir des objets ayant un libelle (1000 caractères au plus)")
            if item.get("code") is not None and not _text(item["code"], 64):
                raise _invalide(f"{key}.code", "doit être une chaîne de 64 caractères au plus")
            entry = {k: item.get(k) for k in item_keys if k != "dateEcheance"}
            if "dateEcheance" in item_keys:
                echeance = _date(item, "dateEcheance")
                entry["dateEcheance"] = None if echeance is None else echeance.isoformat()
            cleaned.append(entry)
        result[key] = cleaned
    intensite = contenu.get("intensiteHebdomadaire")
    if intensite is not None:
        if not isinstance(intensite, int) or isinstance(intensite, bool) or not 0 <= intensite <= 168:
            raise _invalide("intensiteHebdomadaire", "doit être un nombre entier d'heures entre 0 et 168")
        result["intensiteHebdomadaire"] = intensite
    return result


def date_acte(payload: Mapping[str, Any], key: str, *, now: datetime) -> datetime:
    """A signature or refusal date from a call: required, ISO 8601, not in the future."""
    value = _datetime(payload, key)
    if value is None:
        raise _invalide(key, "est obligatoire")
    # A few minutes of tolerance for the caller's clock.
    if value > now + timedelta(minutes=5):
        raise _invalide(key, "ne peut pas être dans le futur")
    return value


def as_contract(contrat: ContratEngagement) -> dict[str, Any]:
    """The contract as Contrat d'engagement v1 shows it (camelCase, choix Relais)."""
    agents = contrat.agent or {}
    echeance = echeance_cloture(contrat)
    return {
        "identifiant": contrat.id,
        "etat": contrat.etat,
        "dateSignature": _format_datetime(contrat.date_signature),
        "dateRefus": _format_datetime(contrat.date_refus),
        "dateSuspension": None if contrat.date_suspension is None else contrat.date_suspension.isoformat(),
        "dateCloturePrevue": None if echeance is None else echeance.isoformat(),
        "dateCloture": None if contrat.date_cloture is None else contrat.date_cloture.isoformat(),
        "etatAvantSuspension": contrat.etat_avant_suspension,
        "organisme": contrat.organisme,
        "engagements": list(contrat.engagements),
        "planAction": list(contrat.plan_action),
        "intensiteHebdomadaire": contrat.intensite_hebdomadaire,
        "agentSignature": _agent(agents.get("signature")),
        "agentRefus": _agent(agents.get("refus")),
        "dateMiseAJour": _format_datetime(contrat.updated_at),
    }


def _agent(value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    return {key: str(value.get(key) or "") for key in AGENT_KEYS}


def _format_datetime(value: datetime | None) -> str | None:
    return None if value is None else rendez_vous_domain.format_date(value)


def _text(value: Any, length: int) -> bool:
    # PostgreSQL text cannot hold NUL characters.
    return isinstance(value, str) and len(value) <= length and "\x00" not in value


def _saved(session: Session, contrat: ContratEngagement, now: datetime) -> ContratEngagement:
    return writes.save_version(session, contrat, now)


def _published(session: Session, contrat: ContratEngagement, evenement: str, now: datetime) -> ContratEngagement:
    """The département hears of a signature or a refusal (a domain event, same transaction)."""
    events.contrat_engagement(session, contrat, evenement, now)
    return contrat


def _invalide(champ: str, detail: str) -> Refused:
    return Refused(RefusalKind.INVALID, "CONTRAT_INVALIDE", f"Contrat d'engagement : le champ {champ} {detail}")


def _datetime(payload: Mapping[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    if value is None:
        return None
    try:
        return paris_datetime(value)
    except ValueError as wrong:
        raise _invalide(key, str(wrong)) from None


def _date(payload: Mapping[str, Any], key: str) -> date | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            parsed = date.fromisoformat(value[:10])
        except ValueError:
            parsed = None
        if parsed is not None and 1900 <= parsed.year <= 2199:
            return parsed
    raise _invalide(key, "doit être une date ISO 8601 (AAAA-MM-JJ) entre les années 1900 et 2199")
