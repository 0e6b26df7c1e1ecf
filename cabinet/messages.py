"""Messages kept to be read later (notices): stored as the message and its values,
put in words in the reader's language when shown, not in the language of the
moment they were made (a job's, a callback's: the default one)."""

import json

from flask_babel import LazyString, gettext

# A stored message is a JSON object {"m": msgid, "a": {name: value}}; a value is
# text or such an object (a decline's reason inside a charge's notice).
_MARK = '{"m": '


def _encoded(value):
    if isinstance(value, LazyString) and value._args:
        return {
            "m": value._args[0],
            "a": {name: _encoded(item) for name, item in value._kwargs.items()},
        }
    return str(value)


def keep(text):
    """Return the text to store for a message: a lazy one as its msgid and values."""
    encoded = _encoded(text)
    return (
        encoded if isinstance(encoded, str) else json.dumps(encoded, ensure_ascii=False)
    )


def _worded(value):
    if isinstance(value, dict):
        args = {name: _worded(item) for name, item in value.get("a", {}).items()}
        return gettext(value["m"], **args)
    return value


def shown(stored):
    """Put a stored message in words in the current language (old plain text as is)."""
    if not stored or not stored.startswith(_MARK):
        return stored or ""
    try:
        return _worded(json.loads(stored))
    except (ValueError, KeyError, TypeError):
        return stored
