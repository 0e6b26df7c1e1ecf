"""The flask CLI: what an ISP admin scripts with (see README)."""

import json
import sys

import click
from flask.cli import AppGroup, with_appcontext

from . import manage
from . import params as module_params
from .db import create_tables, db
from .errors import CabinetError
from .models import ModuleConfiguration
from .money import format_signed
from .payments import ledger_balance

instance_cli = AppGroup("instance", help="Module instances.")
config_cli = AppGroup("config", help="Module configurations.")
contract_cli = AppGroup("contract", help="Subscribers' contracts.")
operator_cli = AppGroup("operator", help="Console operators.")

DEMO = {
    "instance": "demo",
    "shop_id": "00000001",
    "login": "1001",
    "password": "demo-sandbox-password",
    "gateway_url": "http://127.0.0.1:5001",
}


def fail(message, code=2):
    """Print an error to stderr and exit with `code`."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _run(func, *args, **kwargs):
    """Call a service inside a connection; turn our errors into a message and exit 2."""
    with db.connection_context():
        try:
            return func(*args, **kwargs)
        except (CabinetError, module_params.ParamError) as exc:
            fail(exc.message if isinstance(exc, CabinetError) else str(exc))


@instance_cli.command("add")
@click.argument("code")
@click.option("--name", help="A name people read (default: the code).")
def instance_add(code, name):
    """Create a module instance CODE."""
    instance = _run(manage.add_instance, code, name)
    click.echo(f"Instance {instance.code} created.")


@config_cli.command("add")
@click.argument("instance")
@click.argument("name")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="A parameter; repeat for each. Keys: " + ", ".join(module_params.PARAMS))
@click.option("--activate", is_flag=True, help="Make it the active configuration.")
def config_add(instance, name, assignments, activate):
    """Save configuration NAME of INSTANCE."""
    def add():
        return manage.add_configuration(
            manage.get_instance(instance), name, assignments, activate, who="cli"
        )
    configuration = _run(add)
    state = " and activated" if configuration.is_active else ""
    click.echo(f"Configuration {name} of {instance} saved{state}.")


@config_cli.command("activate")
@click.argument("instance")
@click.argument("name")
def config_activate(instance, name):
    """Make configuration NAME the active one of INSTANCE."""
    _run(lambda: manage.activate_configuration(manage.get_instance(instance), name))
    click.echo(f"Configuration {name} of {instance} is active.")


@config_cli.command("show")
@click.argument("instance")
def config_show(instance):
    """List the configurations of INSTANCE with their parameters (secrets hidden)."""
    def show():
        rows = ModuleConfiguration.select().where(
            ModuleConfiguration.instance == manage.get_instance(instance)
        ).order_by(ModuleConfiguration.name)
        for configuration in rows:
            mark = "*" if configuration.is_active else " "
            click.echo(f"{mark} {configuration.name}")
            shown = module_params.redacted(module_params.effective(configuration.params))
            for key, value in shown.items():
                click.echo(f"    {key} = {value}")
    _run(show)


@contract_cli.command("add")
@click.argument("number")
@click.option("--name", required=True)
@click.option("--password", required=True)
@click.option("--email")
@click.option("--instance", "instance_code", help="Link to this module instance.")
def contract_add(number, name, password, email, instance_code):
    """Create contract NUMBER."""
    def add():
        instance = manage.get_instance(instance_code) if instance_code else None
        return manage.add_contract(number, name, password, email, instance)
    contract = _run(add)
    click.echo(f"Contract {contract.number} created.")


@contract_cli.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def contract_show(number, as_json):
    """Show contract NUMBER: name, instance, balance."""
    def show():
        contract = manage.get_contract(number)
        return {
            "number": contract.number,
            "name": contract.name,
            "email": contract.email,
            "instance": contract.instance.code if contract.instance_id else None,
            "balance": format_signed(contract.balance),
            "ledger_balance": format_signed(ledger_balance(contract)),
        }
    info = _run(show)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    for key, value in info.items():
        click.echo(f"{key}: {'' if value is None else value}")


@operator_cli.command("add")
@click.argument("login")
@click.option("--password", required=True)
@click.option("--admin", is_flag=True, help="Give the admin role.")
def operator_add(login, password, admin):
    """Create console operator LOGIN."""
    operator = _run(manage.add_operator, login, password, admin)
    click.echo(f"Operator {operator.login} ({operator.role}) created.")


@click.command("seed-demo")
@with_appcontext
@click.option("--gateway-url", default=DEMO["gateway_url"], show_default=True,
              help="Where the demo configuration sends payments (the sandbox).")
@click.option("--shop-id", default=DEMO["shop_id"], show_default=True)
@click.option("--shop-login", default=DEMO["login"], show_default=True)
@click.option("--shop-password", default=DEMO["password"], show_default=True)
def seed_demo(gateway_url, shop_id, shop_login, shop_password):
    """Create the demo instance, configuration, contracts and operator (reuses them)."""
    create_tables()

    def seed():
        instance = manage.ModuleInstance.by_code(DEMO["instance"]) or manage.add_instance(
            DEMO["instance"], "Uniteller (sandbox)"
        )
        if instance.active_configuration() is None:
            manage.add_configuration(instance, "sandbox", [
                f"shop_id={shop_id}", f"login={shop_login}", f"password={shop_password}",
                f"gateway_url={gateway_url}", "min_amount=1.00",
                "max_amount=15000.00",
            ], activate=True, who="seed-demo")
        contracts = [
            ("1001", "Иванов Иван Иванович", "demo", "ivanov@example.com", instance),
            ("1002", "Петрова Анна Сергеевна", "demo", None, instance),
            ("1003", "ООО «Ромашка» (не подключён)", "demo", None, None),
        ]
        for number, name, password, email, linked in contracts:
            if manage.Contract.by_number(number) is None:
                manage.add_contract(number, name, password, email, linked)
        if manage.Operator.get_or_none(manage.Operator.login == "admin") is None:
            manage.add_operator("admin", "demo-admin", admin=True)
    _run(seed)
    click.echo("Demo data ready:")
    click.echo("  subscriber: contract 1001, password demo (also 1002; 1003 is unlinked)")
    click.echo("  operator:   admin / demo-admin")
    click.echo(f"  gateway:    {gateway_url} (shop {shop_id})")


def init_app(app):
    """Register the commands on the app."""
    for command in (instance_cli, config_cli, contract_cli, operator_cli, seed_demo):
        app.cli.add_command(command)
