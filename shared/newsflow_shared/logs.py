"""Logging for every service: structlog on top of the standard library.

Console output for people, JSON lines (``LOG_FORMAT=json``) for log shippers. The
standard library's loggers (FastStream, aiokafka, uvicorn) go through the same
processors so each line says which service wrote it.

Tracebacks are Python's plain ones in both formats. structlog's console default, rich's
traceback with every frame's local variables, took a second of CPU for one error on a
2-core machine, with the event loop (and the logging lock) held all that time, and wrote out
whatever the frames held: a batch's article texts, 175 KB for one error. JSON lines carry the
traceback as text in ``exception``; without that they held only the exception's repr.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(service: str, level: str = "INFO", fmt: str = "console") -> structlog.stdlib.BoundLogger:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderers: list[structlog.types.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if fmt == "json"
        else [
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)
        ]
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka is chatty about every group join at INFO.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    structlog.contextvars.bind_contextvars(service=service)
    return structlog.get_logger(service)
