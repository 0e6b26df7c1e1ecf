"""The transaction monitor's reads: a filtered set, totals, keyset pages, daily sums."""

import csv
import io
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import xlsxwriter
from peewee import JOIN, SQL, Case, NodeList, SqliteDatabase, fn

from .clock import day_in_range
from .db import db
from .models import CREDITED_STATUSES, STATUS_GROUPS, Contract, Receipt, Transaction
from .money import format_signed

KINDS = ("payment", "bind", "recurrent")
CSV_BATCH = 2000  # rows fetched, formatted and sent at a time
TRIGRAM = 3  # the shortest text a trigram index can look up


def register_functions(database):
    """Teach SQLite a Unicode-aware lower case (its LOWER() folds ASCII only)."""
    if isinstance(database, SqliteDatabase):
        database.register_function(
            lambda text: text.casefold() if isinstance(text, str) else text,
            "casefold",
            1,
            deterministic=True,
        )


def contains(column, text):
    """Match a column that contains `text`, ignoring case (Cyrillic too)."""
    folded = (
        fn.casefold(column) if isinstance(db.obj, SqliteDatabase) else fn.LOWER(column)
    )
    pattern = (
        "%"
        + (
            text.casefold()
            .replace("\\", "\\\\")
            .replace("%", "\\%")
            .replace("_", "\\_")
        )
        + "%"
    )
    return NodeList((folded, SQL("LIKE"), pattern, SQL("ESCAPE '\\'")))


def contracts_matching(text):
    """Select contracts whose number or name contains `text`, ignoring case."""
    return Contract.select().where(Contract.id.in_(matching_ids(text)))


def matching_ids(text):
    """Select the ids of contracts whose number or name contains `text`.

    SQLite answers from its trigram table (FTS5), PostgreSQL from the pg_trgm
    index on LOWER(number), LOWER(name); a text shorter than a trigram (or no
    pg_trgm) reads the whole contract table.
    """
    if isinstance(db.obj, SqliteDatabase) and len(text) >= TRIGRAM:
        return NodeList(
            (
                SQL(
                    "SELECT rowid FROM contract_search WHERE contract_search MATCH ?",
                    ('"' + text.replace('"', '""') + '"',),
                ),
            ),
            parens=True,
        )
    return Contract.select(Contract.id).where(
        contains(Contract.number, text) | contains(Contract.name, text)
    )


@dataclass(frozen=True)
class Filters:
    """What the monitor shows: a period (naive UTC bounds) and optional filters."""

    start: datetime
    end: datetime
    search: str = ""
    status: str = ""
    kind: str = ""


def conditions(instance, filters, status=True):
    """List the conditions a transaction passes the filters by."""
    where = [
        Transaction.instance == instance,
        Transaction.created_at >= filters.start,
        Transaction.created_at < filters.end,
    ]
    if status and filters.status:
        where.append(
            Transaction.status.in_(STATUS_GROUPS.get(filters.status, (filters.status,)))
        )
    if filters.kind:
        where.append(Transaction.kind == filters.kind)
    if filters.search:
        # A subquery, not a list of ids fetched first: PostgreSQL's planner then
        # checks the name of each row's contract while it pages (cheaper than
        # the trigram lookup), and a list of 10,000 ids costs more to build.
        where.append(Transaction.contract.in_(matching_ids(filters.search)))
    return where


def selection(instance, filters, status=True):
    """Select an instance's transactions that pass the filters (with their contract)."""
    return (
        Transaction.select(Transaction, Contract)
        .join(Contract)
        .where(*conditions(instance, filters, status))
    )


def encode_cursor(transaction):
    """Name the place after a row: its (created_at, id)."""
    return f"{transaction.created_at.isoformat()}_{transaction.id}"


def decode_cursor(cursor):
    """Read a cursor back; ValueError if it is not one of ours."""
    moment, _, pk = cursor.rpartition("_")
    moment, pk = datetime.fromisoformat(moment), int(pk)
    # Beyond these no row exists, and SQL integers would overflow.
    if not (day_in_range(moment.date()) and 0 < pk < 2**63):
        raise ValueError("cursor out of range")
    return moment, pk


def page(query, size, cursor=None):
    """Return one page of rows newest first after a cursor, and the next cursor."""
    if cursor:
        moment, pk = decode_cursor(cursor)
        # (created_at, id) < (moment, pk), spelled so both engines range-scan
        # the (instance, created_at, id) index.
        query = query.where(
            Transaction.created_at <= moment,
            (Transaction.created_at < moment) | (Transaction.id < pk),
        )
    rows = list(
        query.order_by(Transaction.created_at.desc(), Transaction.id.desc()).limit(
            size + 1
        )
    )
    following = encode_cursor(rows[size - 1]) if len(rows) > size else None
    return rows[:size], following


def summary(instance, filters, days):
    """Count and sum per status, and sum the charted amounts per day, in one pass.

    Returns ([(status, count, sum)], [(date, kopecks)]); `days` are (date,
    utc_start, utc_end) triples. The chart sums the credited amounts, or with a
    status filter those of the statuses shown: it follows every filter. Reads
    no table row of a transaction: the (instance, created_at, status, contract,
    amount) index covers it, or with a status filter the (instance, status, ...)
    one; a name filter's contracts are hashed first (search_by_index).
    """
    charted = charted_statuses(filters)
    per_status, per_day = {}, {}
    with search_by_index(filters):
        rows = list(summary_query(instance, filters, days).tuples())
    for status, day, count, amount in rows:
        before = per_status.get(status, (0, 0))
        per_status[status] = (before[0] + count, before[1] + int(amount))
        if status in charted and day is not None:
            per_day[int(day)] = per_day.get(int(day), 0) + int(amount)
    return (
        [(status, *per_status[status]) for status in sorted(per_status)],
        [(day, per_day.get(index, 0)) for index, (day, _, _) in enumerate(days)],
    )


@contextmanager
def search_by_index(filters):
    """On PostgreSQL, have a name filter looked up by its trigram index, not a scan."""
    if isinstance(db.obj, SqliteDatabase) or len(filters.search) < TRIGRAM:
        yield
        return
    with db.atomic():
        # The planner's costs of a scan of `contract` and of the trigram lookup
        # are close, and a month of a big instance's statistics tips it either
        # way, while the lookup runs several times faster. Nothing else in the
        # summary wants a scan: the transactions come from covering indexes.
        db.execute_sql("SET LOCAL enable_seqscan = off")
        yield


def charted_statuses(filters):
    """The statuses the chart sums: those the filter shows, else the credited ones."""
    if filters.status:
        return STATUS_GROUPS.get(filters.status, (filters.status,))
    return CREDITED_STATUSES


def summary_query(instance, filters, days):
    """Select (status, day index, count, sum) of the filtered set, for summary()."""
    return (
        Transaction.select(
            Transaction.status,
            day_bucket(days).alias("bucket"),
            # COUNT(*), not of a column: the covering indexes hold no id.
            fn.COUNT(SQL("*")),
            fn.SUM(Transaction.amount),
        )
        .where(*conditions(instance, filters))
        .group_by(Transaction.status, SQL("bucket"))
    )


def day_bucket(days):
    """An expression of the index of the local day a transaction falls on."""
    if not days:
        return SQL("NULL")
    start = days[0][1]
    if all(end - begin == timedelta(days=1) for _, begin, end in days):
        # Days of 24 hours (no clock change in the period): arithmetic on the
        # seconds since the first midnight, instead of one CASE branch per day
        # tested against every row.
        if isinstance(db.obj, SqliteDatabase):
            seconds = fn.strftime("%s", Transaction.created_at).cast("INTEGER") - int(
                start.replace(tzinfo=UTC).timestamp()
            )
            return seconds / 86400  # integer division: seconds are whole
        # date_part(), not EXTRACT(): a double, where EXTRACT's numeric
        # (PostgreSQL 14+) costs more than the rest of the query per row.
        # Seconds as a double are exact to the microsecond over any period.
        elapsed = fn.date_part(
            "epoch", NodeList((Transaction.created_at, SQL("-"), start))
        )
        return fn.FLOOR(elapsed / 86400).cast("INTEGER")
    return Case(
        None,
        [
            ((Transaction.created_at >= begin) & (Transaction.created_at < end), index)
            for index, (_, begin, end) in enumerate(days)
        ],
    )


def totals(instance, filters):
    """Count and sum the filtered transactions per status: [(status, count, sum)]."""
    return summary(instance, filters, [])[0]


def chart(series, width=720, height=160, label_every=None):
    """Lay out a bar chart of [(date, kopecks)]: bars and labels in SVG units."""
    top = max((amount for _, amount in series), default=0)
    gap = 2
    slot = width / max(len(series), 1)
    label_every = label_every or max(1, round(len(series) / 10))
    bars = []
    for index, (day, amount) in enumerate(series):
        bar_height = 0 if not top else round(amount / top * (height - 20), 1)
        bars.append(
            {
                "x": round(index * slot + gap / 2, 1),
                "width": round(slot - gap, 1),
                "y": round(height - bar_height, 1),
                "height": bar_height,
                "day": day,
                "amount": amount,
                "label": index % label_every == 0,
                "label_x": round(index * slot + slot / 2, 1),
            }
        )
    return {"width": width, "height": height, "bars": bars, "top": top}


# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): =, +, -, @,
# and the tab or carriage return some spreadsheets skip before them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def spreadsheet_safe(cell):
    """Quote a text cell that a spreadsheet would run as a formula; numbers stay."""
    text = "" if cell is None else str(cell)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _worded(words, rows):
    """Name kinds, statuses and receipt states in words (`words[column][code]`)."""
    kinds, statuses, receipts = words["kind"], words["status"], words["receipt"]
    for row in rows:
        kind, status, receipt = row[4], row[5], row[11]
        yield (
            *row[:4],
            kinds.get(kind, kind),
            statuses.get(status, status),
            *row[6:11],
            receipts.get(receipt, receipt or ""),
        )


def csv_chunks(instance, filters, timezone, header, words):
    """Yield the filtered set as CSV text (BOM first), many lines per chunk.

    One cursor of plain tuples, newest first: on PostgreSQL a named (server-side)
    cursor in a read-only transaction, so the worker holds one batch, not the set.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(header)
    local = _local_time(timezone)
    for rows in _csv_batches(instance, filters):
        writer.writerows(
            [
                [spreadsheet_safe(cell) for cell in (local(row[0]), *row[1:6])]
                + [format_signed(row[6])]
                + [spreadsheet_safe(cell) for cell in row[7:]]
                for row in _worded(words, rows)
            ]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


XLSX_CHUNK = 64 * 1024  # bytes of the finished file sent at a time
# Column widths in characters, in the order of the CSV's columns.
XLSX_WIDTHS = (19, 24, 10, 24, 16, 12, 12, 14, 10, 10, 30, 14)


def xlsx_chunks(instance, filters, timezone, header, words):
    """Yield the filtered set as an XLSX file: typed cells, constant memory.

    xlsxwriter's constant_memory mode writes each row to a temporary file as
    it comes (the rows arrive in order); the zip is assembled at close() into
    another temporary file, then sent in chunks. Amounts are numbers, times
    are dates, and text cells are strings (bill numbers keep their leading
    zeros; no text becomes a formula, so none needs neutralising).
    """
    with tempfile.TemporaryFile() as file:
        workbook = xlsxwriter.Workbook(file, {"constant_memory": True})
        sheet = workbook.add_worksheet()
        moment = workbook.add_format({"num_format": "dd.mm.yyyy hh:mm:ss"})
        money = workbook.add_format({"num_format": "#,##0.00"})
        bold = workbook.add_format({"bold": True})
        for column, width in enumerate(XLSX_WIDTHS):
            sheet.set_column(column, column, width)
        for column, title in enumerate(header):
            sheet.write_string(0, column, str(title), bold)
        line = 0
        for rows in _csv_batches(instance, filters):
            for row in _worded(words, rows):
                line += 1
                sheet.write_datetime(line, 0, _local_moment(row[0], timezone), moment)
                for column in range(1, 6):
                    sheet.write_string(line, column, row[column] or "")
                # Kopecks to roubles: exact in a double below 2**53 kopecks.
                sheet.write_number(line, 6, row[6] / 100, money)
                for column in range(7, 12):
                    sheet.write_string(line, column, str(row[column] or ""))
        workbook.close()
        file.seek(0)
        while chunk := file.read(XLSX_CHUNK):
            yield chunk


def _local_moment(created, timezone):
    """UTC text "YYYY-MM-DD HH:MM:SS[...]" as the ISP's naive local datetime."""
    moment = datetime.fromisoformat(created[:19]).replace(tzinfo=UTC)
    return moment.astimezone(timezone).replace(tzinfo=None)


def _csv_batches(instance, filters):
    """Yield the CSV's rows as lists of tuples, CSV_BATCH at a time."""
    sqlite = isinstance(db.obj, SqliteDatabase)
    # Text, as SQLite keeps it: "YYYY-MM-DD HH:MM:SS[.ffffff]".
    created = (
        Transaction.created_at
        if sqlite
        else fn.to_char(Transaction.created_at, "YYYY-MM-DD HH24:MI:SS")
    )
    query = (
        Transaction.select(
            created,
            Transaction.order_id,
            Contract.number,
            Contract.name,
            Transaction.kind,
            Transaction.status,
            Transaction.amount,
            Transaction.bill_number,
            Transaction.approval_code,
            Transaction.response_code,
            Transaction.message,
            Receipt.state,
        )
        .join(Contract)
        .switch(Transaction)
        # The sale's receipt, if any (state codes: pending, issued, missing, ...).
        .join(
            Receipt,
            JOIN.LEFT_OUTER,
            on=(Receipt.transaction == Transaction.id) & (Receipt.kind == "sale"),
        )
        .where(*conditions(instance, filters))
        .order_by(Transaction.created_at.desc(), Transaction.id.desc())
    )
    sql, params = query.sql()
    if sqlite:
        cursor = db.execute_sql(sql, params)
        try:
            while rows := cursor.fetchmany(CSV_BATCH):
                yield rows
        finally:
            cursor.close()
        return
    connection = db.connection()
    # psycopg2 refuses a named cursor in autocommit mode (peewee's default).
    connection.autocommit = False
    try:
        connection.set_session(readonly=True)
        with connection.cursor(name="monitor_csv") as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(CSV_BATCH):
                yield rows
    finally:
        connection.rollback()
        connection.set_session(readonly=False)
        connection.autocommit = True


def _local_time(timezone):
    """Make a formatter of UTC text as the ISP's "DD.MM.YYYY HH:MM:SS".

    The zone's offset is looked up once per UTC hour: minutes and seconds are
    copied when the offset is whole hours (as all of Russia's are).
    """
    hours = {}

    def hour(key):
        moment = datetime.fromisoformat(key + ":00:00").replace(tzinfo=UTC)
        shifted = moment.astimezone(timezone)
        hours[key] = shifted.strftime("%d.%m.%Y %H") if shifted.minute == 0 else None
        return hours[key]

    def local(created):
        key = created[:13]
        prefix = hours[key] if key in hours else hour(key)
        if prefix is None:
            moment = datetime.fromisoformat(created[:19]).replace(tzinfo=UTC)
            return moment.astimezone(timezone).strftime("%d.%m.%Y %H:%M:%S")
        return prefix + created[13:19]

    return local


def local_days(first, last, to_utc):
    """List (date, utc_start, utc_end) for each local day from first to last."""
    days = []
    day = first
    while day <= last:
        days.append((day, to_utc(day), to_utc(day + timedelta(days=1))))
        day += timedelta(days=1)
    return days
