"""The feed of credited payments, reversals and refunds: read in an order that
never skips an entry nor repeats one."""

from peewee import SQL, PostgresqlDatabase, Tuple

from ..db import db
from ..models import Contract, LedgerEntry, Transaction

FEED_KINDS = ("credit", "reversal", "refund")
# On PostgreSQL every transaction with an id below the snapshot's xmin has ended,
# and no transaction can get one any more: the entries below it are final.
_SETTLED = SQL("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def position(entry):
    """Where an entry stands in the feed: (its transaction id or 0, its id)."""
    return (entry.commit_xid or 0, entry.id)


def feed_after(after, limit):
    """Return up to `limit` feed entries past position `after`, with their
    transaction and contract.

    SQLite commits one writer at a time, so id order is commit order. On
    PostgreSQL ids are taken before commit: an entry with a lower id may commit
    after a higher one was read. There the feed goes in (commit_xid, id) order
    and stops below the oldest transaction still open, so every entry it could
    still see later sorts after what it returned.
    """
    query = (
        LedgerEntry.select(LedgerEntry, Transaction, Contract)
        .join(Transaction, on=LedgerEntry.transaction == Transaction.id)
        .switch(LedgerEntry)
        .join(Contract, on=LedgerEntry.contract == Contract.id)
        .where(LedgerEntry.kind.in_(FEED_KINDS))
    )
    if isinstance(db.obj, PostgresqlDatabase):
        query = query.where(
            Tuple(LedgerEntry.commit_xid, LedgerEntry.id) > Tuple(*after),
            LedgerEntry.commit_xid < _SETTLED,
        ).order_by(LedgerEntry.commit_xid, LedgerEntry.id)
    else:
        query = query.where(LedgerEntry.id > after[1]).order_by(LedgerEntry.id)
    return list(query.limit(limit))
