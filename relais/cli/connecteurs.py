"""The ``relais connecteurs`` command group: configure, watch, replay, test, deliver.

Configuration changes and replays made here are audited (channel ``cli``), like the API's.
Secrets are printed once, at creation or rotation, for the editor's configuration.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import httpx
from sqlmodel import Session, col, select

from adapters.outbound import deliveries, registry
from adapters.outbound.mail import SmtpSender
from adapters.outbound.models import Connector
from adapters.outbound.port import Delivery, Target
from adapters.outbound.webhook import WebhookSender
from adapters.outbound.worker import Worker
from audit.journal import JournalRecorder
from relais.cli.support import fail, load_keys, migrated_database
from relais.core.auditing import AuditDraft
from relais.core.config import Settings, get_settings
from relais.core.db import Database
from relais.core.observability import configure_logging
from relais.core.tables import new_id
from relais.migrate import upgrade


@click.group("connecteurs")
def connecteurs_group() -> None:
    """Connecteurs vers les logiciels des organisations : événements, livraisons, rejeu."""


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    with migrated_database(settings) as database, database.session() as session:
        yield session


def _connector(session: Session, name: str, *, lock: bool = False) -> Connector:
    connector = registry.by_name(session, name, lock=lock)
    if connector is None:
        fail(f"connecteur inconnu : {name}")
    return connector


def _audit(session: Session, operation: str, connector: Connector, now: datetime, reason: str | None = None) -> None:
    draft = AuditDraft(
        channel="cli",
        operation=operation,
        client_id="cli:operateur",
        organisation=registry.organisation_code(session, connector),
        target=connector.name,
        reason=reason,
    )
    JournalRecorder().record(session, draft, request_id=uuid.uuid4().hex, http_status=200, occurred_at=now)


@connecteurs_group.command("create")
@click.argument("name")
@click.option("--organisation", help="Code de l'organisation (ex. CD33) ; absent : connecteur du hub (CSSI).")
@click.option(
    "--url", required=True, help="Point de réception de l'éditeur (https://…), ou smtp://, smtps:// (courriel)."
)
@click.option("--event", "events", multiple=True, help="Type d'événement (répétable) ; « * » pour tous.")
@click.option("--notifications", is_flag=True, help="Porte aussi les notifications des personnes de l'organisation.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None, help="Tentatives avant abandon.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None, help="Délai de réponse (secondes).")
@click.option("--allow-http", is_flag=True, help="Accepte une URL http:// (essai local uniquement).")
def create(
    name: str,
    organisation: str | None,
    url: str,
    events: tuple[str, ...],
    notifications: bool,
    max_attempts: int | None,
    timeout: float | None,
    allow_http: bool,
) -> None:
    """Crée un connecteur webhook et sa première clé de signature (affichée une seule fois)."""
    settings = get_settings()
    keys = load_keys(settings)
    now = datetime.now(UTC)
    with _session(settings) as session:
        try:
            connector, kid, secret = registry.create_connector(
                session,
                keys,
                name=name,
                organisation=organisation,
                url=url,
                events=events,
                notifications=notifications,
                now=now,
                allow_http=allow_http,
            )
        except registry.ConnectorError as exc:
            fail(str(exc))
        connector.max_attempts = max_attempts
        connector.timeout_seconds = timeout
        session.add(connector)
        _audit(session, "connecteurs.creation", connector, now)
        session.commit()
    click.echo(f"Connecteur {name} créé.")
    click.echo(f"Clé de signature (à donner à l'éditeur, affichée une seule fois) : {kid}={secret}")


@connecteurs_group.command("update")
@click.argument("name")
@click.option("--url", default=None, help="Nouveau point de réception.")
@click.option("--event", "events", multiple=True, help="Remplace les types d'événements (répétable).")
@click.option("--notifications/--no-notifications", default=None, help="Porte ou non les notifications.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None)
@click.option("--allow-http", is_flag=True, help="Accepte une URL http:// (essai local uniquement).")
def update(
    name: str,
    url: str | None,
    events: tuple[str, ...],
    notifications: bool | None,
    max_attempts: int | None,
    timeout: float | None,
    allow_http: bool,
) -> None:
    """Modifie un connecteur (URL, événements, notifications, tentatives, délai)."""
    settings = get_settings()
    now = datetime.now(UTC)
    with _session(settings) as session:
        connector = _connector(session, name, lock=True)
        try:
            changed = registry.update_connector(
                connector, now=now, url=url, events=events or None, notifications=notifications, allow_http=allow_http
            )
        except registry.ConnectorError as exc:
            fail(str(exc))
        if max_attempts is not None:
            connector.max_attempts = max_attempts
            changed.append("tentativesMax")
        if timeout is not None:
            connector.timeout_seconds = timeout
            changed.append("delai")
        session.add(connector)
        _audit(session, "connecteurs.modification", connector, now, reason="champs:" + ",".join(changed))
        session.commit()
    click.echo(f"Connecteur {name} modifié : {', '.join(changed) or 'rien'}")


@connecteurs_group.command("rotate-key")
@click.argument("name")
@click.option("--overlap-days", type=click.IntRange(min=0), default=7, show_default=True)
def rotate_key(name: str, overlap_days: int) -> None:
    """Ajoute une clé ; les précédentes signent encore pendant le recouvrement."""
    settings = get_settings()
    keys = load_keys(settings)
    now = datetime.now(UTC)
    with _session(settings) as session:
        connector = _connector(session, name, lock=True)
        kid, secret = registry.rotate_key(session, keys, connector, now, overlap=timedelta(days=overlap_days))
        _audit(session, "connecteurs.rotation_cle", connector, now)
        session.commit()
    click.echo(f"Nouvelle clé (affichée une seule fois) : {kid}={secret}")
    click.echo(f"Les anciennes clés signent encore {overlap_days} jour(s) : configurez la nouvelle chez l'éditeur.")


@connecteurs_group.command("list")
def list_connectors() -> None:
    """Les connecteurs, leur état et leurs messages par statut."""
    settings = get_settings()
    with _session(settings) as session:
        connectors = session.exec(select(Connector).order_by(col(Connector.name))).all()
        if not connectors:
            click.echo("Aucun connecteur.")
        for connector in connectors:
            counts = deliveries.counts(session, connector)
            summary = ", ".join(f"{statut} {count}" for statut, count in counts.items())
            organisation = registry.organisation_code(session, connector) or "hub"
            click.echo(f"{connector.name}  [{organisation}]  {connector.state}  {connector.url}  {summary}")


@connecteurs_group.command("status")
@click.argument("name")
@click.option("--statut", type=click.Choice(list(deliveries.STATUS_OF)), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def status(name: str, statut: str | None, limit: int) -> None:
    """L'état d'un connecteur et ses derniers messages."""
    settings = get_settings()
    with _session(settings) as session:
        connector = _connector(session, name)
        click.echo(
            f"Connecteur {connector.name} : {connector.state}"
            + (f" ({connector.pause_reason})" if connector.pause_reason else "")
        )
        notifications = "oui" if connector.notifications else "non"
        click.echo(f"Événements : {', '.join(connector.events) or 'aucun'} ; notifications : {notifications}")
        click.echo("Messages : " + ", ".join(f"{s} {n}" for s, n in deliveries.counts(session, connector).items()))
        statuses = [deliveries.STATUS_OF[statut]] if statut else None
        for item in deliveries.messages(session, connector, statuses=statuses, limit=limit).messages:
            line = (
                f"{item.created_at.isoformat()}  {deliveries.event_id_of(item)}  {item.topic}  "
                f"{deliveries.STATUT[item.status]}  tentatives {item.attempts}"
            )
            if item.last_error:
                line += f"  dernière erreur : {item.last_error}"
            click.echo(line)


@connecteurs_group.command("replay")
@click.argument("name")
@click.option("--event", "event_id", default=None, help="Rejoue cet événement.")
@click.option("--since", type=click.DateTime(), default=None, help="Début de la plage (date de création).")
@click.option("--until", type=click.DateTime(), default=None, help="Fin de la plage.")
@click.option(
    "--statut",
    "statuts",
    multiple=True,
    type=click.Choice(list(deliveries.STATUS_OF)),
    help="Statuts rejoués pour une plage (défaut : ABANDONNE et EN_ECHEC).",
)
def replay(
    name: str, event_id: str | None, since: datetime | None, until: datetime | None, statuts: tuple[str, ...]
) -> None:
    """Remet un événement, ou une plage, en file de livraison (même identifiant d'événement)."""
    settings = get_settings()
    now = datetime.now(UTC)
    with _session(settings) as session:
        connector = _connector(session, name)
        if event_id:
            found = deliveries.message(session, connector, event_id, lock=True)
            if found is None:
                fail(f"événement inconnu pour {name} : {event_id}")
            deliveries.replay(session, found, now)
            count = 1
        else:
            statuses = [deliveries.STATUS_OF[s] for s in statuts] or [deliveries.DEAD, deliveries.FAILED]
            count = deliveries.replay_range(
                session, connector, now, statuses=statuses, since=_aware(since), until=_aware(until)
            )
        _audit(session, "connecteurs.rejeu", connector, now, reason=f"messages:{count}")
        session.commit()
    click.echo(f"Messages remis en file : {count}")


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@connecteurs_group.command("pause")
@click.argument("name")
def pause(name: str) -> None:
    """Suspend les livraisons (les messages attendent)."""
    _set_state(name, resume=False)


@connecteurs_group.command("resume")
@click.argument("name")
def resume(name: str) -> None:
    """Reprend les livraisons ; les messages en attente partent aussitôt."""
    _set_state(name, resume=True)


def _set_state(name: str, *, resume: bool) -> None:
    settings = get_settings()
    now = datetime.now(UTC)
    with _session(settings) as session:
        connector = _connector(session, name, lock=True)
        if resume:
            waiting = registry.resume(session, connector, now)
            _audit(session, "connecteurs.reprise", connector, now)
            message = f"Connecteur {name} repris ; messages en attente : {waiting}"
        else:
            registry.pause(session, connector, "suspendu par l'opérateur", now)
            _audit(session, "connecteurs.suspension", connector, now)
            message = f"Connecteur {name} suspendu."
        session.commit()
    click.echo(message)


@connecteurs_group.command("worker")
@click.option("--once", is_flag=True, help="Livre ce qui est dû maintenant, puis s'arrête.")
def worker(once: bool) -> None:
    """Livre les messages de l'outbox (plusieurs processus peuvent tourner ensemble)."""
    settings = get_settings()
    # JSON log lines on stderr, stdout keeps the command's own result.
    configure_logging(settings.log_level)
    keys = load_keys(settings)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    sender = WebhookSender()
    try:
        runner = Worker(database, keys, settings, sender, audit=JournalRecorder(), mailer=SmtpSender(settings))
        if once:
            click.echo(f"Messages traités : {runner.run_until_idle()}")
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        click.echo("Livraison en cours (Ctrl-C pour arrêter).")
        runner.run_forever(stop)
    finally:
        sender.close()
        database.dispose()


@connecteurs_group.command("test")
@click.argument("name")
def test(name: str) -> None:
    """Vérifie le point de réception d'un connecteur : joignable, signature vérifiée, accusé."""
    settings = get_settings()
    keys = load_keys(settings)
    now = datetime.now(UTC)
    with _session(settings) as session:
        connector = _connector(session, name)
        target = Target(
            connector=connector.name,
            url=connector.url,
            keys=registry.signing_secrets(session, keys, connector, now),
            timeout_seconds=connector.timeout_seconds or settings.connector_timeout_seconds,
        )
        organisation = registry.organisation_code(session, connector)
    report = check_endpoint(target, organisation)
    for line in report.lines:
        click.echo(line)
    if not report.ok:
        raise SystemExit(1)


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ok = True

    def check(self, passed: bool, label: str, detail: str = "") -> bool:
        self.lines.append(f"[{'OK' if passed else 'ÉCHEC'}] {label}" + (f" : {detail}" if detail else ""))
        self.ok = self.ok and passed
        return passed


def check_endpoint(target: Target, organisation: str | None, client: httpx.Client | None = None) -> Report:
    """Three calls: a signed test event (acknowledged?), the same again (deduplicated?), and one
    with a wrong signature (refused?). Nothing is written to the outbox."""
    report = Report()
    report.lines.append(f"Connecteur {target.connector} → {target.url}")
    if not target.keys:
        report.check(False, "clé de signature", "aucune clé valide : relais connecteurs rotate-key")
        return report
    sender = WebhookSender(client)
    try:
        _exchange(sender, target, organisation, report)
    finally:
        if client is None:
            sender.close()
    report.lines.append("Résultat : " + ("conforme" if report.ok else "non conforme"))
    return report


def _exchange(sender: WebhookSender, target: Target, organisation: str | None, report: Report) -> None:
    event_id = new_id()
    document: dict[str, Any] = {
        "id": event_id,
        "type": "relais.test",
        "format": "relais-evenement-v1",
        "date": datetime.now(UTC).isoformat(),
        "organisation": organisation,
        "donnees": {"message": "Événement de test de Relais, à acquitter sans traitement."},
    }
    delivery = Delivery(event_id=event_id, event_type="relais.test", document=document)
    started = time.perf_counter()
    first = sender.send(target, delivery)
    reachable = first.http_status is not None
    if not report.check(reachable, "joignable", first.error or f"HTTP {first.http_status}"):
        return
    report.check(first.delivered, "événement signé acquitté (2xx)", f"HTTP {first.http_status}, {first.duration_ms} ms")
    again = sender.send(target, delivery)
    report.check(again.delivered, "même événement renvoyé acquitté (dédoublonnage)", f"HTTP {again.http_status}")
    forged = {kid: b"relais-test-mauvaise-cle" for kid in target.keys}
    bad = sender.send(
        Target(target.connector, target.url, forged, target.timeout_seconds),
        Delivery(event_id=new_id(), event_type="relais.test", document={**document, "id": new_id()}),
    )
    report.check(
        bad.http_status is not None and 400 <= bad.http_status < 500,
        "signature invalide refusée (4xx)",
        f"HTTP {bad.http_status}" if bad.http_status else (bad.error or ""),
    )
    report.lines.append(f"Durée totale : {int((time.perf_counter() - started) * 1000)} ms")


@connecteurs_group.command("fake-editor")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8900, show_default=True)
@click.option("--key", "keys", multiple=True, help="KID=SECRET (répétable) : les clés de signature acceptées.")
def fake_editor(host: str, port: int, keys: tuple[str, ...]) -> None:
    """Lance un éditeur factice qui reçoit, vérifie et acquitte les événements."""
    from adapters.outbound.fake_editor import parse_key, serve

    parsed = dict(parse_key(value) for value in keys)
    serve(host, port, parsed)
