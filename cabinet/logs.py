"""Logging: one line per event, text or JSON, naming the order and contract."""

import json
import logging
import re
from datetime import UTC, datetime

# The attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# Characters that could end a line or rewrite one where a log is read: C0 and C1
# controls (CR, LF, ESC, NEL, …), DEL, the Unicode line and paragraph separators,
# and the bidi overrides that reorder what a terminal shows. A callback's
# Order_ID is the sender's text: with a raw CR in it, it could write a line of
# its own into our log.
_CONTROLS = [
    *range(0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_SHORT = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
# Text logs spell each as Python would (\r, \x1b, \u2028); JSON spells the ones
# json.dumps leaves raw (it escapes C0 itself) as \uXXXX, still valid JSON.
_TEXT_ESCAPES = {
    c: _SHORT.get(c, f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROLS
}
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in _CONTROLS if c >= 0x20}


# A sign-in handoff's token is a credential in its URL's path: the access lines
# of werkzeug and gunicorn (and a traceback naming the URL) must not keep it.
_HANDOFF_TOKEN = re.compile(r"(/handoff/)[^\s?\"'#]+")


def redact(text):
    """Replace the token of every /handoff/<token> path in `text` with ***."""
    return _HANDOFF_TOKEN.sub(r"\1***", text)


def escape_controls(text):
    """Spell every control character of `text` as an escape, so it stays one line."""
    return text.translate(_TEXT_ESCAPES)


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
            "message": redact(record.getMessage()),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str).translate(
            _JSON_ESCAPES
        )


class TextFormatter(logging.Formatter):
    """Format a record as one line of text, extra fields as key=value at the end."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record):
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{line} [{extras}]" if extras else line
        # One event, one line: a traceback, and a sender's text in the message,
        # its arguments or the extras, cannot start a line of its own.
        return escape_controls(redact(line))


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
