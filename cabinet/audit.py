"""The audit log of the console: every change an operator makes, secrets masked."""

from .models import AuditEntry
from .params import SECRET_PARAMS

MASK = "***"


def masked(value):
    """Return a copy of a JSON-like value with every secret's value masked."""
    if isinstance(value, dict):
        return {
            key: (MASK if item else "") if key in SECRET_PARAMS else masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def record(operator, action, object_type, object_id, before=None, after=None):
    """Write one audit entry (call inside the unit of work that made the change)."""
    return AuditEntry.create(
        operator=operator,
        login=operator.login,
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:127],
        before=masked(before),
        after=masked(after),
    )


def entries(operator_login="", action="", object_type="", start=None, end=None):
    """Select audit entries, newest first, filtered."""
    query = AuditEntry.select()
    if operator_login:
        query = query.where(AuditEntry.login == operator_login)
    if action:
        query = query.where(AuditEntry.action == action)
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if start is not None:
        query = query.where(AuditEntry.created_at >= start)
    if end is not None:
        query = query.where(AuditEntry.created_at < end)
    return query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
