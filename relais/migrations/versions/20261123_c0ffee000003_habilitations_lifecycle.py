"""habilitations lifecycle: existing clients keep working through a transitional identity

No schema change. For every client registered before enforcement, its organisation gets a
subscription per API covering the scopes its clients hold, and the client gets a
transitional technical identity ``*`` habilitated for its scopes (purpose ``transition``):
partner calls whose ``pa-identifiant-agent`` matches no agent are made under it until the
organisation's RGC habilitates its first person (or the operator revokes it). Everything is
written through ``habilitations.lifecycle``, so each step has its audit event (channel cli).
A database without clients (a new install) is left untouched.

Revision ID: c0ffee000003
Revises: c0ffee000002
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from alembic import op
from sqlmodel import Session, select

revision: str = "c0ffee000003"
down_revision: str | None = "c0ffee000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Imported here: the models are only needed when there is data to migrate.
    from habilitations import lifecycle
    from habilitations.policy import subscribable
    from habilitations.roles import Principal
    from relais.core.tables import Client

    now = datetime.now(UTC)
    operator = Principal.command_line()
    with Session(bind=op.get_bind()) as session:
        clients = session.exec(select(Client).order_by(Client.id)).all()
        held: dict[int, set[str]] = {}
        for client in clients:
            held.setdefault(client.organisation_id, set()).update(client.scopes)
        for organisation_id, scopes in held.items():
            for api, covered in subscribable(scopes).items():
                lifecycle.set_subscription(
                    session,
                    operator,
                    organisation_id=organisation_id,
                    api=api,
                    scopes=covered,
                    reference="migration",
                    now=now,
                )
        for client in clients:
            try:
                lifecycle.create_transitional_identity(session, operator, client_id=client.client_id, now=now)
            except lifecycle.LifecycleRefused as refused:
                if refused.code != "hors_souscription":  # a client whose scopes name no served API
                    raise
        session.flush()


def downgrade() -> None:
    # Transitional identities and subscriptions stay: the audit trail refers to them.
    pass
