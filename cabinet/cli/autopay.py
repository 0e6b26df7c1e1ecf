"""flask autopay …: charge a contract's card, show its autopay."""

import click
from flask.cli import AppGroup

from .. import accounts
from ..money import format_signed
from .common import call_service, fail

autopay_cli = AppGroup("autopay", help="Autopay.")


@autopay_cli.command("charge")
@click.argument("contract")
@click.argument("amount")
@click.option("--reason", default="", help="Why (kept with the charge).")
@click.option(
    "--key", help="An idempotency key: the same key asks for the same charge."
)
def autopay_charge(contract, amount, reason, key):
    """Charge CONTRACT's card AMOUNT roubles now (automatic mode)."""
    from .. import autopay
    from ..errors import Conflict
    from ..money import AmountError, parse_amount

    try:
        kopecks = parse_amount(amount)
    except AmountError as exc:
        fail(f"amount {amount[:40]!r}: {exc}")  # not all of a 400,000-digit one

    def ask():
        try:
            return autopay.request_charge(contract, kopecks, reason, "cli", key)
        except Conflict as exc:
            if exc.message != "key_reused":
                raise
            fail(f"--key {key!r} was used for another amount or reason")

    charge = call_service(ask)
    click.echo(
        f"Charge {charge.id} ({charge.period}) of {format_signed(charge.amount)} "
        f"for contract {contract}: {charge.status}."
    )


@autopay_cli.command("show")
@click.argument("contract")
def autopay_show(contract):
    """Show CONTRACT's autopay: mode, state, card's parent order, last charges."""
    from .. import autopay
    from ..models import AutopayCharge

    def show():
        current = autopay.autopay_of(accounts.get_contract(contract))
        if current is None:
            click.echo("no autopay")
            return
        click.echo(
            f"mode: {current.mode}  state: {current.state}"
            + (f" ({current.suspended_reason})" if current.suspended_reason else "")
        )
        if current.amount:
            click.echo(
                f"amount: {format_signed(current.amount)}  weekday: "
                f"{current.weekday}  day: {current.day_of_month}"
            )
        click.echo(
            f"parent order: {current.parent.order_id if current.parent else '-'}"
        )
        for charge in current.charges.order_by(AutopayCharge.id.desc()).limit(10):
            click.echo(
                f"  {charge.period:<24} {format_signed(charge.amount):>10} "
                f"{charge.status:<10} tries {charge.tries} "
                f"{charge.result_message or ''}"
            )

    call_service(show)
