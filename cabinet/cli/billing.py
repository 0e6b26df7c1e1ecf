"""flask billing …: connectors to the ISP's billing and their deliveries."""

import json

import click
from flask.cli import AppGroup

from .. import billing, configurations
from ..billing.connectors import parse_assignments
from ..models import BillingConnector, ModuleInstance
from .common import call_service, fail

billing_cli = AppGroup("billing", help="Deliveries to the ISP's billing.")


@billing_cli.command("add")
@click.argument("instance")
@click.argument("name")
@click.option("--kind", type=click.Choice(sorted(billing.KINDS)), required=True)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter; repeat for each (osmp: url login password check_first "
    "cancel timeout concurrency; webhook: url secret events timeout concurrency).",
)
def billing_add(instance, name, kind, assignments):
    """Add connector NAME of INSTANCE, delivering its credits to a billing."""

    def add():
        return billing.add_connector(
            configurations.get_instance(instance),
            name,
            kind,
            parse_assignments(assignments),
            who="cli",
        )

    connector = call_service(add)
    click.echo(f"Connector {name} ({kind}) of {instance} added.")
    if kind == "webhook" and not any(a.startswith("secret=") for a in assignments):
        # Shown once, here: the receiver needs it to verify our signatures.
        secret = connector.params["secret"]
        click.echo(f"Its signing secret (give it to the receiver): {secret}")


@billing_cli.command("list")
def billing_list():
    """List the connectors with their parameters (secrets hidden)."""

    def show():
        rows = (
            BillingConnector.select(BillingConnector, ModuleInstance)
            .join(ModuleInstance)
            .order_by(ModuleInstance.code, BillingConnector.name)
        )
        for connector in rows:
            state = "" if connector.is_active else " (off)"
            click.echo(
                f"{connector.instance.code} {connector.name} {connector.kind}{state}"
            )
            for key, value in billing.shown_params(connector.params).items():
                click.echo(f"    {key} = {value}")

    call_service(show)


@billing_cli.command("test")
@click.argument("instance")
@click.argument("name")
@click.option("--account", help="The account an OSMP `check` asks about.")
def billing_test(instance, name, account):
    """Ask the billing once: an OSMP check of --account, or a signed ping."""

    def probe():
        connector = billing.get_connector(configurations.get_instance(instance), name)
        if connector.kind == "osmp" and not account:
            raise billing.ConnectorError("--account: the account to check")
        return billing.test_connector(connector, account)

    result = call_service(probe)
    click.echo(f"{result.outcome}: {result.answer}")
    if result.outcome != "done":
        fail(f"the billing did not accept it ({result.outcome})", code=1)


@billing_cli.command("deliveries")
@click.option(
    "--state",
    type=click.Choice(["pending", "sending", "done", "failed", "attention"]),
)
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def billing_deliveries(state, limit, as_json):
    """List deliveries, newest first."""

    def show():
        for d in billing.deliveries(state=state, limit=limit):
            row = {
                "id": d.id,
                "txn_id": d.txn_id,
                "connector": d.connector.name,
                "kind": d.kind,
                "order_id": d.transaction.order_id,
                "account": d.account,
                "amount": f"{d.amount // 100}.{d.amount % 100:02d}",
                "state": d.state,
                "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at.isoformat() + "Z",
                "last_answer": d.last_answer,
                "note": d.note,
            }
            if as_json:
                click.echo(json.dumps(row, ensure_ascii=False))
            else:
                click.echo(
                    f"#{d.id} {d.txn_id} {d.connector.name} {d.kind} "
                    f"{row['order_id']} {d.account} {row['amount']} {d.state} "
                    f"tries={d.attempts} {d.note or d.last_answer or ''}".rstrip()
                )

    call_service(show)


@billing_cli.command("retry")
@click.argument("delivery_id", type=int)
def billing_retry(delivery_id):
    """Send a failed or held delivery again now (the same txn_id)."""
    call_service(billing.retry, delivery_id, who="cli")
    click.echo(f"Delivery {delivery_id} will be sent again.")


@billing_cli.command("done")
@click.argument("delivery_id", type=int)
@click.option("--comment", required=True, help="What was done in the billing.")
def billing_done(delivery_id, comment):
    """Record a delivery as made in the billing by hand (audited)."""
    call_service(billing.mark_done, delivery_id, comment, who="cli")
    click.echo(f"Delivery {delivery_id} marked done.")


@billing_cli.command("readdress")
@click.argument("delivery_id", type=int)
@click.argument("account")
def billing_readdress(delivery_id, account):
    """Send a failed delivery again to a corrected account (audited)."""
    call_service(billing.readdress, delivery_id, account, who="cli")
    click.echo(f"Delivery {delivery_id} will be sent to {account}.")
