"""People's notifications by e-mail: the SMTP implementation of the delivery port.

A connector whose url is ``smtp://host:port`` (STARTTLS when the server offers it) or
``smtps://host:port`` (TLS from the start) sends each notification as a plain-text message to
the addresses the worker resolved (the agent, the organisation's RGCs or RSSIs, the CSSIs).
The ``Message-ID`` is derived from the event id, so a message sent twice after a lost
acknowledgement is recognisable as the same one. The text is the one the console inbox shows
(``adapters.outbound.notices``), with the console page's absolute address.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from adapters.outbound.port import Delivery, Outcome, Target
from relais.core.config import Settings

SUBJECTS = {
    "connecteurs.connecteur.suspendu": "Connecteur suspendu après des échecs répétés",
}


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, target: Target, delivery: Delivery) -> Outcome:
        if not target.recipients:
            return Outcome(False, error="aucune adresse de courriel")
        message = compose(delivery, sender=self.settings.notification_from, recipients=target.recipients)
        parts = urlsplit(target.url)
        started = time.perf_counter()
        try:
            if parts.scheme == "smtps":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    parts.hostname or "",
                    parts.port or 465,
                    timeout=target.timeout_seconds,
                    context=ssl.create_default_context(),
                )
            else:
                client = smtplib.SMTP(parts.hostname or "", parts.port or 25, timeout=target.timeout_seconds)
            with client:
                client.ehlo()
                if parts.scheme == "smtp" and client.has_extn("starttls"):
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                if self.settings.smtp_username:
                    client.login(self.settings.smtp_username, self.settings.smtp_password)
                client.send_message(message)
        except smtplib.SMTPResponseException as exc:
            return Outcome(False, http_status=None, error=f"SMTP {exc.smtp_code}", duration_ms=_since(started))
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome(False, error=f"SMTP indisponible ({type(exc).__name__})", duration_ms=_since(started))
        return Outcome(True, duration_ms=_since(started))


def compose(delivery: Delivery, *, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """The e-mail of a notification: its French wording when the worker gave one (every people's
    notification, ``adapters.outbound.notices``), else the event's fields as they are."""
    document = delivery.document
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = f"<{delivery.event_id}@relais>"
    if delivery.subject and delivery.text:
        message["Subject"] = f"[Relais] {delivery.subject}"
        message.set_content(delivery.text)
        return message
    message["Subject"] = f"[Relais] {SUBJECTS.get(delivery.event_type, delivery.event_type)}"
    lines = [
        f"Type : {delivery.event_type}",
        f"Organisation : {document.get('organisation') or 'hub'}",
        f"Date : {document.get('date')}",
        "",
        *_lines(document.get("donnees") or {}),
        "",
        "Message automatique de Relais. Identifiant : " + delivery.event_id,
    ]
    message.set_content("\n".join(lines))
    return message


def _lines(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return [json.dumps(data, ensure_ascii=False)]
    return [
        f"{key} : {value if isinstance(value, str | int | float) else json.dumps(value, ensure_ascii=False)}"
        for key, value in data.items()
    ]


def _since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
