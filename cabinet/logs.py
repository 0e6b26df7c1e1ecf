"""Logging: one line per event, text or JSON, naming the order and contract."""

import json
import logging
from datetime import UTC, datetime

# The attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _extras(record):
    """Return the fields a log call added with `extra=` (order_id, contract, …)."""
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Format a record as one line of text, extra fields as key=value at the end."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record):
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{line} [{extras}]" if extras else line
        # A traceback stays one event: grep and log shippers see one line.
        return line.replace("\n", "\\n")


def formatter(log_format):
    """Return the formatter a LOG_FORMAT setting names (text or json)."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level="INFO", log_format="text"):
    """Send every logger's records to stderr, one line each, in the chosen format."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_cabinet", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._cabinet = True
        root.addHandler(handler)
    handler.setFormatter(formatter(log_format))
    root.setLevel(level)
