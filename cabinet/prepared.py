"""Hot queries whose SQL peewee builds once per database, then runs with new values."""

import weakref

from peewee import Value

from .db import db


class _Slot:
    """Where a value of each run goes in a prepared query's parameters."""

    __slots__ = ("name", "convert")

    def __init__(self, name, convert):
        self.name, self.convert = name, convert


class Prepared:
    """A peewee query of fixed shape, built to SQL once per database.

    peewee builds a query's SQL anew on every run, and on the hot paths that costs
    more than running it (the callback's four-table select takes far longer to
    build than SQLite takes to run it; README, Benchmarks). `build(slot)` returns
    the query with `slot(name)` wherever a value changes from run to run;
    `slot(name, field)` converts the value as the field would (JSON, dates). Only
    values go through slots: the SQL text never depends on them.
    """

    _every = weakref.WeakSet()  # for build_all()

    def __init__(self, build):
        self._build = build
        self._compiled = None  # (database, query, parameters with slots)
        Prepared._every.add(self)

    @classmethod
    def build_all(cls):
        """Build every prepared query's SQL for the current database now.

        A forking worker calls it once, so its work horses inherit the SQL instead
        of each building it again. It opens no connection.
        """
        for prepared in list(cls._every):
            prepared._compile()

    def _compile(self):
        database = db.obj
        compiled = self._compiled
        if compiled is None or compiled[0] is not database:
            query = self._build(
                lambda name, field=None: Value(
                    _Slot(name, field.db_value if field else None), converter=False
                )
            )
            sql, parameters = query.sql()
            compiled = self._compiled = (database, query, sql, parameters)
        return compiled

    def _run(self, values):
        database, query, sql, parameters = self._compile()
        bound = [
            (
                (p.convert(values[p.name]) if p.convert else values[p.name])
                if isinstance(p, _Slot)
                else p
            )
            for p in parameters
        ]
        return query, database.execute_sql(sql, bound)

    def first(self, **values):
        """Run a select; return its first row as the query would (models), or None."""
        rows = self.all(**values)  # all rows (at most one): the statement ends
        return rows[0] if rows else None

    def all(self, **values):
        """Run a select; return its rows as the query would (models)."""
        query, cursor = self._run(values)
        return list(query._get_cursor_wrapper(cursor))

    def tuples(self, **values):
        """Run a statement; return its rows as plain tuples (e.g. of RETURNING)."""
        _, cursor = self._run(values)
        return cursor.fetchall()

    def execute(self, **values):
        """Run a write; return the number of rows it changed."""
        _, cursor = self._run(values)
        return cursor.rowcount
