"""The transaction monitor's reads: a filtered set, totals, keyset pages, daily sums."""

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from peewee import SQL, Case, NodeList, SqliteDatabase, fn

from .db import db
from .models import CREDITED_STATUSES, STATUS_GROUPS, Contract, Transaction
from .money import format_signed

KINDS = ("payment", "bind", "recurrent")
CSV_BATCH = 1000


def register_functions(database):
    """Teach SQLite a Unicode-aware lower case (its LOWER() folds ASCII only)."""
    if isinstance(database, SqliteDatabase):
        database.register_function(
            lambda text: text.casefold() if isinstance(text, str) else text,
            "casefold", 1, deterministic=True)


def contains(column, text):
    """Match a column that contains `text`, ignoring case (Cyrillic too)."""
    folded = fn.casefold(column) if isinstance(db.obj, SqliteDatabase) else fn.LOWER(
        column)
    pattern = "%" + (text.casefold().replace("\\", "\\\\").replace("%", "\\%")
                     .replace("_", "\\_")) + "%"
    return NodeList((folded, SQL("LIKE"), pattern, SQL("ESCAPE '\\'")))


def contracts_matching(text):
    """Select contracts whose number or name contains `text`, ignoring case."""
    return Contract.select().where(
        contains(Contract.number, text) | contains(Contract.name, text))


@dataclass(frozen=True)
class Filters:
    """What the monitor shows: a period (naive UTC bounds) and optional filters."""

    start: datetime
    end: datetime
    search: str = ""
    status: str = ""
    kind: str = ""


def selection(instance, filters, status=True):
    """Select an instance's transactions that pass the filters (with their contract)."""
    query = (Transaction.select(Transaction, Contract).join(Contract)
             .where(Transaction.instance == instance,
                    Transaction.created_at >= filters.start,
                    Transaction.created_at < filters.end))
    if status and filters.status:
        query = query.where(Transaction.status.in_(
            STATUS_GROUPS.get(filters.status, (filters.status,))))
    if filters.kind:
        query = query.where(Transaction.kind == filters.kind)
    if filters.search:
        query = query.where(Transaction.contract.in_(
            contracts_matching(filters.search).select(Contract.id)))
    return query


def encode_cursor(transaction):
    """Name the place after a row: its (created_at, id)."""
    return f"{transaction.created_at.isoformat()}_{transaction.id}"


def decode_cursor(cursor):
    """Read a cursor back; ValueError if it is not one of ours."""
    moment, _, pk = cursor.rpartition("_")
    return datetime.fromisoformat(moment), int(pk)


def page(query, size, cursor=None):
    """Return one page of rows newest first after a cursor, and the next cursor."""
    if cursor:
        moment, pk = decode_cursor(cursor)
        # (created_at, id) < (moment, pk), spelled so both engines range-scan
        # the (instance, created_at, id) index.
        query = query.where(
            Transaction.created_at <= moment,
            (Transaction.created_at < moment) | (Transaction.id < pk))
    rows = list(query.order_by(Transaction.created_at.desc(), Transaction.id.desc())
                .limit(size + 1))
    following = encode_cursor(rows[size - 1]) if len(rows) > size else None
    return rows[:size], following


def totals(instance, filters):
    """Count and sum the filtered transactions per status: [(status, count, sum)]."""
    query = (selection(instance, filters)
             .select(Transaction.status, fn.COUNT(Transaction.id),
                     fn.COALESCE(fn.SUM(Transaction.amount), 0))
             .group_by(Transaction.status).order_by(Transaction.status))
    return [(status, count, int(amount)) for status, count, amount in query.tuples()]


def daily_paid(instance, filters, days):
    """Sum the credited amounts per day: [(date, kopecks)] for the given local days.

    `days` are (date, utc_start, utc_end) triples: one query groups by them.
    """
    if not days:
        return []
    bucket = Case(None, [((Transaction.created_at >= start)
                          & (Transaction.created_at < end), index)
                         for index, (_, start, end) in enumerate(days)])
    query = (selection(instance, filters, status=False)
             .where(Transaction.status.in_(CREDITED_STATUSES))
             .select(bucket.alias("bucket"), fn.SUM(Transaction.amount))
             .group_by(SQL("bucket")).order_by())
    sums = {int(day): int(amount) for day, amount in query.tuples() if day is not None}
    return [(day, sums.get(index, 0)) for index, (day, _, _) in enumerate(days)]


def chart(series, width=720, height=160, label_every=None):
    """Lay out a bar chart of [(date, kopecks)]: bars and labels in SVG units."""
    top = max((amount for _, amount in series), default=0)
    gap = 2
    slot = width / max(len(series), 1)
    label_every = label_every or max(1, round(len(series) / 10))
    bars = []
    for index, (day, amount) in enumerate(series):
        bar_height = 0 if not top else round(amount / top * (height - 20), 1)
        bars.append({
            "x": round(index * slot + gap / 2, 1), "width": round(slot - gap, 1),
            "y": round(height - bar_height, 1), "height": bar_height,
            "day": day, "amount": amount,
            "label": index % label_every == 0,
            "label_x": round(index * slot + slot / 2, 1),
        })
    return {"width": width, "height": height, "bars": bars, "top": top}


def csv_lines(instance, filters, timezone, header):
    """Yield the filtered set as CSV lines (BOM first), read in keyset batches."""
    yield "\ufeff" + _csv_line(header)
    cursor = None
    query = selection(instance, filters)
    while True:
        rows, cursor = page(query, CSV_BATCH, cursor)
        for t in rows:
            local = t.created_at.replace(tzinfo=UTC).astimezone(timezone)
            yield _csv_line([
                local.strftime("%d.%m.%Y %H:%M:%S"), t.order_id, t.contract.number,
                t.contract.name, t.kind, t.status, format_signed(t.amount),
                t.bill_number or "", t.approval_code or "", t.response_code or "",
                t.message or "",
            ])
        if cursor is None:
            return


def _csv_line(values):
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def local_days(first, last, to_utc):
    """List (date, utc_start, utc_end) for each local day from first to last."""
    days = []
    day = first
    while day <= last:
        days.append((day, to_utc(day), to_utc(day + timedelta(days=1))))
        day += timedelta(days=1)
    return days
