"""Manage sandbox shops from the command line: `flask ... shop add|list`."""

import click
from flask import current_app
from flask.cli import AppGroup

shop_cli = AppGroup("shop", help="Manage the sandbox's shops.")
SHOP_FLAGS = (
    "recurrent_allowed",
    "partial_refund_allowed",
    "notify_balance",
    "fiscal",
    "fiscal_protection",
)


def _sandbox():
    sandbox = current_app.extensions["sandbox"]
    # A command only edits the database: no callbacks go out from it.
    sandbox.stop()
    return sandbox


@shop_cli.command("add")
@click.argument("shop_id")
@click.option("--password", prompt=True, hide_input=True, help="Shared secret.")
@click.option("--login", required=True, help="Login of the server-to-server API.")
@click.option("--notify-url", default="", help="Where callbacks are POSTed.")
@click.option("--status-url", default="", help="Where status requests are POSTed.")
@click.option("--callback-fields", default="", help='E.g. "BillNumber Total".')
@click.option("--recurrent/--no-recurrent", default=True, help="Allow /recurrent/.")
@click.option(
    "--partial-refund/--no-partial-refund", default=True, help="Allow partial refunds."
)
@click.option(
    "--notify-balance/--no-notify-balance",
    default=False,
    help="Send 'partly canceled' callbacks on partial refunds.",
)
@click.option(
    "--fiscal/--no-fiscal",
    default=False,
    help="Cash register set up: the /v2/ fiscal endpoints take its payments.",
)
@click.option("--fiscal-notify-url", default="", help="Where fiscal notifications go.")
@click.option(
    "--fiscal-protection/--no-fiscal-protection",
    default=True,
    help="Reverse a sale whose receipt fails (53), else keep it (54).",
)
def add_shop(
    shop_id,
    password,
    login,
    notify_url,
    status_url,
    callback_fields,
    recurrent,
    partial_refund,
    notify_balance,
    fiscal,
    fiscal_notify_url,
    fiscal_protection,
):
    """Add a shop or replace the one with this id."""
    try:
        _sandbox().add_shop(
            shop_id,
            password=password,
            login=login,
            notify_url=notify_url,
            status_url=status_url,
            callback_fields=callback_fields,
            recurrent_allowed=recurrent,
            partial_refund_allowed=partial_refund,
            notify_balance=notify_balance,
            fiscal=fiscal,
            fiscal_notify_url=fiscal_notify_url,
            fiscal_protection=fiscal_protection,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    click.echo(f"shop {shop_id} saved")


@shop_cli.command("list")
def list_shops():
    """List the shops (without passwords)."""
    for shop in _sandbox().shops():
        flags = [name for name in SHOP_FLAGS if shop[name]]
        click.echo(
            f"{shop['shop_id']}\tlogin={shop['login']}\tnotify={shop['notify_url']}"
            f"\tstatus={shop['status_url'] or '-'}"
            f"\tfields={shop['callback_fields'] or '-'}"
            f"\tfiscal_notify={shop['fiscal_notify_url'] or '-'}\t{' '.join(flags)}"
        )
