"""The periodic jobs the app runs while it is up (see ``api.periodic``).

The domains expose plain functions taking what they need; this shell module schedules them.
A failed run is logged and retried at the next interval.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from api.periodic import PeriodicJob
from api.services import Services
from audit.checkpoints import create_checkpoint
from audit.detection import run_detection

log = structlog.get_logger("relais.jobs")


def _checkpoint(services: Services, wait: Callable[[float], bool]) -> None:
    create_checkpoint(services.database, services.settings, now=services.clock())


def _detection(services: Services, wait: Callable[[float], bool]) -> None:
    report = run_detection(services.database, services.settings, now=services.clock, sleep=wait)
    if report.opened:
        log.warning("incidents_opened", count=len(report.opened), incidents=report.opened)


# Sequences pending events and signs a checkpoint every RELAIS_AUDIT_CHECKPOINT_INTERVAL_SECONDS.
CHECKPOINT_JOB = PeriodicJob(
    "checkpoints", lambda services: services.settings.audit_checkpoint_interval_seconds, _checkpoint
)
# Evaluates the detection rules; a failed run restarts from its watermark.
DETECTION_JOB = PeriodicJob(
    "detection", lambda services: services.settings.audit_detection_interval_seconds, _detection
)
