"""Logs carry ids, never values: tracebacks are reduced to the exception's type.

An exception's text may hold what it was computing with (SQLAlchemy's holds the SQL statement and,
unless ``hide_parameters``, its bound values: a patient id, a LOINC code, a date). Carnet's own
handlers log only the type and the path; this filter does the same for records other libraries
emit with a traceback attached (uvicorn's "Exception in ASGI application").
"""

from __future__ import annotations

import logging
from typing import Any


class TracebacksAsTypes(logging.Filter):
    """Replaces a record's traceback by the name of its exception type (the record still logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            name = record.exc_info[0].__name__
            record.msg = f"{record.getMessage().rstrip()} ({name})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with every handler behind ``TracebacksAsTypes``."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        "handlers": {k: dict(v) for k, v in LOGGING_CONFIG["handlers"].items()},
    }
    config["filters"] = {"tracebacks_as_types": {"()": f"{__name__}.TracebacksAsTypes"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["tracebacks_as_types"]
    # Carnet's own loggers (and any library's) propagate to the root: the same filter applies.
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
