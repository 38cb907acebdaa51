"""Request-tagged logging: `%(request)s` in any format string.

`RequestIdFilter` reads the request of the current context, which the `Site`
sets for the handler and re-enters for each piece of a streamed body, so
every record emitted on behalf of a request carries its id on every worker type.
"""

from __future__ import annotations

import logging

from .request import current_request_var

LOG_FORMAT = "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds `record.request`: the current request id, or `-` outside requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request_var.get()
        record.request = request.request_id if request is not None else "-"
        return True


def logging_config(level: str = "INFO") -> dict[str, object]:
    """A `logging.config.dictConfig` dict: everything to stderr, request-tagged."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestIdFilter}},
        "formatters": {"precise": {"format": LOG_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "precise",
                "filters": ["request"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "propagate": False},
        },
    }
