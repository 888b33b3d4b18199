"""Structured logging: every log record carries the running task's execution, task and step."""

from __future__ import annotations

import logging
from typing import Any

from stent.engine.context import current_task
from stent.errors import ConfigurationError

_FIELDS = ("stent_execution_id", "stent_task_id", "stent_step")
_installed_factory: Any = None


def _add_fields(record: logging.LogRecord) -> None:
    ctx = current_task()
    if ctx is None:
        values: tuple[object, ...] = ("-", "-", "-")
    else:
        values = (ctx.execution_id, ctx.task_id, ctx.current_step)
    for name, value in zip(_FIELDS, values):
        if not hasattr(record, name):
            setattr(record, name, value)


class StentContextFilter(logging.Filter):
    """Adds ``stent_execution_id``, ``stent_task_id`` and ``stent_step`` (``-`` outside a task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _add_fields(record)
        return True


def install_structured_logging(logger: logging.Logger | None = None) -> None:
    """Make every log record carry stent's task fields, so format strings may name them.

    Records logged inside a running task carry its execution id, task id and current step; all others carry
    ``-``.  The fields are added when a record is created, so records from any logger (not only ``logger``
    and its children) can be formatted with them.  Calling it twice is harmless.
    """
    global _installed_factory
    if logger is not None and not isinstance(logger, logging.Logger):
        raise ConfigurationError(
            f"install_structured_logging() takes a logging.Logger, got {type(logger).__name__};"
            " pass logging.getLogger() for the root logger"
        )
    current = logging.getLogRecordFactory()
    if current is not _installed_factory:
        previous = current

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _add_fields(record)
            return record

        _installed_factory = factory
        logging.setLogRecordFactory(factory)
    if logger is not None and not any(isinstance(f, StentContextFilter) for f in logger.filters):
        logger.addFilter(StentContextFilter())
