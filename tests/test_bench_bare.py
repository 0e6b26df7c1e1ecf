"""The bench's bare-driver baseline runs the very statements a callback runs."""

import logging

from peewee import PostgresqlDatabase

from bench import bare
from cabinet import billing
from cabinet.db import db
from cabinet.models import ModuleInstance
from tests.helpers import in_app, new_payment, signed_callback


def test_the_baseline_runs_what_a_paid_callback_runs(app, client, demo, shop, caplog):
    with in_app(app):
        billing.add_connector(
            ModuleInstance.by_code("isp"),
            "books",
            "osmp",
            {"url": "http://127.0.0.1:9/osmp", "login": "a", "password": "b"},
        )
        postgresql = isinstance(db.obj, PostgresqlDatabase)
    transaction = new_payment(demo["contract"])
    fields = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")
    caplog.set_level(logging.DEBUG, logger="peewee")
    answer = client.post("/uniteller/isp/notify", data=fields)
    assert answer.status_code == 200 and b"credited" in answer.data
    ran = [r.msg[0] for r in caplog.records if r.name == "peewee"]
    expected = bare.statements(postgresql)
    assert ran == [
        expected[name]
        for name in (
            "order",
            "set_status",
            "events",
            "ledger",
            "balance",
            "connectors",
            "delivery",
        )
    ]
