"""The flask CLI an ISP admin scripts with: messages and exit codes."""

import json

import pytest

from cabinet import accounts, payments
from cabinet import params as module_params
from cabinet.db import db
from cabinet.models import Contract, ModuleConfiguration, ModuleInstance
from tests.helpers import in_app


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def run(*args):
        result = runner.invoke(args=list(args))
        with app.app_context():
            if not db.is_closed():
                db.close()
        return result

    return run


def test_version_names_the_release_the_changelog_and_the_schema(cli):
    import re
    from pathlib import Path

    from cabinet import __version__, migrations

    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    result = cli("version")
    assert result.exit_code == 0
    assert result.output == (
        f"cabinet {__version__} (schema version {migrations.LATEST})\n"
    )
    changelog = Path(__file__).resolve().parent.parent / "CHANGELOG.md"
    assert f"\n## {__version__} " in changelog.read_text()


def test_a_whole_setup_from_the_command_line(cli, app):
    assert cli("init-db").exit_code == 0
    assert cli("instance", "add", "isp", "--name", "Main").exit_code == 0
    result = cli(
        "config",
        "add",
        "isp",
        "main",
        "--set",
        "shop_id=00000001",
        "--set",
        "password=s3cret-value",
        "--set",
        "login=42",
        "--activate",
    )
    assert result.exit_code == 0, result.output
    result = cli(
        "contract",
        "add",
        "1001",
        "--name",
        "Иванов",
        "--password",
        "pw-1001",
        "--instance",
        "isp",
    )
    assert result.exit_code == 0, result.output
    assert (
        cli(
            "operator", "add", "boss", "--password", "long-password", "--admin"
        ).exit_code
        == 0
    )
    shown = cli("contract", "show", "1001", "--json")
    assert json.loads(shown.output) == {
        "number": "1001",
        "name": "Иванов",
        "email": None,
        "instance": "isp",
        "balance": "0.00",
        "ledger_balance": "0.00",
    }
    config = cli("config", "show", "isp")
    assert "s3cret-value" not in config.output and "password = ***" in config.output


def test_balance_in_contract_show_follows_credits(cli, app, demo):
    with in_app(app):
        transaction, _ = payments.start_payment(demo["contract"], 12345, "u", "u")
        payments.apply_status(transaction.order_id, "paid", source="callback")
    shown = json.loads(cli("contract", "show", "1001", "--json").output)
    assert shown["balance"] == "123.45" and shown["ledger_balance"] == "123.45"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("config", "add", "isp", "x", "--set", "colour=red"),
            "unknown parameter 'colour'",
        ),
        (("config", "add", "isp", "x", "--set", "min_amount=abc"), "min_amount"),
        (("config", "add", "isp", "x", "--set", "gateway_url=ftp://x"), "gateway_url"),
        (
            (
                "config",
                "add",
                "isp",
                "x",
                "--set",
                "gateway_url=http://wpay.uniteller.ru",
            ),
            "gateway_url: https is required outside the sandbox",
        ),
        (
            (
                "config",
                "add",
                "isp",
                "x",
                "--set",
                "gateway_url=http://127.0.0.1.evil.ru",
            ),
            "https is required",
        ),
        (
            ("config", "add", "isp", "x", "--set", "min_amount=200000"),
            "min_amount: greater than the maximum payment",
        ),
        (
            (
                "config",
                "add",
                "isp",
                "x",
                "--set",
                "autopay_automatic=yes",
                "--set",
                "auto_threshold=100",
            ),
            "auto_target: give both the threshold",
        ),
        (
            (
                "config",
                "add",
                "isp",
                "x",
                "--set",
                "auto_threshold=100",
                "--set",
                "auto_target=500",
            ),
            "needs the automatic mode (autopay_automatic=yes)",
        ),
        (
            (
                "config",
                "add",
                "isp",
                "x",
                "--set",
                "autopay_automatic=yes",
                "--set",
                "auto_threshold=500",
                "--set",
                "auto_target=100",
            ),
            "above the threshold",
        ),
        (
            (
                "config",
                "add",
                "isp",
                "x",
                "--set",
                "autopay_automatic=yes",
                "--set",
                "auto_threshold=100",
                "--set",
                "auto_target=200000",
            ),
            "above the maximum payment",
        ),
        (
            ("config", "add", "isp", "x", "--set", "autopay_weekly=maybe"),
            "autopay_weekly: yes or no",
        ),
        (
            ("config", "add", "isp", "x", "--set", "autopay_retry_days=31"),
            "autopay_retry_days",
        ),
        (("config", "add", "isp", "x", "--set", "lifetime=-1"), "lifetime"),
        (
            ("config", "add", "isp", "x", "--set", "callback_fields=Nope"),
            "unknown field",
        ),
        (
            # 37 characters: Uniteller refuses more than 29 (v1.43, Table 2 #16).
            (
                "config",
                "add",
                "isp",
                "x",
                "--set",
                "callback_fields=BillNumber ApprovalCode Total Balance",
            ),
            "at most 29 characters",
        ),
        (("config", "add", "isp", "x", "--set", "shop_id"), "expected KEY=VALUE"),
        (("config", "add", "nowhere", "x"), "no instance 'nowhere'"),
        (("config", "activate", "isp", "missing"), "no configuration 'missing'"),
        (("contract", "add", "1001", "--name", "Dup", "--password", "pw-pw"), "exists"),
        (
            ("contract", "add", "bad number!", "--name", "X", "--password", "pw-pw"),
            "contract number",
        ),
        (
            (
                "contract",
                "add",
                "5",
                "--name",
                "X",
                "--password",
                "pw",
            ),
            "password",
        ),
        (
            (
                "contract",
                "add",
                "6",
                "--name",
                "X",
                "--password",
                "pw-pw",
                "--email",
                "x",
            ),
            "e-mail",
        ),
        (
            (
                "contract",
                "add",
                "6",
                "--name",
                "X",
                "--password",
                "pw-pw",
                "--email",
                "a@b.c\r\nBcc: x@y.z",
            ),
            "e-mail",
        ),
        (
            (
                "contract",
                "add",
                "6",
                "--name",
                "X",
                "--password",
                "pw-pw",
                "--email",
                "a" * 250 + "@b.ru",
            ),
            "e-mail",
        ),
        (("contract", "show", "9999"), "no contract '9999'"),
        (("instance", "add", "isp"), "exists"),
        (("instance", "add", "Bad Code"), "instance code"),
        (("operator", "add", "op", "--password", "short"), "at least 8"),
        (("contract", "password", "1001", "--password", "pw"), "at least 4"),
        (("contract", "password", "9999", "--password", "pw-pw"), "no contract"),
        (("operator", "password", "nobody", "--password", "long-pw!"), "no operator"),
        (("operator", "deactivate", "nobody"), "no operator 'nobody'"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_exit_code_2(
    cli, app, demo, args, message
):
    with in_app(app):
        before = (ModuleConfiguration.select().count(), Contract.select().count())
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    with app.app_context():
        after = (ModuleConfiguration.select().count(), Contract.select().count())
    assert before == after


@pytest.mark.parametrize(
    "url, saved",
    [
        ("https://wpay.uniteller.ru", "https://wpay.uniteller.ru"),
        ("https://FPAY.uniteller.ru:443/", "https://fpay.uniteller.ru"),
        ("http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        ("http://localhost:5001", "http://localhost:5001"),
        ("http://[::1]:5001", "http://[::1]:5001"),
        ("http://gateway.test", "http://gateway.test"),
        ("http://sandbox.localhost", "http://sandbox.localhost"),
    ],
)
def test_a_gateway_is_uniteller_or_named_in_the_setting(make_app, url, saved):
    app = make_app(
        UNITELLER_EXTRA_GATEWAYS="http://127.0.0.1:5001, http://localhost:5001,"
        "http://[::1]:5001/,http://gateway.test,http://sandbox.localhost"
    )
    with in_app(app):
        assert module_params.validate({"gateway_url": url})["gateway_url"] == saved
    with in_app(make_app(UNITELLER_EXTRA_GATEWAYS="")):
        if not saved.startswith("https://"):
            with pytest.raises(module_params.ParamError, match="not an address"):
                module_params.validate({"gateway_url": url})


def test_validation_messages_are_in_the_catalogue(app):
    from flask_babel import force_locale, gettext

    with app.test_request_context(), force_locale("ru"):
        with pytest.raises(module_params.ParamError) as caught:
            module_params.validate({"lifetime": "soon"})
        error = caught.value
        assert str(error) == "lifetime: a whole number of seconds, greater than 0"
        assert gettext(error.message, **error.values) == "целое число секунд больше 0"


def test_activating_another_configuration_leaves_exactly_one_active(cli, app, demo):
    sets = ("--set", "shop_id=2", "--set", "login=2", "--set", "password=spare-pw")
    assert cli("config", "add", "isp", "spare", *sets).exit_code == 0
    assert cli("config", "activate", "isp", "spare").exit_code == 0
    with in_app(app):
        active = [
            c.name
            for c in ModuleConfiguration.select().where(
                ModuleConfiguration.is_active == True  # noqa: E712
            )
        ]
    assert active == ["spare"]


def test_a_configuration_that_cannot_take_payments_stays_a_draft(cli, app, demo):
    assert cli("config", "add", "isp", "draft", "--set", "shop_id=2").exit_code == 0
    refused = cli("config", "activate", "isp", "draft")
    assert refused.exit_code == 2
    assert "cannot take payments: login, password not set" in refused.output
    with in_app(app):
        assert ModuleInstance.by_code("isp").active_configuration().name == "main"


def test_seed_demo_is_repeatable(cli, app):
    # make run names the sandbox's address in UNITELLER_EXTRA_GATEWAYS (run.py).
    app.config["UNITELLER_EXTRA_GATEWAYS"] = "http://127.0.0.1:5001"
    first = cli("seed-demo")
    assert first.exit_code == 0, first.output
    assert "1001" in first.output and "demo" in first.output
    assert cli("seed-demo").exit_code == 0
    with in_app(app):
        assert Contract.select().count() == 3


def test_passwords_are_asked_for_not_typed_on_the_command_line(app, demo):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["operator", "add", "boss"], input="a-long-password\n")
    assert made.exit_code == 0, made.output
    assert "a-long-password" not in made.output  # typed hidden, never echoed
    saved = runner.invoke(
        args=["config", "add", "isp", "spare", "--set", "shop_id=2"]
        + ["--set", "login=-", "--set", "password=-"],
        input="2002\nspare-shop-password\n",
    )
    assert saved.exit_code == 0, saved.output
    assert "spare-shop-password" not in saved.output
    with in_app(app):
        operator = accounts.get_operator("boss")
        assert accounts.password_matches(operator, "a-long-password")
        spare = ModuleConfiguration.get(ModuleConfiguration.name == "spare")
        assert (spare.params["login"], spare.params["password"]) == (
            "2002",
            "spare-shop-password",
        )
