"""What the fault scenarios share: orders in bulk, concurrent delivery, money counts."""

from concurrent.futures import ThreadPoolExecutor

import requests
from peewee import fn

from cabinet import payments
from cabinet.models import Contract, LedgerEntry, Transaction
from cabinet.uniteller.sandbox.engine import Card
from tests.fault.conftest import InApp
from tests.helpers import SUCCESS_CARD, signed_callback


def open_orders(world, count, amount=50000, number="1001"):
    """Create `count` new card payments of a contract; return [(order id, form)]."""
    with InApp(world.app):
        contract = Contract.by_number(number)
        made = []
        for _ in range(count):
            transaction, form = payments.start_payment(
                contract,
                amount,
                f"{world.url}/pay/return/ok",
                f"{world.url}/pay/return/no",
            )
            made.append((transaction.order_id, form))
        return made


def pay_at_sandbox(world, form, card=SUCCESS_CARD):
    """Pay a signed form at the sandbox as the card page would; return its order row."""
    sandbox = world.sandbox
    token = sandbox.open_session(dict(form.fields))
    return sandbox.pay_with_card(token, Card(card, 12, 2035, "IVAN IVANOV"))


def callback(shop, order_id, status, total="500.00"):
    """A callback signed with the shop's password, as Uniteller sends it."""
    return signed_callback(order_id, status, shop["password"], total)


def post_all(url, bodies, workers=50):
    """POST every body (form fields) concurrently; return the HTTP status codes."""
    with requests.Session() as session:
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=workers)
        session.mount("http://", adapter)

        def post(body):
            try:
                return session.post(url, data=body, timeout=60).status_code
            except requests.RequestException as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(post, bodies))


def credits_per_order(world, order_ids):
    """Count the credit entries of each order."""
    with InApp(world.app):
        rows = (
            LedgerEntry.select(Transaction.order_id, fn.COUNT(LedgerEntry.id))
            .join(Transaction)
            .where(
                LedgerEntry.kind == "credit", Transaction.order_id.in_(list(order_ids))
            )
            .group_by(Transaction.order_id)
            .tuples()
        )
        counts = dict(rows)
    return {order_id: counts.get(order_id, 0) for order_id in order_ids}


def money_state(world):
    """Every contract's balance, the ledger's sum and each transaction's status."""
    with InApp(world.app):
        balances = {c.number: c.balance for c in Contract.select()}
        ledger = LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0)).scalar()
        statuses = dict(
            Transaction.select(Transaction.order_id, Transaction.status).tuples()
        )
        entries = LedgerEntry.select().count()
    return {
        "balances": balances,
        "ledger": ledger,
        "statuses": statuses,
        "entries": entries,
    }


def changes_between(before, after):
    """Count what differs between two money states (balances, entries, statuses)."""
    changed = sum(before["balances"].get(k) != v for k, v in after["balances"].items())
    changed += abs(after["entries"] - before["entries"])
    changed += sum(before["statuses"].get(k) != v for k, v in after["statuses"].items())
    return changed


def sandbox_orders(world):
    """The sandbox's order attempts (its own record of what was charged)."""
    return requests.get(f"{world.sandbox_url}/_sandbox/orders", timeout=30).json()


def age_charges(world, minutes):
    """Make every autopay charge `minutes` older: time passes without waiting for it."""
    from datetime import timedelta

    from cabinet.models import AutopayCharge

    with InApp(world.app):
        for charge in AutopayCharge.select():
            AutopayCharge.update(
                updated_at=charge.updated_at - timedelta(minutes=minutes)
            ).where(AutopayCharge.id == charge.id).execute()


def snapshot():
    """What a refused request must not change (call inside an app context)."""
    from cabinet.models import (
        ApiToken,
        Autopay,
        AutopayCharge,
        AutopayConsent,
        ModuleConfiguration,
        Operator,
    )

    return (
        Transaction.select().count(),
        LedgerEntry.select().count(),
        Autopay.select().count(),
        AutopayConsent.select().count(),
        AutopayCharge.select().count(),
        ApiToken.select().count(),
        Operator.select().count(),
        ModuleConfiguration.select().count(),
        sorted(Transaction.select(Transaction.status).tuples()),
        sorted(Autopay.select(Autopay.state).tuples()),
        sorted((c.number, c.balance, c.instance_id) for c in Contract.select()),
        sorted(
            (c.id, c.is_active, str(c.params)) for c in ModuleConfiguration.select()
        ),
    )
