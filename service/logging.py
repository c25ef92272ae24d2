"""Logging: structlog JSON lines (or a console renderer on a terminal), secrets never, PII masked.

aiokafka's and httpx's standard-library records go through the same
processors, so one process writes one format. Context (event id, partition,
offset) is bound per message in one context variable and cleared after.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, TextIO

import structlog
from pydantic_core import to_json
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+)")
_SECRET_KEYS = ("password", "secret", "token", "authorization", "api_key")
# Phone numbers look like ids and coupon codes in free text, so they are masked by key.
_PHONE_KEYS = ("mobile", "phone")


def mask_text(text: str) -> str:
    """Mask e-mail addresses in free text (the domain stays, for support)."""
    return _EMAIL.sub(r"\1***@\2", text)


def mask_phone(value: str) -> str:
    """Keep the first two and last two characters of a phone number."""
    return value[:2] + "*" * max(len(value) - 4, 0) + value[-2:] if len(value) > 4 else "****"


@functools.lru_cache(maxsize=1024)
def _key_kind(key: str) -> str:
    # Keys are a small fixed set (the code's own), so each is classified once.
    lowered = key.lower()
    if any(word in lowered for word in _SECRET_KEYS):
        return "secret"
    if any(word in lowered for word in _PHONE_KEYS):
        return "phone"
    return "other"


def mask_pii(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: drop secret-looking keys, mask phone-number keys and e-mails anywhere."""
    for key, value in event_dict.items():
        kind = _key_kind(key)
        if kind == "secret":
            event_dict[key] = "***"
        elif kind == "phone" and value is not None:
            event_dict[key] = mask_phone(str(value))
        elif isinstance(value, str) and "@" in value:
            event_dict[key] = mask_text(value)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        # structlog's contextvars too: a caller may bind its own (the service binds none).
        structlog.contextvars.merge_contextvars,
        merge_event_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_pii,
    ]


def _json_line(event_dict: EventDict, **_: Any) -> str:
    # pydantic-core's encoder writes a line in a tenth of json.dumps' time (which takes
    # its pure-Python path once given a fallback); what it cannot encode is written as its
    # repr, as structlog's own fallback does.
    return to_json(event_dict, fallback=repr).decode()


class _NamedWriter(structlog.WriteLogger):
    """A line writer that knows its logger's name, for ``add_logger_name``."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto", *, cache: bool = False
) -> None:
    """Configure structlog and the standard library once, at process start.

    The service's own lines go from structlog straight to stderr: the standard library's
    handler chain (a record, a lock, a formatter) cost more than the line itself under
    load. aiokafka's and httpx's records still come through ``logging``, rendered by the
    same processors. ``cache=True`` (the running service) builds each logger once instead
    of on every call; tests leave it off so ``capture_logs`` sees loggers created before it.
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer(serializer=_json_line)
    )
    shared = _shared_processors()
    stream = sys.stderr
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=lambda name="", *_: _NamedWriter(stream, str(name)),
        # A line below the level costs a method call that returns, not the chain.
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    # Process, thread and multiprocessing names are never written: do not look them up
    # for every record (a getpid() per line is measurable under load).
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Their INFO chatter is noise at our INFO; warnings still come through.
    for noisy in ("aiokafka", "httpx", "httpcore", "aiohttp.access", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger named for its module."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


EVENT_FIELDS = ("topic", "partition", "offset", "event_id", "return_type", "attempt", "replay_id")
"""The correlation fields of one message; only these are bound per message."""
_EVENT_FIELD_SET = frozenset(EVENT_FIELDS)


_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
_event_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "return_handler_event_context", default=_NO_FIELDS
)
"""The current message's correlation fields: one variable, set whole, never mutated."""


def merge_event_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: the current message's correlation fields, under the line's own keys."""
    for key, value in _event_context.get().items():
        event_dict.setdefault(key, value)
    return event_dict


def event_context() -> Mapping[str, Any]:
    """The correlation fields bound for the current message (empty between messages)."""
    return _event_context.get()


def bind_event_context(**fields: Any) -> None:
    """Bind correlation fields (event id, topic, partition, offset) for this message."""
    # One context variable set whole: structlog's own binding sets and later unsets a
    # variable per field, several times per message on the hot path.
    _event_context.set(_checked_fields(fields))


def add_event_context(**fields: Any) -> None:
    """Add fields to the current message's context (known only after parsing, say)."""
    _event_context.set({**_event_context.get(), **_checked_fields(fields)})


def clear_event_context() -> None:
    """Forget the current message's correlation fields."""
    _event_context.set(_NO_FIELDS)


def _checked_fields(fields: dict[str, Any]) -> dict[str, Any]:
    if not _EVENT_FIELD_SET.issuperset(fields):
        raise ValueError(f"not an event context field: {sorted(set(fields) - _EVENT_FIELD_SET)}")
    return fields


__all__ = [
    "EVENT_FIELDS",
    "add_event_context",
    "bind_event_context",
    "clear_event_context",
    "configure_logging",
    "event_context",
    "get_logger",
    "mask_pii",
    "mask_text",
    "merge_event_context",
]
