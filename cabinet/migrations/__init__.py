"""Numbered schema migrations: apply them, record the version, refuse a newer schema."""

import importlib
import logging
import pkgutil
import re
from urllib.parse import urlparse

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from peewee import (
    CharField,
    DateTimeField,
    IntegerField,
    IntegrityError,
    Model,
    OperationalError,
    SqliteDatabase,
)
from playhouse.migrate import SchemaMigrator

log = logging.getLogger(__name__)

VERSION_TABLE = "schema_version"


def _discover():
    """Return {number: module} of the migrations in this package (m0001_name.py …)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        match = re.fullmatch(r"m(\d{4})_\w+", info.name)
        if match:
            module = importlib.import_module(f"{__name__}.{info.name}")
            found[int(match.group(1))] = module
    return dict(sorted(found.items()))


class SchemaError(RuntimeError):
    """The database's schema is not one this release can work with."""


class Frozen(Model):
    """Base of the models a migration freezes: the schema as it was then."""

    class Meta:
        legacy_table_names = False


class SchemaVersion(Frozen):
    """One applied migration."""

    version = IntegerField(primary_key=True)
    name = CharField(max_length=100)
    applied_at = DateTimeField()


def create(database, *models):
    """Create frozen models' tables (with their indexes) in `database`."""
    with database.bind_ctx(models, bind_refs=False, bind_backrefs=False):
        database.create_tables(models)


# Discovered after Frozen and create exist: the migrations import them.
MIGRATIONS = _discover()
LATEST = max(MIGRATIONS)


def current_version(database):
    """Return the highest applied migration, or None if versions were never kept."""
    if not database.table_exists(VERSION_TABLE):
        return None
    with database.bind_ctx([SchemaVersion]):
        return (
            SchemaVersion.select(SchemaVersion.version)
            .order_by(SchemaVersion.version.desc())
            .scalar()
            or 0
        )


def _record(database, number, name):
    """Record a migration as applied; False if another process recorded it first."""
    from ..clock import utcnow

    try:
        with database.atomic(), database.bind_ctx([SchemaVersion]):
            SchemaVersion.insert(
                version=number, name=name, applied_at=utcnow()
            ).execute()
    except IntegrityError:
        return False
    return True


def _ours(database):
    """Return the names of the tables of ours that exist (schema_version aside)."""
    return [t for t in database.get_tables() if t != VERSION_TABLE]


def _refuse_newer(version):
    if version is not None and version > LATEST:
        raise SchemaError(
            f"the database schema is at version {version}, newer than this release "
            f"knows ({LATEST}): run the release that upgraded it, or a later one"
        )


def upgrade(database, target=None):
    """Apply the pending migrations in order; return (version before, version after)."""
    target = LATEST if target is None else target
    before = current_version(database)
    _refuse_newer(before)
    if before is None:
        before = infer_version(database) if _ours(database) else 0
        with database.bind_ctx([SchemaVersion]):
            database.create_tables([SchemaVersion])
        # Only numbers this release has: a number held for a migration on
        # another branch is a gap until it lands.
        for number in (n for n in MIGRATIONS if n <= before):
            _record(database, number, f"{MIGRATIONS[number].__name__} (found)")
    migrator = SchemaMigrator.from_database(database)
    for number, module in MIGRATIONS.items():
        if number <= before or number > target:
            continue
        # The version row goes first: a second process upgrading at the same
        # time waits on it and then skips the migration instead of repeating it.
        with migrator.migration_context():
            if not _record(database, number, module.__name__.rsplit(".", 1)[1]):
                continue
            module.upgrade(migrator, database)
        log.info("schema migration %04d applied", number)
    return before, max(before, min(target, LATEST))


def create_latest(database):
    """Create the schema at the latest version (or upgrade an existing one)."""
    from ..models import MODELS

    if current_version(database) is not None or _ours(database):
        return upgrade(database)
    with database.atomic(), database.bind_ctx([*MODELS, SchemaVersion]):
        database.create_tables([*MODELS, SchemaVersion])
        for number, module in MIGRATIONS.items():
            _record(database, number, module.__name__.rsplit(".", 1)[1])
    return 0, LATEST


def schema_of(database):
    """Describe the tables of a database: columns, indexes and foreign keys."""
    described = {}
    for table in _ours(database):
        columns = {
            c.name: (c.data_type.lower(), c.null, c.primary_key)
            for c in database.get_columns(table)
        }
        indexes = {
            i.name: (tuple(i.columns), i.unique)
            for i in database.get_indexes(table)
            if not i.name.startswith("sqlite_autoindex")
        }
        keys = {
            (k.column, k.dest_table, k.dest_column)
            for k in database.get_foreign_keys(table)
        }
        described[table] = {"columns": columns, "indexes": indexes, "keys": keys}
    return described


def _columns(database):
    """Return each table's column names, the contract search's own tables aside."""
    # SQLite keeps the search in FTS5 tables, PostgreSQL in an index: the
    # scratch SQLite database has tables a PostgreSQL one never will.
    return {
        table: set(described["columns"])
        for table, described in schema_of(database).items()
        if not table.startswith("contract_search")
    }


def infer_version(database):
    """Name the migration a database made before versions were kept corresponds to."""
    found = _columns(database)
    for number in reversed(MIGRATIONS):
        scratch = SqliteDatabase(":memory:")
        upgrade(scratch, target=number)
        expected = _columns(scratch)
        scratch.close()
        if expected == found:
            return number
    raise SchemaError(
        "the database has tables, but they match no known schema "
        "version; restore a backup or compare it with the migrations"
    )


def check_version(database):
    """Refuse to run against a schema newer than this release knows; warn if older."""
    try:
        with database.connection_context():
            version = current_version(database)
    except OperationalError as exc:
        # Not reachable yet: /readyz says so; the version is checked on a later start.
        log.warning("schema version not checked: %s", type(exc).__name__)
        return
    _refuse_newer(version)
    if version is not None and version < LATEST:
        log.warning(
            "schema at version %d, this release expects %d: run "
            "`flask --app cabinet db upgrade`",
            version,
            LATEST,
        )


db_cli = AppGroup("db", help="The database schema.")


@db_cli.command("upgrade")
def upgrade_command():
    """Apply the pending schema migrations (safe to repeat)."""
    from ..db import db

    try:
        with db.connection_context():
            before, after = upgrade(db.obj)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    if before == after:
        click.echo(f"Schema is at version {after}: nothing to do.")
    else:
        click.echo(f"Schema upgraded from version {before} to {after}.")


@db_cli.command("version")
def version_command():
    """Print the schema version of the database and the latest this release knows."""
    from ..db import db

    with db.connection_context():
        version = current_version(db.obj)
    shown = "not versioned" if version is None else version
    click.echo(
        f"database: {shown}; latest: {LATEST} "
        f"({current_app.config['DATABASE_URL'].split(':', 1)[0]})"
    )


def create_tables():
    """Create the schema at the latest version, or upgrade an existing one."""
    from ..db import db

    with db.connection_context():
        return create_latest(db.obj)


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database at the latest schema version (safe to run again)."""
    try:
        _, version = create_tables()
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Database ready at schema version {version}: "
        f"{_safe_url(current_app.config['DATABASE_URL'])}"
    )


def _safe_url(url):
    """Show a database URL without its password."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def init_app(app):
    """Check the schema version of the app's database; add the db commands."""
    database = app.extensions["database"]
    check_version(database)
    # A process that forks (gunicorn --preload, RQ's work horse) must not hand a
    # pooled connection to its children.
    database.close_all()
    app.cli.add_command(init_db_command)
    app.cli.add_command(db_cli)
