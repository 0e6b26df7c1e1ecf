"""Contracts from the ISP's billing by CSV: read, check every row, write in batches.

Fields are checked by contract_sync (one set of rules for the API and the
import). Every row is checked in memory against the contracts read in one
query before anything is written, so a refused row stops the file before its
first write; the writes go in batches (a multi-row INSERT, an UPDATE … FROM
VALUES), all in one unit (all or nothing: SQLite's write lock is held for the
seconds the batches take, not for the reading and checking) or, partial, one
unit a batch.
"""

import csv
import gc
import os
import re
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context

from peewee import IntegrityError, Value
from werkzeug.security import check_password_hash, generate_password_hash

from . import accounts, contract_sync
from .clock import utcnow
from .db import db, write_unit
from .errors import BadRequest, Conflict
from .models import Contract

COLUMNS = ("number", "name", "email", "phone", "password", "balance", "status")
# Columns whose empty cell clears the value (the billing has none); any other
# empty cell means "not given": the contract keeps what it has.
CLEARED_WHEN_EMPTY = ("email", "phone")
LINE_LENGTH_MAX = 4096
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
ROWS_MAX = 1_000_000
# Rows per statement: 14 columns x 1000 stays under SQLite's 32766 variables.
BATCH = 1000
# Fewer passwords than this are hashed here; more in a pool of processes.
POOL_FROM = 32
# What an update may set, in the order of the VALUES rows (id first).
_UPDATED = ("name", "email", "phone", "status", "billing_balance", "instance")
_STATUS, _INSTANCE = _UPDATED.index("status"), _UPDATED.index("instance")


class ImportRefused(BadRequest):
    """The file as a whole cannot be read (encoding, header, size): nothing written."""


@dataclass
class Refusal:
    """One refused row: where, which field, why."""

    line: int
    number: str
    field: str
    reason: str

    def __str__(self):
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class Report:
    """What an import did (or, dry or refused, would have done)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list = field(default_factory=list)
    dry_run: bool = False
    partial: bool = False
    written: bool = False
    encoding: str = ""
    delimiter: str = ""

    def counts(self):
        """The four counts, for the audit log and the CLI."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "refused": len(self.refused),
        }


def decode(data):
    """Return (text, encoding): a BOM means UTF-8, valid UTF-8 too, else CP1251."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data.decode("utf-8-sig"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1251"), "cp1251"
    except UnicodeDecodeError:
        raise ImportRefused("the file is neither UTF-8 nor CP1251") from None


def _header(line):
    """Return (columns, delimiter) of the header row, or raise ImportRefused."""
    delimiter = ";" if line.count(";") >= line.count(",") and ";" in line else ","
    names = [
        name.strip().lower() for name in next(csv.reader([line], delimiter=delimiter))
    ]
    seen = set()
    for name in names:
        if name not in COLUMNS:
            raise ImportRefused(
                f"unknown column {name!r} in the header; known: {', '.join(COLUMNS)}"
            )
        if name in seen:
            raise ImportRefused(f"column {name!r} is given twice in the header")
        seen.add(name)
    if "number" not in seen:
        raise ImportRefused("the header has no column 'number'")
    return names, delimiter


def _lines(text):
    """Yield the file's lines (\n, \r\n or \r, as csv wants them), none too long."""
    # Not StringIO: it copies the text at four bytes a character.
    for number, found in enumerate(_LINE.finditer(text), 1):
        line = found.group()
        if len(line) > LINE_LENGTH_MAX:
            raise ImportRefused(
                f"line {number} is longer than {LINE_LENGTH_MAX} characters"
            )
        yield line


def parse(data, rows_max=ROWS_MAX):
    """Read a CSV file's bytes: (columns, delimiter, encoding, rows).

    The header is checked at once; rows, (line, cells), are read as they are
    taken (a file of 200,000 rows is never held as lists of cells).
    """
    text, encoding = decode(data)
    if "\x00" in text:  # no field has a use for it; PostgreSQL cannot store it
        raise ImportRefused("the file contains a NUL character: not a CSV file")
    lines = _lines(text)
    first = next(lines, "")
    if not first.strip():
        raise ImportRefused("the file is empty: a header row naming the columns first")
    columns, delimiter = _header(first)
    return columns, delimiter, encoding, _rows(lines, delimiter, rows_max)


def _rows(lines, delimiter, rows_max):
    """Yield (line number, cells) of the rows after the header; blank lines skipped."""
    # strict: a quote left open would swallow the rest of the file into one cell.
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    count, last = 0, 1
    try:
        for cells in reader:
            line, last = last + 1, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            count += 1
            if count > rows_max:
                raise ImportRefused(f"more than {rows_max} rows in one file")
            yield line, cells
    except csv.Error as exc:
        raise ImportRefused(f"line {last + 1}: {exc}") from None


def _record(columns, cells):
    """The row's record for contract_sync: empty cells left out or cleared."""
    record = {}
    for name, cell in zip(columns, cells, strict=True):
        cell = cell.strip()
        if cell or name in CLEARED_WHEN_EMPTY:
            record["billing_balance" if name == "balance" else name] = cell or None
    return record


def _existing(hashes):
    """Every contract's fields an import compares, by number, in one query.

    (id, name, email, phone, status, billing_balance, instance, password hash):
    tuples, not models or dicts, and the hash only if the file has passwords.
    """
    query = Contract.select(
        Contract.number,
        Contract.id,
        Contract.name,
        Contract.email,
        Contract.phone,
        Contract.status,
        Contract.billing_balance,
        Contract.instance,
        Contract.password_hash if hashes else Value(""),
    ).tuples()
    return {row[0]: row[1:] for row in query}


def _pooled(function, arguments):
    """Map `function` over `arguments`, in processes when there are many."""
    if len(arguments) < POOL_FROM:
        return [function(*each) for each in arguments]
    # spawn, not fork: a forked child of a threaded server can inherit held locks.
    with ProcessPoolExecutor(os.cpu_count(), mp_context=get_context("spawn")) as pool:
        return list(pool.map(function, *zip(*arguments, strict=True), chunksize=16))


@dataclass
class _Plan:
    """The writes an import makes: new rows, full rows of updates, balances re-dated."""

    creates: list = field(default_factory=list)  # (number, changes)
    updates: list = field(default_factory=list)  # (number, id, new, dated, blocked)
    redated: list = field(default_factory=list)  # (number, id): balance holds now
    passwords: dict = field(default_factory=dict)  # number -> password to hash
    rows: int = 0


def _plan(rows, columns, existing, instance, report):
    """Check every row; fill the report's counts and return the plan of writes."""
    plan, seen = _Plan(), {}
    checks = []  # (entry, other fields differ, stored hash, password given)
    for line, cells in rows:
        plan.rows += 1
        if len(cells) != len(columns):
            reason = f"{len(cells)} cells, the header has {len(columns)}"
            report.refused.append(Refusal(line, "", "line", reason))
            continue
        record = _record(columns, cells)
        raw_number = record.pop("number", "")
        try:
            number = contract_sync.valid_number(raw_number or "")
            if number in seen:
                raise contract_sync.FieldError(
                    "number", f"repeats the number of line {seen[number]}"
                )
            seen[number] = line
            password = record.pop("password", None)
            if password is not None:
                password = contract_sync.valid_password(password)
            current = existing.get(number)
            changes = contract_sync.changes_of(record, creating=current is None)
        except contract_sync.FieldError as exc:
            refusal = Refusal(line, raw_number or "", exc.field, exc.reason)
            report.refused.append(refusal)
            continue
        if current is None:
            if instance is not None:
                changes["instance"] = instance.id
            plan.creates.append((number, changes))
            if password is not None:
                plan.passwords[number] = password
            continue
        _compare(number, current, changes, instance, password, plan, checks)
    _check_passwords(checks, plan)
    report.created, report.updated = len(plan.creates), len(plan.updates)
    report.unchanged = plan.rows - len(report.refused) - report.created - report.updated
    return plan


def _compare(number, current, changes, instance, password, plan, checks):
    """Put an existing contract in the plan: updated, re-dated, or to check first."""
    contract_id, *stored, stored_hash = current
    stored = tuple(stored)
    if instance is not None and stored[_INSTANCE] is None:
        changes["instance"] = instance.id
    dated = changes.pop("billing_balance_at", None) is not None
    new = tuple(
        changes.get(name, value) for name, value in zip(_UPDATED, stored, strict=True)
    )
    blocked = new[_STATUS] == "blocked" and stored[_STATUS] != "blocked"
    entry = (number, contract_id, new, dated, blocked)
    if password is not None and stored_hash:  # the same password? checked in a pool
        checks.append((entry, new != stored, stored_hash, password))
        return
    if password is not None:
        plan.passwords[number] = password
    if new != stored or password is not None:
        plan.updates.append(entry)
    elif dated:
        plan.redated.append((number, contract_id))


def _check_passwords(checks, plan):
    """Finish the contracts given a password: a new one is set, the same one is not."""
    matches = _pooled(check_password_hash, [(c[2], c[3]) for c in checks])
    for (entry, differs, _, password), same in zip(checks, matches, strict=True):
        if not same:
            plan.passwords[entry[0]] = password
        if differs or not same:
            plan.updates.append(entry)
        elif entry[3]:
            plan.redated.append(entry[:2])


@contextmanager
def _no_cyclic_gc():
    """Pause the cyclic garbage collector while the plan's million objects are built.

    Each collection walks every live object: 200,000 rows took 12 s with it,
    4.5 s without (process-wide for those seconds; reference counting still
    frees everything that is not a cycle).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run(data, instance_code=None, dry_run=False, partial=False, rows_max=ROWS_MAX):
    """Import a CSV file's bytes; return a Report (nothing written if refused)."""
    with _no_cyclic_gc():
        return _run(data, instance_code, dry_run, partial, rows_max)


def _run(data, instance_code, dry_run, partial, rows_max):
    instance = None
    if instance_code:
        try:
            instance = contract_sync.changes_of({"instance": instance_code}, False)[
                "instance"
            ]
        except contract_sync.FieldError as exc:
            raise ImportRefused(f"--instance {instance_code}: {exc.reason}") from None
    columns, delimiter, encoding, rows = parse(data, rows_max)
    report = Report(
        dry_run=dry_run, partial=partial, encoding=encoding, delimiter=delimiter
    )
    started = utcnow()
    existing = _existing("password" in columns)
    plan = _plan(rows, columns, existing, instance, report)
    if dry_run or (report.refused and not partial):
        return report
    hashes = _pooled(generate_password_hash, [(p,) for p in plan.passwords.values()])
    plan.passwords = dict(zip(plan.passwords, hashes, strict=True))
    _write(plan, started, partial)
    report.written = True
    return report


def _batches(items):
    return (items[start : start + BATCH] for start in range(0, len(items), BATCH))


def _write(plan, started, partial):
    """Write the plan: one unit for the whole (all or nothing) or one per batch."""
    now = utcnow()
    steps = [
        *(
            ([n for n, _ in b], lambda b=b: _insert(b, plan.passwords, now))
            for b in _batches(plan.creates)
        ),
        *(
            ([u[0] for u in b], lambda b=b: _update(b, plan.passwords, now))
            for b in _batches(plan.updates)
        ),
        *(
            ([n for n, _ in b], lambda b=b: _redate([i for _, i in b], now))
            for b in _batches(plan.redated)
        ),
    ]
    if partial:
        for numbers, step in steps:
            with write_unit():
                accounts.hold_changes()
                _refuse_changed_since(started, numbers)
                step()
        return
    with write_unit():
        # The API's updated_since readers wait for the unit (PostgreSQL).
        accounts.hold_changes()
        _refuse_changed_since(started, [n for numbers, _ in steps for n in numbers])
        for _, step in steps:
            step()


def _refuse_changed_since(started, numbers):
    """Raise Conflict if another writer changed one of these contracts meanwhile."""
    if not numbers:
        return
    changed = {
        number
        for (number,) in Contract.select(Contract.number)
        .where(Contract.updated_at >= started)
        .tuples()
    }
    clash = sorted(changed.intersection(numbers))
    if clash:
        raise Conflict(
            f"contract {clash[0]!r} changed while the file was read; run it again"
        )


def _values(rows):
    """The (?, ?), (?, ?) of a VALUES list and its parameters, flat."""
    mark = db.param
    one = "(" + ", ".join([mark] * len(rows[0])) + ")"
    return ", ".join([one] * len(rows)), [value for row in rows for value in row]


_INSERTED = (
    "number",
    "name",
    "email",
    "phone",
    "password_hash",
    "status",
    "source",
    "instance_id",
    "billing_balance",
    "billing_balance_at",
    "balance",
    "session_generation",
    "created_at",
    "updated_at",
)


def _insert(batch, passwords, now):
    """One INSERT of a batch of new contracts.

    Written as SQL: peewee's insert_many spends more time composing the
    statement than the database spends running it.
    """
    at = Contract.created_at.db_value(now)
    rows = [
        (
            number,
            changes["name"],
            changes.get("email"),
            changes.get("phone"),
            passwords.get(number, ""),
            changes.get("status", "active"),
            "import",
            changes.get("instance"),
            changes.get("billing_balance"),
            at if "billing_balance" in changes else None,
            0,
            0,
            at,
            at,
        )
        for number, changes in batch
    ]
    values, params = _values(rows)
    table = Contract._meta.table_name
    try:
        db.execute_sql(
            f"INSERT INTO {table} ({', '.join(_INSERTED)}) VALUES {values}", params
        )
    except IntegrityError:
        raise Conflict(
            "a contract of the file was created meanwhile; run it again"
        ) from None


def _update(batch, passwords, now):
    """One UPDATE … FROM (VALUES …) of a batch of full rows (SQL, as _insert)."""
    at = Contract.updated_at.db_value(now)
    rows = [
        (
            contract_id,
            *new,
            int(dated),
            int(blocked or number in passwords),  # its sessions end
            passwords.get(number),
        )
        for number, contract_id, new, dated, blocked in batch
    ]
    values, params = _values(rows)
    mark, table = db.param, Contract._meta.table_name
    # VALUES columns are column1…: SQLite cannot name a subquery's columns.
    # The casts type a column PostgreSQL sees only NULLs in.
    sql = (
        f"UPDATE {table} SET name = v.column2, email = v.column3,"
        " phone = v.column4, status = v.column5,"
        " billing_balance = CAST(v.column6 AS BIGINT),"
        " instance_id = CAST(v.column7 AS INTEGER),"
        f" billing_balance_at = CASE WHEN v.column8 = 1 THEN {mark}"
        " ELSE billing_balance_at END,"
        " session_generation = session_generation + v.column9,"
        " password_hash = COALESCE(v.column10, password_hash),"
        f" updated_at = {mark}"
        f" FROM (VALUES {values}) AS v WHERE {table}.id = v.column1"
    )
    db.execute_sql(sql, [at, at, *params])


def _redate(batch, now):
    """The billing's balance, given again, holds as of now (not an update)."""
    Contract.update(billing_balance_at=now).where(Contract.id.in_(batch)).execute()
