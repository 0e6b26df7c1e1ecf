"""flask contract …, flask operator …: contracts and console operators."""

import json

import click
from flask import current_app
from flask.cli import AppGroup

from .. import accounts, configurations, contract_import
from ..money import format_signed
from ..payments import ledger_balance
from .common import call_service, fail, password_option

contract_cli = AppGroup("contract", help="Subscribers' contracts.")
operator_cli = AppGroup("operator", help="Console operators.")


@contract_cli.command("add")
@click.argument("number")
@click.option("--name", required=True)
@password_option()
@click.option("--email")
@click.option("--instance", "instance_code", help="Link to this module instance.")
def contract_add(number, name, password, email, instance_code):
    """Create contract NUMBER."""

    def add():
        instance = configurations.get_instance(instance_code) if instance_code else None
        return accounts.add_contract(number, name, password, email, instance)

    contract = call_service(add)
    click.echo(f"Contract {contract.number} created.")


@contract_cli.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--instance", "instance_code", help="Link new contracts to it.")
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
@click.option("--partial", is_flag=True, help="Write the good rows despite bad ones.")
def contract_import_(file, instance_code, dry_run, partial):
    """Create or update contracts from a CSV file (see README)."""
    rows_max = current_app.config["CONTRACT_IMPORT_MAX_ROWS"]
    report = call_service(
        contract_import.run, file.read(), instance_code, dry_run, partial, rows_max
    )
    for refusal in report.refused:
        click.echo(f"refused {refusal}", err=True)
    counts = ", ".join(f"{n} {key}" for key, n in report.counts().items())
    if report.refused and not partial:  # a dry run too: the file would be refused
        fail(f"{len(report.refused)} rows refused, nothing written ({counts})")
    done = "dry run, nothing written" if dry_run else "written"
    click.echo(f"{counts} ({done}; {report.encoding}, '{report.delimiter}').")


@contract_cli.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def contract_show(number, as_json):
    """Show contract NUMBER: name, instance, balance."""

    def show():
        contract = accounts.get_contract(number)
        return {
            "number": contract.number,
            "name": contract.name,
            "email": contract.email,
            "instance": contract.instance.code if contract.instance_id else None,
            "balance": format_signed(contract.balance),
            "ledger_balance": format_signed(ledger_balance(contract)),
        }

    info = call_service(show)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    for key, value in info.items():
        click.echo(f"{key}: {'' if value is None else value}")


@operator_cli.command("add")
@click.argument("login")
@password_option()
@click.option("--admin", is_flag=True, help="Give the admin role.")
def operator_add(login, password, admin):
    """Create console operator LOGIN."""
    operator = call_service(accounts.add_operator, login, password, admin)
    click.echo(f"Operator {operator.login} ({operator.role}) created.")


@contract_cli.command("password")
@click.argument("number")
@password_option()
def contract_password(number, password):
    """Give contract NUMBER a new password; its sessions end."""
    contract = call_service(accounts.set_contract_password, number, password)
    click.echo(f"Contract {contract.number}: new password set, sessions ended.")


@operator_cli.command("password")
@click.argument("login")
@password_option()
def operator_password(login, password):
    """Give operator LOGIN a new password; their sessions end."""
    operator = call_service(accounts.set_operator_password, login, password)
    click.echo(f"Operator {operator.login}: new password set, sessions ended.")


@operator_cli.command("deactivate")
@click.argument("login")
def operator_deactivate(login):
    """Shut operator LOGIN out of the console; their sessions end at once."""
    operator = call_service(accounts.set_operator_active, login, False)
    click.echo(f"Operator {operator.login} deactivated, sessions ended.")


@operator_cli.command("activate")
@click.argument("login")
def operator_activate(login):
    """Let operator LOGIN log in again (no earlier session comes back)."""
    operator = call_service(accounts.set_operator_active, login, True)
    click.echo(f"Operator {operator.login} active.")
