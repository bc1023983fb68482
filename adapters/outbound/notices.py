"""People's notifications in plain French: the one wording for the console inbox and the e-mail.

The domains queue a notification as a topic and a few identifiers (``agent_id``, a due date,
an incident number): that is what the outbox keeps, with no personal data. Here it becomes
what a person reads: a subject and a body naming the agent (first name and name, read from
the habilitations tables at the time of wording), the date in French and local time, what to
do, and the console page to open. Each notification is then filed in the inbox of every
person it reaches (``habilitations.notifications``); the e-mail copy, where a channel is
configured, is the same text with the link made absolute from ``RELAIS_PUBLIC_URL``.

A topic this module does not know still reads as a notification (a generic wording listing
its fields), so that nothing a domain adds later is lost on its way to people.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from habilitations import notifications
from habilitations.models import RGC_SUPPLEANT, RGC_TITULAIRE, Agent, Designation, Habilitation
from habilitations.notifications import Wording
from habilitations.profiles import api_profiles
from relais.core.french_dates import local_date, local_time, long_date
from relais.core.outbox import OutboxMessage

# Topics of the domains (strings: the connectors' pause is this adapter's own worker's).
INACTIVITY_WARNING = "habilitations.inactivite.avertissement"
INACTIVITY_SUSPENSION = "habilitations.inactivite.suspension"
SECURITY_BLOCK = "habilitations.securite.blocage"
RGC_NOTICE = "habilitations.rgc.signalement_cssi"
INCIDENT_OPENED = "audit.incident.ouvert"
INCIDENT_OVERDUE = "audit.incident.echeance_depassee"
CONNECTOR_PAUSED = "connecteurs.connecteur.suspendu"
ROLE_LABELS = {RGC_TITULAIRE: "RGC titulaire", RGC_SUPPLEANT: "RGC suppléant"}
RGC_NOTICE_REASONS = {
    "depart": "a quitté l'organisation",
    "changement_fonction": "a changé de fonction",
    "absence_prolongee": "est absent depuis deux mois (compte suspendu pour inactivité)",
}
# Reason codes are free (the CSSI's): the known ones read better, the others as words.
BLOCK_REASONS = {"usage_suspect": "usage suspect"}
SIGNATURE = (
    "Message automatique de Relais, le hub d'interopérabilité du réseau pour l'emploi. "
    "Ne répondez pas à ce courriel : retrouvez vos notifications dans la console."
)


# Dates in French ------------------------------------------------------------------------------


def french_date(day: date) -> str:
    """« samedi 12 décembre 2026 »."""
    return long_date(day, weekday=True)


def french_moment(moment: datetime) -> str:
    """« mercredi 2 décembre 2026 à 15 h 04 », in France's time (naive values are UTC)."""
    local = local_time(moment)
    return f"{french_date(local.date())} à {local.hour} h {local.minute:02d}"


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _in_days(days: Any) -> str:
    if not isinstance(days, int) or days < 0:
        return ""
    return " (aujourd'hui)" if days == 0 else f" (dans {days} jour{'s' if days > 1 else ''})"


def _plain(code: Any) -> str:
    """A reason code as words, when no label is known for it."""
    return str(code or "").replace("_", " ").strip() or "non précisé"


# The wording of each topic --------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    session: Session
    recipient: str
    payload: Mapping[str, Any]
    created_at: datetime

    @property
    def to_the_agent_themself(self) -> bool:
        return self.recipient.startswith("agent:")


def _agent(context: Context, agent_id: Any) -> Agent | None:
    return context.session.get(Agent, agent_id) if isinstance(agent_id, int) else None


def _name(agent: Agent | None) -> str:
    if agent is None:
        return "un agent"
    return f"{agent.prenom} {agent.nom}".strip() or agent.identifiant


def _who(agent: Agent | None, organisation: Any) -> str:
    """« Claire Martin (AGT-0042, CD33) »."""
    if agent is None:
        return "un agent"
    details = ", ".join(str(part) for part in (agent.identifiant, organisation) if part)
    return f"{_name(agent)} ({details})" if details else _name(agent)


def _of(words: str) -> str:
    """« de Paul Durand », « d'Agnès Roux »: French elides before a vowel."""
    return f"d'{words}" if words[:1].lower() in "aeiouyàâéèêëîïôùûh" else f"de {words}"


def _agent_page(agent: Agent | None) -> str:
    return f"/console/habilitations/agents/{agent.id}" if agent is not None else "/console/habilitations"


def _inactivity_warning(context: Context) -> Wording:
    payload = context.payload
    agent = _agent(context, payload.get("agent_id"))
    due = _day(payload.get("suspension_le"))
    when = french_date(due) if due else "dans les prochains jours"
    soon = _in_days(payload.get("jours_restants"))
    if context.to_the_agent_themself:
        return Wording(
            subject=f"Votre accès à Relais sera suspendu le {when} sans connexion d'ici là",
            body=(
                f"Bonjour {_name(agent)},\n\n"
                "Vous n'avez pas utilisé Relais depuis près de deux mois : aucune connexion à la console et "
                "aucun appel de votre logiciel métier en votre nom. La convention prévoit la suspension des "
                f"comptes après deux mois sans activité : le vôtre sera suspendu le {when}{soon}.\n\n"
                "Ce qu'il faut faire : si vous avez encore besoin de cet accès, connectez-vous à la console "
                "Relais avec ProConnect, ou travaillez dans votre logiciel métier, avant cette date. "
                "Si vous n'en avez plus besoin, vous n'avez rien à faire : votre RGC en est informé."
            ),
            link="/console/",
        )
    return Wording(
        subject=f"{_name(agent)} : compte suspendu le {when} sans activité d'ici là",
        body=(
            "Bonjour,\n\n"
            f"Le compte Relais {_of(_who(agent, payload.get('organisation')))} n'a eu aucune activité depuis près "
            f"de deux mois. Il sera suspendu le {when}{soon} si l'agent ne se connecte pas d'ici là.\n\n"
            "Ce qu'il faut faire : si l'agent a toujours besoin de son accès, demandez-lui de se connecter à "
            "Relais avant cette date. S'il n'en a plus besoin (départ, changement de fonction), révoquez ses "
            "habilitations depuis sa fiche."
        ),
        link=_agent_page(agent),
    )


def _inactivity_suspension(context: Context) -> Wording:
    payload = context.payload
    agent = _agent(context, payload.get("agent_id"))
    due = _day(payload.get("suspension_le"))
    when = french_date(due) if due else french_date(local_date(context.created_at))
    return Wording(
        subject=f"{_name(agent)} : compte suspendu pour inactivité depuis le {when}",
        body=(
            "Bonjour,\n\n"
            f"Le compte Relais {_of(_who(agent, payload.get('organisation')))} est suspendu depuis le {when} : "
            "deux mois sans connexion ni appel en son nom. Les appels faits pour cet agent sont refusés.\n\n"
            "Ce qu'il faut faire : si l'agent a encore besoin de son accès, réactivez son compte ; "
            "sinon, révoquez ses habilitations. Les deux se font depuis sa fiche."
        ),
        link=_agent_page(agent),
    )


def _security_block(context: Context) -> Wording:
    payload = context.payload
    agent = _agent(context, payload.get("agent_id"))
    moment = _moment(payload.get("le")) or context.created_at
    motif = BLOCK_REASONS.get(str(payload.get("motif")), _plain(payload.get("motif")))
    grant = (
        context.session.get(Habilitation, payload["habilitation_id"])
        if isinstance(payload.get("habilitation_id"), str)
        else None
    )
    if grant is not None:
        title = api_profiles().get(grant.api)
        what = f"l'habilitation « {title.title if title else grant.api} » {_of(_name(agent))}"
        subject = f"{_name(agent)} : une habilitation bloquée par la sécurité"
    else:
        what = f"le compte Relais {_of(_who(agent, payload.get('organisation')))}"
        subject = f"{_name(agent)} : compte bloqué par la sécurité"
    return Wording(
        subject=subject,
        body=(
            "Bonjour,\n\n"
            f"Le {french_moment(moment)}, la sécurité (CSSI de France Travail ou opérateur du hub) a bloqué "
            f"{what}. Motif : {motif}.\n\n"
            "Ce qu'il faut faire : ce blocage est une mesure de sécurité que seuls le CSSI de France Travail "
            "ou l'opérateur du hub peuvent lever. Voyez avec l'agent ce qui a pu la motiver ; elle sera "
            "examinée lors de la prochaine revue annuelle des habilitations."
        ),
        link=_agent_page(agent),
    )


def _rgc_notice(context: Context) -> Wording:
    payload = context.payload
    designation_id = payload.get("designation_id")
    designation = context.session.get(Designation, designation_id) if isinstance(designation_id, int) else None
    agent = context.session.get(Agent, designation.agent_id) if designation is not None else None
    organisation = payload.get("organisation") or ""
    role = ROLE_LABELS.get(str(payload.get("role")), "RGC")
    reason = RGC_NOTICE_REASONS.get(str(payload.get("motif")), _plain(payload.get("motif")))
    seen = _day(payload.get("constate_le"))
    deadline = _day(payload.get("a_signaler_avant"))
    return Wording(
        subject=f"{organisation} : {role} à remplacer ({_name(agent)})",
        body=(
            "Bonjour,\n\n"
            f"{_name(agent)}, {role} de l'organisation {organisation}, {reason}"
            f"{f' (constaté le {french_date(seen)})' if seen else ''}.\n\n"
            "Ce qu'il faut faire : vérifiez avec l'organisation qu'un nouveau RGC est désigné"
            f"{f' ; le changement est à enregistrer avant le {french_date(deadline)}' if deadline else ''}."
        ),
        link="/console/",
    )


def _incident(context: Context, *, overdue: bool) -> Wording:
    payload = context.payload
    organisation = payload.get("organisation") or "hub"
    detected = _moment(payload.get("detecteLe")) or context.created_at
    deadline = _moment(payload.get("echeanceNotification"))
    summary = str(payload.get("resume") or "").strip() or "voir le détail dans la console"
    due = f"avant le {french_moment(deadline)}" if deadline else "dans les 48 heures"
    if overdue:
        subject = f"Incident de sécurité non notifié : délai de 48 heures dépassé ({organisation})"
        first = f"L'incident de sécurité détecté le {french_moment(detected)} devait être notifié {due}"
        first += " et ne l'est toujours pas."
    else:
        subject = f"Incident de sécurité détecté ({organisation})"
        first = f"Un incident de sécurité a été détecté le {french_moment(detected)}. Il doit être notifié {due}."
    return Wording(
        subject=subject,
        body=(
            f"Bonjour,\n\n{first}\n\nCe qui a été constaté : {summary}\n\n"
            "Ce qu'il faut faire : ouvrez l'incident dans la console, qualifiez-le, puis notifiez-le "
            "(ou classez-le s'il n'en est pas un), en indiquant qui a été prévenu."
        ),
        link="/console/incidents",
    )


def _connector_paused(context: Context) -> Wording:
    payload = context.payload
    name = payload.get("connecteur") or "de votre éditeur"
    moment = _moment(payload.get("dateSuspension")) or context.created_at
    return Wording(
        subject=f"Connecteur {name} suspendu après des échecs répétés",
        body=(
            "Bonjour,\n\n"
            f"Le {french_moment(moment)}, Relais a suspendu l'envoi des événements au connecteur « {name} » "
            f"({_plain(payload.get('motif'))}). Les messages en attente sont conservés : aucun n'est perdu.\n\n"
            "Ce qu'il faut faire : vérifiez avec votre éditeur que son point de réception répond, puis "
            "reprenez le connecteur depuis la console (Connecteurs et imports) ou avec "
            f"« relais connecteurs resume {payload.get('connecteur') or ''} »."
        ),
        link="/console/integration",
    )


def _generic(context: Context) -> Wording:
    lines = [f"{_plain(key)} : {value}" for key, value in context.payload.items() if isinstance(value, str | int)]
    return Wording(
        subject="Notification de Relais",
        body="Bonjour,\n\nRelais vous signale un événement.\n\n" + "\n".join(lines),
        link="/console/notifications",
    )


WORDINGS: dict[str, Callable[[Context], Wording]] = {
    INACTIVITY_WARNING: _inactivity_warning,
    INACTIVITY_SUSPENSION: _inactivity_suspension,
    SECURITY_BLOCK: _security_block,
    RGC_NOTICE: _rgc_notice,
    INCIDENT_OPENED: lambda context: _incident(context, overdue=False),
    INCIDENT_OVERDUE: lambda context: _incident(context, overdue=True),
    CONNECTOR_PAUSED: _connector_paused,
}


def word(session: Session, message: OutboxMessage) -> Wording:
    """What the people ``message`` is for read: subject, body and the console page (a path)."""
    context = Context(session, message.recipient, dict(message.payload), message.created_at)
    return WORDINGS.get(message.topic, _generic)(context)


def absolute(link: str, public_url: str) -> str:
    """The console page's address in an e-mail: absolute from the public URL, else as it is."""
    base = public_url.rstrip("/")
    return f"{base}{link}" if base and link.startswith("/") else link


def email_text(wording: Wording, public_url: str) -> str:
    return f"{wording.body}\n\nDans la console : {absolute(wording.link, public_url)}\n\n-- \n{SIGNATURE}\n"


# Filing in the inboxes --------------------------------------------------------------------------


def file(session: Session, message: OutboxMessage, now: datetime) -> int:
    """File one people's notification in the inboxes it reaches (once); how many copies were written."""
    if not notifications.is_for_people(message.recipient) or notifications.is_filed(session, message.id):
        return 0
    return notifications.file_message(session, message, word(session, message), now, besides=_own_copy(message))


def file_pending(session: Session, now: datetime) -> int:
    """File every people's notification of the outbox not filed yet (the caller commits)."""
    return sum(
        notifications.file_message(session, m, word(session, m), now, besides=_own_copy(m))
        for m in notifications.unfiled(session)
    )


def _own_copy(message: OutboxMessage) -> int | None:
    """The agent an inactivity warning to their RGCs is about: they have a copy of their own."""
    agent_id = message.payload.get("agent_id")
    if message.topic == INACTIVITY_WARNING and not message.recipient.startswith("agent:") and isinstance(agent_id, int):
        return agent_id
    return None
