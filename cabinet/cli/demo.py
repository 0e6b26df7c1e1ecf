"""flask seed-demo: a demo shop on the sandbox, contracts and an operator."""

import click
from flask.cli import with_appcontext

from .. import accounts, billing, configurations
from ..migrations import create_tables
from ..models import Contract, ModuleInstance, Operator
from .common import call_service

DEMO = {
    "instance": "demo",
    "shop_id": "00000001",
    "login": "1001",
    "password": "demo-sandbox-password",
    "gateway_url": "http://127.0.0.1:5001",
    # The demo's "site", registered as the receipts' place of settlement.
    "place": "http://127.0.0.1:5000",
    # The sandbox's emulated billing (SANDBOX_BILLING_PASSWORD in run.py).
    "billing_login": "cabinet",
    "billing_password": "demo-billing-password",
}


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
                    # 54-FZ receipts through the sandbox's fiscal endpoints.
                    "fiscal=yes",
                    f"fiscal_gateway_url={gateway_url}",
                    "fiscal_taxmode=1",
                    "fiscal_vat=-1",
                    f"fiscal_place={DEMO['place']}",
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
        if not billing.connectors_of(instance):
            # The demo's credits arrive in "the billing": the sandbox's emulator.
            billing.add_connector(
                instance,
                "sandbox-billing",
                "osmp",
                {
                    "url": f"{gateway_url.rstrip('/')}/billing/osmp",
                    "login": DEMO["billing_login"],
                    "password": DEMO["billing_password"],
                    "cancel": "yes",
                },
                who="seed-demo",
            )
        if Operator.get_or_none(Operator.login == "admin") is None:
            accounts.add_operator("admin", "demo-admin", admin=True)

    call_service(seed)
    click.echo("Demo data ready:")
    click.echo(
        "  subscriber: contract 1001, password demo (also 1002; 1003 is unlinked)"
    )
    click.echo("  operator:   admin / demo-admin")
    click.echo(f"  gateway:    {gateway_url} (shop {shop_id}, 54-FZ receipts on)")
    click.echo(f"  billing:    {gateway_url.rstrip('/')}/billing/ (OSMP connector)")
