"""Structured logs: one line per event on standard error, JSON by default.

structlog renders the events; the standard library's loggers (uvicorn, alembic)
go through the same renderer. A redaction step masks every field whose name
suggests a credential, and any value that looks like a bearer header or a URL
with a token in its query, so tokens, cookies and passwords never reach a log.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|cookie|password|secret|authorization|code|session_id)",
                          re.IGNORECASE)
_SECRET_VALUES = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 **********"),
    (re.compile(r"(?i)([?&](token|code|key|session)=)[^&\s\"']+"), r"\1**********"),
    (re.compile(r"(/(setup|invite|shared|login/verify)/)[A-Za-z0-9_-]{16,}"), r"\1**********"),
]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for pattern, repl in _SECRET_VALUES:
            value = pattern.sub(repl, value)
    return value


def redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask credential fields and credential-looking values."""
    event.pop("color_message", None)  # uvicorn's duplicate with terminal colour codes
    for key in list(event):
        if key != "event" and _SECRET_KEYS.search(key) and event[key] not in (None, ""):
            event[key] = "**********"
        else:
            event[key] = _scrub(event[key])
    return event


class ShutdownCancellation(logging.Filter):
    """uvicorn logs a request still streaming when its graceful shutdown times out
    as an error with a traceback; it is an expected end, so say it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args, record.exc_info = "request_cut_at_shutdown", (), None
        return True


def configure(level: str = "info", fmt: str = "json") -> None:
    """Set up structlog and the standard library's logging. Safe to call twice."""
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ShutdownCancellation) for f in error_log.filters):
        error_log.addFilter(ShutdownCancellation())
    # Our own access log (gateway middleware) logs paths without query strings.
    logging.getLogger("uvicorn.access").disabled = True
