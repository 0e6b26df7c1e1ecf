"""The balance a subscriber (and the automatic autopay mode) reads.

The ISP's billing keeps the real balance; the cabinet knows it when the
billing told it (the contracts API, a CSV import), as of the moment it was
taken. What was credited or taken back here after that moment is added, so a
payment made a minute ago shows at once. Without a billing balance the
cabinet's own sum (its ledger) is shown, as before contracts came from a
billing.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from peewee import fn

from .clock import local_timezone
from .models import Contract, LedgerEntry


@dataclass(frozen=True)
class Balance:
    """An amount in kopecks and where it comes from ("billing" or "cabinet")."""

    amount: int
    source: str
    as_of: datetime | None = None  # the billing's moment (UTC), for "billing"
    since: int = 0  # of which: moved here after that moment

    @property
    def describe(self):
        """A short text of where the amount comes from, for logs and reasons."""
        if self.source == "cabinet":
            return "the cabinet's own sum"
        local = self.as_of.replace(tzinfo=UTC).astimezone(local_timezone())
        return f"the billing's as of {local:%d.%m.%Y %H:%M} + payments since"


def balance_of(contract: Contract) -> Balance:
    """Return the balance to show for a contract."""
    if contract.billing_balance is None or contract.billing_balance_at is None:
        return Balance(contract.balance, "cabinet")
    since = (
        LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
        .where(
            LedgerEntry.contract == contract.id,
            LedgerEntry.created_at > contract.billing_balance_at,
        )
        .scalar()
    )
    return Balance(
        contract.billing_balance + int(since),
        "billing",
        contract.billing_balance_at,
        int(since),
    )
