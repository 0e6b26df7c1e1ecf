"""The version history of module configurations, started from what exists."""

import json

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from ..params import fingerprinted
from . import Frozen, create


class ModuleConfiguration(Frozen):
    params = TextField()
    is_active = BooleanField()
    created_by = CharField(max_length=100)
    created_at = DateTimeField()


class ConfigurationVersion(Frozen):
    configuration = ForeignKeyField(ModuleConfiguration)
    number = IntegerField()
    action = CharField(max_length=16)
    params = TextField()
    who = CharField(max_length=100)
    created_at = DateTimeField()

    class Meta:
        indexes = ((("configuration", "number"), True),)


def upgrade(migrator, database):
    """Create configuration_version; each configuration gets its version 1."""
    create(database, ConfigurationVersion)
    with database.bind_ctx(
        [ModuleConfiguration, ConfigurationVersion],
        bind_refs=False,
        bind_backrefs=False,
    ):
        for row in ModuleConfiguration.select().order_by(ModuleConfiguration.id):
            params = fingerprinted(json.loads(row.params or "{}"))
            ConfigurationVersion.insert(
                configuration=row.id,
                number=1,
                action="create",
                params=json.dumps(params, ensure_ascii=False),
                who=row.created_by or "",
                created_at=row.created_at,
            ).execute()
