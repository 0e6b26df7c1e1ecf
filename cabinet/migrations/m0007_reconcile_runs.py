"""Reconciliation runs (a comparison as a job, with its report); the configuration
history's plain SHA-256 fingerprints of secrets made unrecoverable."""

import hashlib
import hmac
import json
import secrets

from peewee import (
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from . import Frozen, create


class ModuleInstance(Frozen):
    code = CharField(max_length=64, unique=True)


class ReconcileRun(Frozen):
    instance = ForeignKeyField(ModuleInstance)
    day_from = DateField()
    day_to = DateField()
    fix = BooleanField(default=False)
    who = CharField(max_length=100)
    status = CharField(max_length=16, default="queued")
    report = TextField(null=True)
    error = CharField(max_length=500, null=True)
    created_at = DateTimeField()
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)


class ConfigurationVersion(Frozen):
    number = IntegerField()
    params = TextField()


# The secrets' names as the history spells them (cabinet.params.SECRET_PARAMS).
SECRETS = ("password", "login")


def upgrade(migrator, database):
    """Create reconcile_run; hide the history's plain SHA-256 fingerprints."""
    create(database, ReconcileRun)
    # 8 hex digits of a plain SHA-256 of a short login are undone by trying every
    # login. Each becomes a keyed hash of itself under a salt forgotten at once:
    # versions of one secret still match each other, nothing recovers the secret.
    salt = secrets.token_bytes(32)

    def hidden(key, value):
        if key in SECRETS and str(value).startswith("sha256:"):
            return (
                "old:" + hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()[:16]
            )
        return value

    with database.bind_ctx([ConfigurationVersion], bind_refs=False):
        for row in ConfigurationVersion.select():
            params = json.loads(row.params or "{}")
            kept = {key: hidden(key, value) for key, value in params.items()}
            if kept != params:
                ConfigurationVersion.update(
                    params=json.dumps(kept, ensure_ascii=False)
                ).where(ConfigurationVersion.id == row.id).execute()
