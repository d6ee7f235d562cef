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
import time

import structlog

REPEATS_EVERY = 60.0
"""Seconds in which a Kafka client's error of one kind is logged once (:class:`QuietRepeats`)."""


class QuietRepeats(logging.Filter):
    """The Kafka client's warnings and errors of one kind (logger and message), once a minute, with how many like it
    were left out.

    aiokafka logs every failed attempt while Kafka is away: one idle ingest replica wrote ~150 error lines a second
    ("Unable connect to node", "Unable to update metadata", "Failed fetch messages", ...), 13,000 in an 85 s outage,
    none of them the service's own, and its ``/ready`` already said "Kafka does not answer". Set on the handler:
    a logger's own filters do not see what its children (``aiokafka.consumer.fetcher``) log.
    """

    def __init__(self, prefix: str = "aiokafka", every: float = REPEATS_EVERY) -> None:
        super().__init__()
        self.prefix, self.every = prefix, every
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefix):
            return True
        key, now = (record.name, str(record.msg)), time.monotonic()
        since, left_out = self._seen.get(key, (-self.every, 0))
        if now - since < self.every:
            self._seen[key] = (since, left_out + 1)
            return False
        if len(self._seen) >= 1_000:  # messages formatted before logging would each be a kind of their own
            self._seen.clear()
        self._seen[key] = (now, 0)
        if left_out:  # no "%" added: the message's own placeholders take its arguments as before
            record.msg = f"{record.msg} (and {left_out} more like it in the last minute)"
        return True


_as_json = False  # what configure_logging last chose: say_at_start writes its lines the same way


def say_at_start(message: str, *, error: bool = True) -> None:
    """A service's word before it serves, most often its last (Kafka, the database or a setting unusable): a JSON
    record where ``LOG_FORMAT=json``, else ``error: <message>``. They were plain text either way, and a log shipper
    parsing JSON misread or dropped the very lines that say why a pod crash-loops."""
    if _as_json:  # CRITICAL: the reason a service exits is said at any LOG_LEVEL, as the plain line always was
        logging.getLogger("newsflow.start").log(logging.CRITICAL if error else logging.INFO, message)
    else:
        print(f"error: {message}" if error else message, file=sys.stderr, flush=True)


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
    global _as_json
    _as_json = fmt == "json"
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(QuietRepeats())
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
