"""Uniteller's callback: signed, idempotent, race-safe, answered quickly."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from peewee import OperationalError

from tests.helpers import balance, credits, events, new_payment, signed_callback, status


def test_valid_paid_callback_credits_the_balance(client, demo, shop):
    transaction = new_payment(demo["contract"])
    fields = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")
    response = client.post("/uniteller/isp/notify", data=fields)
    assert response.status_code == 200
    assert status(transaction) == "paid" and balance(demo["contract"]) == 50000


def test_fields_in_the_query_string_count_too(client, demo, shop):
    transaction = new_payment(demo["contract"])
    fields = signed_callback(transaction.order_id, "authorized", shop["password"])
    response = client.post("/uniteller/isp/notify", query_string=fields)
    assert response.status_code == 200 and balance(demo["contract"]) == 50000


def test_json_callbacks_are_accepted(client, demo, shop):
    transaction = new_payment(demo["contract"])
    fields = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")
    response = client.post("/uniteller/isp/notify", json=fields)
    assert response.status_code == 200 and status(transaction) == "paid"


def test_bad_or_missing_signature_is_refused_and_changes_nothing(client, demo, shop):
    transaction = new_payment(demo["contract"])
    good = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")
    flipped = good["Signature"][:-1] + ("0" if good["Signature"][-1] != "0" else "1")
    for signature in (flipped, good["Signature"].lower(), "", None):
        fields = dict(good)
        if signature is None:
            del fields["Signature"]
        else:
            fields["Signature"] = signature
        assert client.post("/uniteller/isp/notify", data=fields).status_code == 403
    wrong_password = signed_callback(transaction.order_id, "paid", "not-the-password")
    assert client.post("/uniteller/isp/notify", data=wrong_password).status_code == 403
    assert status(transaction) == "new" and balance(demo["contract"]) == 0
    assert len(events(transaction)) == 1  # only "created"


def test_unknown_instance_answers_like_a_bad_signature(client, demo, shop):
    fields = signed_callback("X-1", "paid", shop["password"])
    unknown = client.post("/uniteller/nowhere/notify", data=fields)
    forged = client.post("/uniteller/isp/notify", data={**fields, "Signature": "0"})
    assert (unknown.status_code, unknown.data) == (forged.status_code, forged.data)
    assert unknown.status_code == 403


def test_unknown_order_with_valid_signature_is_kept_as_orphan(client, demo, shop):
    from cabinet.models import TransactionEvent

    fields = signed_callback("UNKNOWN-7", "paid", shop["password"], "100.00")
    response = client.post("/uniteller/isp/notify", data=fields)
    assert response.status_code == 200
    assert (
        TransactionEvent.get(TransactionEvent.order_id == "UNKNOWN-7").kind == "orphan"
    )


def test_callback_is_verified_with_the_configuration_the_order_was_made_with(
    client, demo, shop
):
    from cabinet import configurations

    transaction = new_payment(demo["contract"])
    configurations.add_configuration(
        demo["instance"],
        "new-shop",
        ["shop_id=00000002", "login=2", "password=another-password"],
        activate=True,
    )
    fields = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")
    assert client.post("/uniteller/isp/notify", data=fields).status_code == 200
    assert balance(demo["contract"]) == 50000


def test_cancel_after_credit_reverses(client, demo, shop):
    transaction = new_payment(demo["contract"])
    client.post(
        "/uniteller/isp/notify",
        data=signed_callback(transaction.order_id, "paid", shop["password"]),
    )
    client.post(
        "/uniteller/isp/notify",
        data=signed_callback(transaction.order_id, "canceled", shop["password"]),
    )
    assert status(transaction) == "canceled" and balance(demo["contract"]) == 0


@pytest.mark.serial  # concurrency: not beside another busy worker
def test_thirty_concurrent_deliveries_credit_once(live_server, demo, shop):
    transaction = new_payment(demo["contract"])
    fields = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")
    url = f"{live_server.url}/uniteller/isp/notify"

    def deliver(_):
        return requests.post(url, data=fields, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(deliver, range(30)))
    assert answers == [200] * 30
    assert credits(transaction) == 1
    assert balance(demo["contract"]) == 50000
    assert len(events(transaction, "received")) == 30


def test_a_changed_shop_password_counts_from_the_next_callback(client, demo, shop):
    from cabinet import configurations
    from cabinet.models import ModuleConfiguration

    first, second = new_payment(demo["contract"]), new_payment(demo["contract"])
    paid = signed_callback(first.order_id, "paid", shop["password"], "500.00")
    assert client.post("/uniteller/isp/notify", data=paid).status_code == 200
    configuration = ModuleConfiguration.get_by_id(first.configuration_id)
    configurations.update_configuration(
        configuration, {**configuration.params, "password": "changed-password"}
    )
    stale = signed_callback(second.order_id, "paid", shop["password"], "500.00")
    assert client.post("/uniteller/isp/notify", data=stale).status_code == 403
    fresh = signed_callback(second.order_id, "paid", "changed-password", "500.00")
    assert client.post("/uniteller/isp/notify", data=fresh).status_code == 200
    assert balance(demo["contract"]) == 100000


def test_one_callback_is_a_handful_of_statements(client, demo, shop):
    import logging

    transaction = new_payment(demo["contract"])
    fields = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")
    statements = []

    class Count(logging.Handler):
        def emit(self, record):
            if isinstance(record.msg, tuple):  # peewee logs (sql, params)
                statements.append(record.msg[0])

    logger, handler = logging.getLogger("peewee"), Count()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        response = client.post("/uniteller/isp/notify", data=fields)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert response.data == b"credited" and balance(demo["contract"]) == 50000
    # Read order+configuration+instance+contract, update, events, ledger, balance.
    assert len(statements) <= 6, statements


def test_a_database_refusing_connections_answers_503_so_uniteller_sends_again(
    app, demo, shop, monkeypatch
):
    transaction = new_payment(demo["contract"])
    fields = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")

    def refused(*args, **kwargs):
        raise OperationalError("FATAL:  sorry, too many clients already")

    database = app.extensions["database"]
    with monkeypatch.context() as patch:
        patch.setattr(database, "connect", refused)
        answer = app.test_client().post("/uniteller/isp/notify", data=fields)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert status(transaction) == "new"
    again = app.test_client().post("/uniteller/isp/notify", data=fields)
    assert again.status_code == 200 and status(transaction) == "paid"
