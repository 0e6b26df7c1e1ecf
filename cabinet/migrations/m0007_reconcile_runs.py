"""Reconciliation runs: a comparison the console asked for, as a job with its report."""

from peewee import (
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
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


def upgrade(migrator, database):
    """Create reconcile_run."""
    create(database, ReconcileRun)
