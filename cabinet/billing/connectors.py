"""Billing connectors of a module instance: kinds, parameters, audit, tests."""

import base64
import re
import secrets
from urllib.parse import urlsplit

from peewee import IntegrityError

from ..clock import utcnow
from ..db import write_unit
from ..errors import CabinetError, Conflict, NotFound
from ..models import AuditEntry, BillingConnector
from . import protocols

EVENTS = ("payment.credited", "payment.reversed", "refund.completed")
YES_NO = ("yes", "no")


class ConnectorError(CabinetError):
    """A connector parameter that cannot be saved, with the reason."""


def _url(value):
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectorError("url: an http:// or https:// address")
    if parts.username or parts.password:
        # A URL is shown on pages and in logs; credentials have their own keys.
        raise ConnectorError("url: no login or password in it (use their keys)")
    return value


def _yes_no(value):
    value = value.strip().lower()
    if value not in YES_NO:
        raise ConnectorError("yes or no")
    return value


def _seconds(value):
    try:
        seconds = float(value)
    except ValueError:
        raise ConnectorError("a number of seconds") from None
    if not 1 <= seconds <= 120:
        raise ConnectorError("1 to 120 seconds")
    return value.strip()


def _concurrency(value):
    if not value.strip().isdigit() or not 1 <= int(value) <= 64:
        raise ConnectorError("a whole number from 1 to 64")
    return value.strip()


def _text(value):
    if len(value) > 200 or any(ord(c) < 32 for c in value):
        raise ConnectorError("at most 200 printable characters")
    return value


def _whsec(value):
    if not value.startswith("whsec_"):
        raise ConnectorError("a whsec_… secret (leave it out to have one made)")
    try:
        key = base64.b64decode(value[6:], validate=True)
    except ValueError:
        raise ConnectorError("whsec_ and base64") from None
    if not 24 <= len(key) <= 64:
        raise ConnectorError("24 to 64 bytes after whsec_")
    return value


def _events(value):
    chosen = [e for e in re.split(r"[\s,]+", value.strip()) if e]
    unknown = sorted(set(chosen) - set(EVENTS))
    if unknown or not chosen:
        raise ConnectorError(f"events among {', '.join(EVENTS)}")
    return " ".join(e for e in EVENTS if e in chosen)


def new_secret():
    """Make a Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# Each kind: its keys with (validator, default); a default of None is required.
KINDS = {
    "osmp": {
        "url": (_url, None),
        "login": (_text, ""),
        "password": (_text, ""),
        "check_first": (_yes_no, "no"),
        "cancel": (_yes_no, "no"),
        "timeout": (_seconds, "30"),
        "concurrency": (_concurrency, "4"),
    },
    "webhook": {
        "url": (_url, None),
        "secret": (_whsec, ""),
        "events": (_events, " ".join(EVENTS)),
        "timeout": (_seconds, "30"),
        "concurrency": (_concurrency, "4"),
    },
}
# Written, never shown: pages, the CLI and the audit log show a mask.
SECRET_KEYS = {"password", "secret"}
MASK = "***"


def validate(kind, values, keep=None):
    """Check a kind's parameters; fill defaults, and absent secrets from `keep`."""
    if kind not in KINDS:
        raise ConnectorError(f"kind: one of {', '.join(KINDS)}")
    spec = KINDS[kind]
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise ConnectorError(
            f"unknown key {unknown[0]!r} for {kind}: {', '.join(spec)}"
        )
    clean = {}
    for key, (check, default) in spec.items():
        value = str(values.get(key, "")).strip()
        if not value and key in SECRET_KEYS and keep:
            value = keep.get(key, "")
        if not value:
            if default is None:
                raise ConnectorError(f"{key}: required")
            clean[key] = default
            continue
        try:
            clean[key] = check(value)
        except ConnectorError as exc:
            raise ConnectorError(f"{key}: {exc.message}") from None
    if kind == "webhook" and not clean["secret"]:
        clean["secret"] = new_secret()
    return clean


def parse_assignments(assignments):
    """Turn ["key=value", …] into a dict; raise ConnectorError on a bad item."""
    values = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConnectorError(f"expected KEY=VALUE, got {item!r}")
        values[key.strip()] = value
    return values


def shown_params(params):
    """Return the parameters with every secret masked (pages, CLI, audit)."""
    return {
        k: (MASK if v else "") if k in SECRET_KEYS else v for k, v in params.items()
    }


def _audit(who, action, connector, before=None, after=None):
    """Write an audit entry of a connector change (inside the change's unit)."""
    operator = who if not isinstance(who, str) else None
    AuditEntry.create(
        operator=operator,
        login=operator.login if operator else who,
        action=action,
        object_type="billing_connector",
        object_id=f"{connector.instance.code}/{connector.name}",
        before=before and shown_params(before),
        after=after and shown_params(after),
    )


def add_connector(instance, name, kind, values, who="cli"):
    """Save a connector of an instance; its secret is made if a webhook has none."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name or ""):
        raise ConnectorError("name: lower-case letters, digits, '-' and '_'")
    clean = validate(kind, values)
    try:
        with write_unit():
            connector = BillingConnector.create(
                instance=instance,
                name=name,
                kind=kind,
                params=clean,
                created_by=str(who),
            )
            _audit(who, "billing_connector.create", connector, after=clean)
    except IntegrityError:
        raise Conflict(f"connector {name!r} exists already") from None
    return connector


def update_connector(connector, values, who="cli", is_active=None):
    """Replace a connector's parameters; an absent secret keeps the old one."""
    clean = validate(connector.kind, values, keep=connector.params)
    with write_unit():
        changes = {"params": clean, "updated_at": utcnow()}
        if is_active is not None:
            changes["is_active"] = bool(is_active)
        BillingConnector.update(changes).where(
            BillingConnector.id == connector.id
        ).execute()
        _audit(who, "billing_connector.update", connector, connector.params, clean)
    return BillingConnector.get_by_id(connector.id)


def connectors_of(instance):
    """List an instance's connectors by name."""
    return list(
        BillingConnector.select()
        .where(BillingConnector.instance == instance)
        .order_by(BillingConnector.name)
    )


def get_connector(instance, name):
    """Return an instance's connector by name or raise NotFound."""
    connector = BillingConnector.get_or_none(
        BillingConnector.instance == instance, BillingConnector.name == name
    )
    if connector is None:
        raise NotFound(f"no connector {name!r} in {instance.code!r}")
    return connector


def test_connector(connector, account=None):
    """Ask the billing once: OSMP `check` for an account, or a signed webhook ping."""
    return protocols.probe(connector, account)
