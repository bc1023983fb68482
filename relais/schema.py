"""Every table of Relais on one metadata, for Alembic and for the tests' schema resets.

Tables are declared next to the code that owns them; importing this module registers them
all. A new table module is added here.
"""

from __future__ import annotations

import adapters.france_travail.models
import adapters.inbound.models
import adapters.outbound.models  # noqa: F401
import audit.incident_models
import audit.models  # noqa: F401
import habilitations.campaign_models
import habilitations.login_models
import habilitations.models
import habilitations.notification_models
import habilitations.policy_cache  # noqa: F401
import parcours.diagnostic_tables
import parcours.tables  # noqa: F401
import relais.core.outbox  # noqa: F401
from relais.core.tables import metadata

__all__ = ["metadata"]
