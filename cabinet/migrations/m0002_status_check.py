"""The status check: each order's check schedule, and the runs of scheduled tasks."""

from peewee import CharField, DateTimeField, IntegerField, TextField

from . import Frozen, create


class TaskRun(Frozen):
    task = CharField(max_length=64)
    slot = CharField(max_length=64)
    trigger = CharField(max_length=16)
    started_at = DateTimeField()
    finished_at = DateTimeField(null=True)
    looked_at = IntegerField()
    changed = IntegerField()
    errors = IntegerField()
    note = TextField(null=True)

    class Meta:
        indexes = ((("task", "slot"), True), (("task", "started_at"), False))


def upgrade(migrator, database):
    """Add transaction.check_attempts and next_check_at; create task_run."""
    migrator.migrate(
        migrator.add_column("transaction", "check_attempts", IntegerField(default=0)),
        migrator.add_column("transaction", "next_check_at", DateTimeField(null=True)),
        migrator.add_index("transaction", ("status", "next_check_at")),
    )
    create(database, TaskRun)
