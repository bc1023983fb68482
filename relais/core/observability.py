"""Structured logs and Prometheus metrics. Neither ever carries personal data."""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time of the write.

    Binding the stream object once would keep writing to a stream that was replaced since
    (a daemonised server, a test capturing output) and lose every later line.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr; stdlib loggers (uvicorn, alembic) go through the same renderer.

    stderr, like uvicorn's own default, keeps stdout for what CLI commands print as their
    result (``relais demo --json`` is piped into other tools).
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # connexion logs rejected requests with the offending value (a NIR, a name): our own
    # error handlers log what matters without it.
    logging.getLogger("connexion").setLevel(logging.ERROR)
    # uvicorn's access log repeats our canonical request line, with query strings.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every URL it calls at INFO: the gateway's and connectors' outbound URLs
    # may carry an identifier. Its warnings and errors still come through.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def safe_exception_fields(exc: BaseException) -> dict[str, str | None]:
    """Type and origin of an exception, for a log line.

    Never its message: database and validation errors quote the values they choke on, and
    those values may be a NIR, a name or a jeton.
    """
    origin = exc.__traceback__
    while origin is not None and origin.tb_next is not None:
        origin = origin.tb_next
    where = f"{origin.tb_frame.f_code.co_filename}:{origin.tb_lineno}" if origin else None
    return {"exc_type": type(exc).__name__, "where": where}


class Metrics:
    """One registry per app, so that several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "relais_requests_total",
            "API calls by operation and HTTP status.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "relais_request_duration_seconds",
            "Time to answer an API call, audit included.",
            ["operation"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.audit_latency = Histogram(
            "relais_audit_append_duration_seconds",
            "Time to append and commit an audit event.",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        # The labelled children by label values: prometheus_client looks them up under a lock
        # at each ``labels()``. Operation ids are the specs' (never a path): a bounded set.
        self._answered: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self.audit_batch_size = Histogram(
            "relais_audit_batch_events",
            "Audit events committed together (group commit of the calls that only read or were refused).",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.audit_failures = Counter(
            "relais_audit_failures_total",
            "Calls refused because their audit event could not be written.",
            registry=self.registry,
        )

    def answered(self, operation: str, status: int, seconds: float) -> None:
        """Count a call answered and its duration."""
        children = self._answered.get((operation, status))
        if children is None:
            children = self._answered[(operation, status)] = (
                self.requests.labels(operation=operation, status=str(status)),
                self.latency.labels(operation=operation),
            )
        children[0].inc()
        children[1].observe(seconds)
