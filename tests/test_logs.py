"""Logs: one line per event, JSON on request, order and contract named, no secret."""

import json
import logging
import sys

import pytest

from cabinet import acquirer
from cabinet.logs import JsonFormatter, TextFormatter
from cabinet.models import Transaction
from tests.helpers import in_app, new_payment, pay_by_card


@pytest.fixture
def shop():
    """Shop credentials unlike anything else in a log (the contract is 1001)."""
    return {
        "shop_id": "00000001",
        "login": "uniteller-login-5567",
        "password": "shop-password-never-logged",
    }


def test_json_lines_name_the_order_and_the_contract(ctx, demo, caplog):
    caplog.set_level(logging.INFO)
    transaction = new_payment(demo["contract"])
    record = next(r for r in caplog.records if r.getMessage().startswith("payment"))
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["order_id"] == transaction.order_id
    assert entry["contract"] == "1001"
    assert entry["level"] == "INFO" and entry["logger"] == "cabinet.payments"
    text = TextFormatter().format(record)
    assert f"order_id={transaction.order_id} contract=1001" in text


def test_a_traceback_stays_on_one_line():
    try:
        raise ValueError("first\nsecond")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    assert "\n" not in TextFormatter().format(record)
    assert "ValueError" in json.loads(JsonFormatter().format(record))["exception"]


def test_log_format_json_is_set_up_by_create_app(make_app):
    make_app(LOG_FORMAT="json")
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "_cabinet", 0)]
    assert len(handlers) == 1 and isinstance(handlers[0].formatter, JsonFormatter)
    make_app()
    assert isinstance(handlers[0].formatter, TextFormatter)


def test_a_payment_callback_and_results_call_log_no_secret(world, shop, caplog):
    caplog.set_level(logging.DEBUG)
    order_id, _, returned = pay_by_card(world)
    assert returned.status_code == 200
    world.settle()
    with in_app(world):
        transaction = Transaction.by_order_id(order_id)
        assert transaction.status in ("authorized", "paid")
        # /results/ is asked with the shop's login and password in the request.
        rows = acquirer.client_for(transaction.configuration).results(order_id=order_id)
    assert rows, "the sandbox knows the order"
    assert any(getattr(r, "order_id", None) == order_id for r in caplog.records)
    for formatter in (JsonFormatter(), TextFormatter()):
        logged = "\n".join(formatter.format(r) for r in caplog.records)
        assert shop["password"] not in logged
        assert shop["login"] not in logged
