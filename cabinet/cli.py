"""The flask CLI: what an ISP admin scripts with (see README)."""

import json
import sys

import click
from flask.cli import AppGroup, with_appcontext

from . import accounts, configurations
from . import params as module_params
from .db import db
from .errors import CabinetError
from .migrations import create_tables
from .models import Contract, ModuleConfiguration, ModuleInstance, Operator
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
    instance = _run(configurations.add_instance, code, name)
    click.echo(f"Instance {instance.code} created.")


@config_cli.command("add")
@click.argument("instance")
@click.argument("name")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter; repeat for each. Keys: " + ", ".join(module_params.PARAMS),
)
@click.option("--activate", is_flag=True, help="Make it the active configuration.")
def config_add(instance, name, assignments, activate):
    """Save configuration NAME of INSTANCE."""

    def add():
        return configurations.add_configuration(
            configurations.get_instance(instance),
            name,
            assignments,
            activate,
            who="cli",
        )

    configuration = _run(add)
    state = " and activated" if configuration.is_active else ""
    click.echo(f"Configuration {name} of {instance} saved{state}.")


@config_cli.command("activate")
@click.argument("instance")
@click.argument("name")
def config_activate(instance, name):
    """Make configuration NAME the active one of INSTANCE."""
    _run(
        lambda: configurations.activate_configuration(
            configurations.get_instance(instance), name
        )
    )
    click.echo(f"Configuration {name} of {instance} is active.")


@config_cli.command("show")
@click.argument("instance")
def config_show(instance):
    """List the configurations of INSTANCE with their parameters (secrets hidden)."""

    def show():
        rows = (
            ModuleConfiguration.select()
            .where(
                ModuleConfiguration.instance == configurations.get_instance(instance)
            )
            .order_by(ModuleConfiguration.name)
        )
        for configuration in rows:
            mark = "*" if configuration.is_active else " "
            click.echo(f"{mark} {configuration.name}")
            shown = module_params.redacted(
                module_params.effective(configuration.params)
            )
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
        instance = configurations.get_instance(instance_code) if instance_code else None
        return accounts.add_contract(number, name, password, email, instance)

    contract = _run(add)
    click.echo(f"Contract {contract.number} created.")


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
    operator = _run(accounts.add_operator, login, password, admin)
    click.echo(f"Operator {operator.login} ({operator.role}) created.")


autopay_cli = AppGroup("autopay", help="Autopay.")
token_cli = AppGroup("token", help="API tokens for the provider's own logic.")


@autopay_cli.command("charge")
@click.argument("contract")
@click.argument("amount")
@click.option("--reason", default="", help="Why (kept with the charge).")
@click.option(
    "--key", help="An idempotency key: the same key asks for the same charge."
)
def autopay_charge(contract, amount, reason, key):
    """Charge CONTRACT's card AMOUNT roubles now (automatic mode)."""
    from . import autopay
    from .money import AmountError, parse_amount

    try:
        kopecks = parse_amount(amount)
    except AmountError as exc:
        fail(f"amount {amount!r}: {exc}")
    charge = _run(autopay.request_charge, contract, kopecks, reason, "cli", key)
    click.echo(
        f"Charge {charge.id} ({charge.period}) of {format_signed(charge.amount)} "
        f"for contract {contract}: {charge.status}."
    )


@autopay_cli.command("show")
@click.argument("contract")
def autopay_show(contract):
    """Show CONTRACT's autopay: mode, state, card's parent order, last charges."""
    from . import autopay
    from .models import AutopayCharge

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

    _run(show)


@token_cli.command("add")
@click.argument("name")
def token_add(name):
    """Create API token NAME and print it (once: it is kept only hashed)."""
    from peewee import IntegrityError

    from .api import create_token

    def add():
        try:
            return create_token(name)[1]
        except IntegrityError:
            fail(f"token {name!r} exists already")

    click.echo(_run(add))


@token_cli.command("revoke")
@click.argument("name")
def token_revoke(name):
    """Revoke API token NAME."""
    from .models import ApiToken, utcnow

    def revoke():
        if (
            not ApiToken.update(revoked_at=utcnow())
            .where(ApiToken.name == name, ApiToken.revoked_at.is_null())
            .execute()
        ):
            fail(f"no active token {name!r}")

    _run(revoke)
    click.echo(f"Token {name} revoked.")


@token_cli.command("list")
def token_list():
    """List API tokens (names and dates, never the tokens)."""
    from .models import ApiToken

    def show():
        for row in ApiToken.select().order_by(ApiToken.name):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            click.echo(f"{row.name}\tcreated {row.created_at:%Y-%m-%d}\t{state}")

    _run(show)


@click.command("seed-demo")
@with_appcontext
@click.option(
    "--gateway-url",
    default=DEMO["gateway_url"],
    show_default=True,
    help="Where the demo configuration sends payments (the sandbox).",
)
@click.option("--shop-id", default=DEMO["shop_id"], show_default=True)
@click.option("--shop-login", default=DEMO["login"], show_default=True)
@click.option("--shop-password", default=DEMO["password"], show_default=True)
def seed_demo(gateway_url, shop_id, shop_login, shop_password):
    """Create the demo instance, configuration, contracts and operator (reuses them)."""
    create_tables()

    def seed():
        instance = ModuleInstance.by_code(
            DEMO["instance"]
        ) or configurations.add_instance(DEMO["instance"], "Uniteller (sandbox)")
        if instance.active_configuration() is None:
            configurations.add_configuration(
                instance,
                "sandbox",
                [
                    f"shop_id={shop_id}",
                    f"login={shop_login}",
                    f"password={shop_password}",
                    f"gateway_url={gateway_url}",
                    "min_amount=1.00",
                    "max_amount=15000.00",
                    "autopay_weekly=yes",
                    "autopay_monthly=yes",
                    "autopay_automatic=yes",
                    "auto_threshold=100.00",
                    "auto_target=500.00",
                ],
                activate=True,
                who="seed-demo",
            )
        contracts = [
            ("1001", "Иванов Иван Иванович", "demo", "ivanov@example.com", instance),
            ("1002", "Петрова Анна Сергеевна", "demo", None, instance),
            ("1003", "ООО «Ромашка» (не подключён)", "demo", None, None),
        ]
        for number, name, password, email, linked in contracts:
            if Contract.by_number(number) is None:
                accounts.add_contract(number, name, password, email, linked)
        if Operator.get_or_none(Operator.login == "admin") is None:
            accounts.add_operator("admin", "demo-admin", admin=True)

    _run(seed)
    click.echo("Demo data ready:")
    click.echo(
        "  subscriber: contract 1001, password demo (also 1002; 1003 is unlinked)"
    )
    click.echo("  operator:   admin / demo-admin")
    click.echo(f"  gateway:    {gateway_url} (shop {shop_id})")


@click.group("tasks", cls=AppGroup, invoke_without_command=True)
@click.pass_context
@with_appcontext
def tasks_cli(ctx):
    """Scheduled tasks: without a subcommand, list them with their last runs."""
    if ctx.invoked_subcommand is None:
        _print_tasks()


@tasks_cli.command("list")
def tasks_list():
    """List the tasks with their schedules and last runs."""
    _print_tasks()


def _print_tasks():
    from flask import current_app

    from .models import TaskRun
    from .tasks import TASKS, cron_of

    def show():
        for task in TASKS.values():
            local = current_app.config[task.cron_setting]
            click.echo(f"{task.name}: {task.description}")
            click.echo(
                f"    schedule: {local} ({current_app.config['TIMEZONE']}) "
                f"= {cron_of(task)} UTC  [{task.cron_setting}]"
            )
            runs = TaskRun.latest(task.name)
            if not runs:
                click.echo("    never run")
            for run in runs:
                finished = (
                    run.finished_at.strftime("%H:%M:%S") if run.finished_at else "…"
                )
                click.echo(
                    f"    {run.started_at:%Y-%m-%d %H:%M:%S} UTC -> {finished}  "
                    f"{run.trigger:<6} looked at {run.looked_at}, "
                    f"changed {run.changed}, "
                    f"errors {run.errors}" + (f"  ({run.note})" if run.note else "")
                )

    _run(show)


@tasks_cli.command("run")
@click.argument("name")
def tasks_run(name):
    """Run task NAME now and print what it did."""
    from .tasks import TASKS, run_task

    if name not in TASKS:
        fail(f"no task {name!r}; tasks: {', '.join(TASKS)}")
    run = _run(run_task, name, "manual")
    click.echo(
        f"{name}: looked at {run.looked_at}, changed {run.changed}, "
        f"errors {run.errors}" + (f" ({run.note})" if run.note else "")
    )
    if run.errors:
        sys.exit(1)


@click.command("reconcile")
@click.argument("instance")
@click.option(
    "--from",
    "day_from",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="First day (YYYY-MM-DD, in TIMEZONE).",
)
@click.option(
    "--to",
    "day_to",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Last day, inclusive.",
)
@click.option("--fix", is_flag=True, help="Credit what Uniteller reports paid.")
@with_appcontext
def reconcile_command(instance, day_from, day_to, fix):
    """Compare INSTANCE's transactions of a period with Uniteller's /results/."""
    from .reconcile import reconcile
    from .uniteller.client import UnitellerError

    if day_to < day_from:
        fail("--to is before --from")

    def compare():
        try:
            return reconcile(
                configurations.get_instance(instance),
                day_from.date(),
                day_to.date(),
                fix=fix,
                who="cli",
            )
        except UnitellerError as exc:
            fail(f"Uniteller did not answer: {exc}")

    report = _run(compare)
    click.echo(
        f"ours: {report.ours} orders; Uniteller: {report.theirs} orders; "
        f"{report.requests} requests"
    )
    for d in report.differences:
        mark = "  fixed" if d.fixed else ""
        click.echo(
            f"{d.kind:<22} {d.order_id:<40} ours={d.ours or '-':<12} "
            f"uniteller={d.theirs or '-'}{mark}"
        )
    left = [d for d in report.differences if not d.fixed]
    click.echo(f"{len(report.differences)} differences, {len(left)} left")
    if left:
        sys.exit(1)


def init_app(app):
    """Register the commands on the app."""
    for command in (
        instance_cli,
        config_cli,
        contract_cli,
        operator_cli,
        seed_demo,
        tasks_cli,
        reconcile_command,
        autopay_cli,
        token_cli,
    ):
        app.cli.add_command(command)
