"""Deliveries to the ISP's billing: the outbox, OSMP and Standard Webhooks."""

import json
import re
import time
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from cabinet import autopay, billing, refunds
from cabinet.clock import utcnow
from cabinet.db import db
from cabinet.models import (
    AuditEntry,
    BillingConnector,
    BillingDelivery,
    ModuleInstance,
    Transaction,
)
from cabinet.queueing import flush_gathered
from tests.helpers import (
    ADMIN,
    BILLING_PASSWORD,
    OPERATOR,
    billing_deliveries,
    bind_autopay,
    console_login,
    in_app,
    make_deliveries_due,
    pay_by_card,
)


def deliver_all(world, run_jobs, rounds=5):
    """Run the jobs, letting backoffs pass, until nothing is pending."""
    for _ in range(rounds):
        run_jobs(world.app)
        if not any(
            d.state in ("pending", "sending") for d in billing_deliveries(world)
        ):
            return
        make_deliveries_due(world)
        with in_app(world.app):
            billing.sweep()


def test_a_credit_is_delivered_to_the_billing_once(osmp_world, run_jobs):
    world = osmp_world
    pay_by_card(world, "500")
    world.settle()
    (delivery,) = billing_deliveries(world)
    assert (delivery.kind, delivery.state, delivery.amount) == (
        "credit",
        "pending",
        50000,
    )
    run_jobs(world.app)
    (paid,) = world.billing.paid()
    assert (paid["account"], paid["sum"], paid["txn_id"]) == (
        "1001",
        "500.00",
        delivery.txn_id,
    )
    (delivery,) = billing_deliveries(world)
    assert (delivery.state, delivery.prv_txn) == ("done", paid["prv_txn"])
    with in_app(world.app):
        assert billing.deliver(delivery.id) == "done"  # run twice: nothing resent
    assert len(world.billing.books.state()["requests"]) == 1


def test_the_txn_id_is_at_most_20_digits_and_never_changes(osmp_world, run_jobs):
    world = osmp_world
    pay_by_card(world, "100")
    world.settle()
    (delivery,) = billing_deliveries(world)
    assert re.fullmatch(r"\d{19}", delivery.txn_id)
    assert int(delivery.txn_id) < 2**63  # fits a billing's bigint column
    (again,) = billing_deliveries(world)
    assert again.txn_id == delivery.txn_id


def test_no_connector_no_delivery(world, run_jobs):
    pay_by_card(world, "100")
    world.settle()
    assert billing_deliveries(world) == []


def test_osmp_result_1_is_tried_again_later_then_delivered(osmp_world, run_jobs):
    world = osmp_world
    world.billing.books.set_faults({"temporary": 2})
    pay_by_card(world, "300")
    world.settle()
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at > utcnow() + timedelta(seconds=30)
    assert "result 1" in delivery.last_answer
    deliver_all(world, run_jobs)
    (delivery,) = billing_deliveries(world)
    assert (delivery.state, delivery.attempts) == ("done", 3)
    assert len(world.billing.paid()) == 1


def test_a_final_error_lands_on_the_attention_list(osmp_world, run_jobs):
    world = osmp_world
    world.billing.books.set_faults({"refuse_accounts": ["1001"]})
    pay_by_card(world, "300")
    world.settle()
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    assert delivery.state == "failed"
    assert "result 5" in delivery.last_answer
    with in_app(world.app):
        assert [d.id for d in billing.attention()] == [delivery.id]
    assert world.billing.paid() == []


def test_retries_end_on_the_attention_list_after_the_configured_days(
    make_world, emulated_billing, run_jobs
):
    world = make_world(app_settings={"BILLING_RETRY_DAYS": 0.0001})
    with in_app(world.app):
        billing.add_connector(
            ModuleInstance.by_code("isp"),
            "books",
            "osmp",
            {"url": f"{emulated_billing.url}/osmp", "timeout": "2"},
        )
    emulated_billing.stop()
    pay_by_card(world, "300")
    world.settle()
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    assert delivery.state == "failed"
    assert "retries exhausted" in delivery.note


def test_the_billing_down_then_back_gets_every_credit_once(osmp_world, run_jobs):
    world = osmp_world
    world.billing.stop()
    for amount in ("100", "200", "300"):
        pay_by_card(world, amount)
    world.settle()
    run_jobs(world.app)
    assert {d.state for d in billing_deliveries(world)} == {"pending"}
    assert all("no answer" in d.last_answer for d in billing_deliveries(world))
    world.billing.start()
    deliver_all(world, run_jobs)
    assert sorted(p["sum"] for p in world.billing.paid()) == [
        "100.00",
        "200.00",
        "300.00",
    ]
    assert {d.state for d in billing_deliveries(world)} == {"done"}


def test_a_flushed_redis_loses_no_delivery(osmp_world, redis, run_jobs):
    world = osmp_world
    pay_by_card(world, "100")
    pay_by_card(world, "200")
    world.settle()
    flush_gathered()  # the callbacks' jobs are in Redis now
    redis.flushdb()  # and gone
    run_jobs(world.app)
    assert {d.state for d in billing_deliveries(world)} == {"pending"}
    with in_app(world.app):
        assert billing.sweep().looked_at == 0  # within the grace of their own jobs
        assert billing.sweep(now=utcnow() + timedelta(minutes=2)).looked_at == 2
    run_jobs(world.app)
    assert len(world.billing.paid()) == 2


def test_a_reversal_is_sent_after_its_credit_and_cancels_it(osmp_world, run_jobs):
    world = osmp_world
    world.billing.stop()
    order_id, _, _ = pay_by_card(world, "400")
    world.settle()
    run_jobs(world.app)  # the credit could not be sent
    with in_app(world.app):
        from cabinet import payments

        payments.apply_status(order_id, "canceled", source="status")
    make_deliveries_due(world)
    world.billing.start()
    (reversal,) = billing_deliveries(world, "reversal")
    with in_app(world.app):
        assert billing.deliver(reversal.id) == "waiting for its credit"
    assert world.billing.books.state()["requests"] == []
    deliver_all(world, run_jobs)
    (credit,) = billing_deliveries(world, "credit")
    (reversal,) = billing_deliveries(world, "reversal")
    assert (credit.state, reversal.state, reversal.amount) == ("done", "done", 40000)
    commands = [r[1] for r in world.billing.books.state()["requests"]]
    assert commands == ["pay", "cancel"]
    assert world.billing.paid() == []  # canceled at the billing


def test_a_reversal_without_cancel_waits_for_an_operator(osmp_world, run_jobs):
    world = osmp_world
    with in_app(world.app):
        connector = BillingConnector.get()
        billing.update_connector(connector, {**connector.params, "cancel": "no"})
    order_id, _, _ = pay_by_card(world, "400")
    world.settle()
    run_jobs(world.app)
    with in_app(world.app):
        from cabinet import payments

        payments.apply_status(order_id, "canceled", source="status")
    run_jobs(world.app)
    (reversal,) = billing_deliveries(world, "reversal")
    assert reversal.state == "attention"
    with in_app(world.app):
        billing.mark_done(reversal.id, "cancelled in the billing by hand", who="cli")
        entry = AuditEntry.get(AuditEntry.action == "billing_delivery.done")
    assert entry.after["note"] == "cancelled in the billing by hand"
    assert billing_deliveries(world, "reversal")[0].state == "done"


def test_a_refused_account_is_readdressed_and_delivered(osmp_world, run_jobs):
    world = osmp_world
    world.billing.books.set_faults({"refuse_accounts": ["1001"]})
    pay_by_card(world, "300")
    world.settle()
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    with in_app(world.app):
        billing.readdress(delivery.id, "1001-01", who="cli")
    run_jobs(world.app)
    (paid,) = world.billing.paid()
    assert paid["account"] == "1001-01"
    assert billing_deliveries(world)[0].state == "done"


@pytest.fixture
def webhook_world(world, emulated_billing):
    """The live pair with a webhook connector whose made secret the receiver has."""
    with in_app(world.app):
        connector = billing.add_connector(
            ModuleInstance.by_code("isp"),
            "hook",
            "webhook",
            {"url": f"{emulated_billing.url}/webhook", "timeout": "2"},
        )
    emulated_billing.books.webhook_secret = connector.params["secret"]
    world.billing = emulated_billing
    return world


def test_a_webhook_is_signed_as_standard_webhooks_verify_it(webhook_world, run_jobs):
    world = webhook_world
    pay_by_card(world, "250")
    world.settle()
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    assert delivery.state == "done"
    # The receiver verified it with the standardwebhooks library, not our code.
    (event,) = world.billing.books.state()["webhooks"].values()
    assert event["type"] == "payment.credited"
    assert event["data"]["amount"] == "250.00"
    assert event["data"]["contract"] == "1001"
    assert event["data"]["delivery_id"] == delivery.txn_id
    with in_app(world.app):
        assert BillingConnector.get().params["secret"].startswith("whsec_")


def test_our_signature_matches_the_library(ctx):
    from cabinet.billing import connectors, protocols

    secret = connectors.new_secret()
    body = b'{"type":"ping"}'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time()))}
    headers["webhook-signature"] = protocols.sign(
        secret, "msg_1", headers["webhook-timestamp"], body
    )
    assert Webhook(secret).verify(body, headers) == {"type": "ping"}


def test_a_webhook_with_a_wrong_secret_is_refused_and_listed(webhook_world, run_jobs):
    world = webhook_world
    world.billing.books.webhook_secret = billing.connectors.new_secret()
    pay_by_card(world, "250")
    world.settle()
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    assert delivery.state == "failed"
    assert "HTTP 401" in delivery.last_answer


def test_a_done_refund_is_delivered_as_its_event(webhook_world, run_jobs):
    world = webhook_world
    order_id, _, _ = pay_by_card(world, "500")
    world.settle()
    run_jobs(world.app)
    with in_app(world.app):
        refund = refunds.start_refund(Transaction.by_order_id(order_id), 20000, None)
        assert refund.status == "done"
    run_jobs(world.app)
    events = sorted(
        (e["type"], e["data"]["amount"])
        for e in world.billing.books.state()["webhooks"].values()
    )
    assert events == [("payment.credited", "500.00"), ("refund.completed", "200.00")]


def test_bad_connector_parameters_are_refused_and_nothing_is_saved(demo):
    instance = demo["instance"]
    bad = [
        ("osmp", {}),
        ("osmp", {"url": "ftp://billing"}),
        ("osmp", {"url": "https://u:p@billing/osmp"}),
        ("osmp", {"url": "https://billing", "colour": "red"}),
        ("osmp", {"url": "https://billing", "cancel": "maybe"}),
        ("osmp", {"url": "https://billing", "timeout": "0"}),
        ("webhook", {"url": "https://hook", "secret": "plain"}),
        ("webhook", {"url": "https://hook", "events": "payment.lost"}),
        ("carrier-pigeon", {"url": "https://billing"}),
    ]
    for kind, values in bad:
        with pytest.raises(billing.ConnectorError):
            billing.add_connector(instance, "x", kind, values)
    assert BillingConnector.select().count() == 0
    assert AuditEntry.select().count() == 0


def test_connector_secrets_are_written_never_shown(demo):
    connector = billing.add_connector(
        demo["instance"],
        "books",
        "osmp",
        {"url": "https://billing/osmp", "login": "l", "password": "pw-9Zq"},
    )
    entry = AuditEntry.get(AuditEntry.action == "billing_connector.create")
    assert "pw-9Zq" not in str(entry.after)
    assert billing.shown_params(connector.params)["password"] == "***"
    # An edit that leaves the password out keeps it.
    edited = billing.update_connector(connector, {"url": "https://billing/v2"})
    assert edited.params["password"] == "pw-9Zq"


def test_a_delivery_is_written_in_the_unit_of_its_credit(osmp_world, monkeypatch):
    world = osmp_world
    from cabinet.billing import outbox

    def broken(*args, **kwargs):
        raise RuntimeError("the outbox row could not be written")

    monkeypatch.setattr(outbox.BillingDelivery, "insert", broken)
    order_id, _, _ = pay_by_card(world, "100")
    world.settle()
    with in_app(world.app):
        # No credit without its delivery: the callback's unit rolled back whole.
        assert Transaction.by_order_id(order_id).status == "new"
        assert BillingDelivery.select().count() == 0


def run_cli(app, *args):
    """Run a flask command against the app; close the connection it left open."""
    result = app.test_cli_runner().invoke(args=list(args))
    with app.app_context():
        if not db.is_closed():
            db.close()
    return result


def test_connectors_from_the_command_line(osmp_world, run_jobs):
    world = osmp_world
    app = world.app
    added = run_cli(
        app,
        "billing",
        "add",
        "isp",
        "crm",
        "--kind",
        "webhook",
        "--set",
        f"url={world.billing.url}/webhook",
    )
    assert added.exit_code == 0, added.output
    assert "whsec_" in added.output  # shown once, for the receiver
    listed = run_cli(app, "billing", "list")
    assert "crm webhook" in listed.output and "secret = ***" in listed.output
    assert BILLING_PASSWORD not in listed.output
    assert "whsec_" not in listed.output
    tested = run_cli(app, "billing", "test", "isp", "books", "--account", "1001")
    assert tested.exit_code == 0 and "result 0" in tested.output
    pay_by_card(world, "100")
    world.settle()
    shown = run_cli(app, "billing", "deliveries", "--state", "pending", "--json")
    rows = [json.loads(line) for line in shown.output.splitlines()]
    assert sorted(r["connector"] for r in rows) == ["books", "crm"]
    assert {r["amount"] for r in rows} == {"100.00"}


def test_bad_billing_commands_say_why_and_change_nothing(osmp_world):
    app = osmp_world.app
    for args in (
        ("billing", "add", "isp", "x", "--kind", "osmp", "--set", "url=nowhere"),
        ("billing", "add", "isp", "x", "--kind", "osmp", "--set", "colour=red"),
        ("billing", "add", "isp", "x", "--kind", "osmp", "--set", "oops"),
        ("billing", "add", "nosuch", "x", "--kind", "osmp", "--set", "url=http://b"),
        ("billing", "add", "isp", "books", "--kind", "osmp", "--set", "url=http://b"),
        ("billing", "retry", "999"),
        ("billing", "test", "isp", "books"),
    ):
        result = run_cli(app, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Error: " in result.output
    with in_app(app):
        assert BillingConnector.select().count() == 1


def test_retry_from_the_command_line_sends_it_again(osmp_world, run_jobs):
    world = osmp_world
    world.billing.books.set_faults({"final_result": 8})
    pay_by_card(world, "100")
    world.settle()
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    assert delivery.state == "failed"
    world.billing.books.set_faults({"final_result": 0})
    assert run_cli(world.app, "billing", "retry", str(delivery.id)).exit_code == 0
    run_jobs(world.app)
    assert billing_deliveries(world)[0].state == "done"
    assert run_cli(world.app, "billing", "retry", str(delivery.id)).exit_code == 2


def test_the_demo_delivers_to_the_sandbox_billing(app, tmp_path):
    from cabinet.cli import DEMO
    from cabinet.uniteller.sandbox import create_app as create_sandbox
    from cabinet.uniteller.sandbox.testing import serve_in_thread

    sandbox_app = create_sandbox(
        {
            "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
            "SANDBOX_BILLING_PASSWORD": DEMO["billing_password"],
        }
    )
    with serve_in_thread(sandbox_app) as sandbox:
        # As run.py does: the demo's gateway is the sandbox, named as allowed.
        extra = app.config.get("UNITELLER_EXTRA_GATEWAYS", "")
        app.config["UNITELLER_EXTRA_GATEWAYS"] = f"{extra},{sandbox.url}".strip(",")
        try:
            for _ in range(2):  # seed-demo is repeatable: one connector
                seeded = run_cli(app, "seed-demo", "--gateway-url", sandbox.url)
                assert seeded.exit_code == 0, seeded.output
            with in_app(app):
                assert BillingConnector.select().count() == 1
            tested = run_cli(
                app, "billing", "test", "demo", "sandbox-billing", "--account", "1001"
            )
            assert tested.exit_code == 0, tested.output
        finally:
            sandbox_app.extensions["sandbox"].close()


def console_of(world):
    """A test client of the live app with the admin logged into the console."""
    from cabinet import accounts

    with in_app(world.app):
        accounts.add_operator(*ADMIN, admin=True)
        accounts.add_operator(*OPERATOR)
    client = world.app.test_client()
    console_login(client)
    return client


def test_an_admin_adds_a_connector_in_the_console(world):
    client = console_of(world)
    page = client.post(
        "/console/instances/isp/billing",
        data={
            "name": "books",
            "kind": "osmp",
            "url": "https://billing.example/osmp",
            "login": "cabinet",
            "password": "console-secret-77",
            "cancel": "yes",
        },
        follow_redirects=True,
    )
    assert page.status_code == 200
    assert "password=***" in page.text and "console-secret-77" not in page.text
    with in_app(world.app):
        connector = BillingConnector.get()
        assert connector.params["password"] == "console-secret-77"
        entry = AuditEntry.get(AuditEntry.action == "billing_connector.create")
        assert entry.login == ADMIN[0] and entry.after["password"] == "***"
    refused = client.post(
        "/console/instances/isp/billing",
        data={"name": "other", "kind": "osmp", "url": "gopher://x"},
    )
    assert refused.status_code == 400
    with in_app(world.app):
        assert BillingConnector.select().count() == 1


def test_connectors_are_for_admins_only(world):
    client = console_of(world)
    client.post("/console/logout")
    console_login(client, OPERATOR)
    assert client.get("/console/instances/isp/billing").status_code == 403


def test_the_attention_list_retries_and_marks_done_with_a_comment(osmp_world, run_jobs):
    world = osmp_world
    world.billing.books.set_faults({"final_result": 7})
    order_id, _, _ = pay_by_card(world, "100")
    world.settle()
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    client = console_of(world)
    page = client.get("/console/billing/attention")
    assert f'id="delivery-{delivery.id}"' in page.text and "result 7" in page.text
    assert BILLING_PASSWORD not in page.text
    no_comment = client.post(f"/console/billing/deliveries/{delivery.id}/done")
    assert no_comment.status_code == 400
    assert billing_deliveries(world)[0].state == "failed"
    done = client.post(
        f"/console/billing/deliveries/{delivery.id}/done",
        data={"comment": "entered in the billing by hand, #5512"},
    )
    assert done.status_code == 302
    assert billing_deliveries(world)[0].state == "done"
    again = client.post(f"/console/billing/deliveries/{delivery.id}/retry")
    assert again.status_code == 409  # done is done
    transaction = client.get(f"/console/transactions/{order_id}")
    assert 'id="billing-deliveries"' in transaction.text
    assert delivery.txn_id in transaction.text and "result 7" in transaction.text
    assert BILLING_PASSWORD not in transaction.text


def test_metrics_count_deliveries_and_the_oldest_pending(osmp_world, run_jobs):
    world = osmp_world
    world.billing.stop()
    pay_by_card(world, "100")
    world.settle()
    text = world.app.test_client().get("/metrics").text
    assert 'cabinet_billing_deliveries{connector="isp/books",state="pending"} 1' in text
    oldest = re.search(r"^cabinet_billing_oldest_pending_seconds (\d+)$", text, re.M)
    assert oldest and int(oldest.group(1)) < 600
    world.billing.start()
    run_jobs(world.app)
    text = world.app.test_client().get("/metrics").text
    assert 'cabinet_billing_deliveries{connector="isp/books",state="done"} 1' in text
    assert "cabinet_billing_oldest_pending_seconds 0" in text


def test_a_connector_switched_off_holds_its_deliveries(osmp_world, run_jobs):
    world = osmp_world
    world.billing.stop()
    pay_by_card(world, "100")
    world.settle()
    run_jobs(world.app)
    with in_app(world.app):
        connector = BillingConnector.get()
        billing.update_connector(connector, connector.params, is_active=False)
    world.billing.start()
    make_deliveries_due(world)
    with in_app(world.app):
        assert billing.sweep().looked_at == 0
        assert billing.deliver(billing_deliveries(world)[0].id) == "connector off"
        billing.update_connector(connector, connector.params, is_active=True)
        assert billing.sweep().looked_at == 1
    run_jobs(world.app)
    assert len(world.billing.paid()) == 1


def test_an_autopay_charge_is_delivered_as_an_autopay_credit(
    autopay_world, emulated_billing, run_jobs
):
    world = autopay_world
    with in_app(world.app):
        connector = billing.add_connector(
            ModuleInstance.by_code("isp"),
            "hook",
            "webhook",
            {"url": f"{emulated_billing.url}/webhook", "timeout": "2"},
        )
    emulated_billing.books.webhook_secret = connector.params["secret"]
    bind_autopay(world, "automatic", "300")
    with in_app(world.app):
        autopay.request_charge("1001", 15000, "test", key="inv-1")
    for _ in range(3):
        run_jobs(world.app)
        world.settle()
    kinds = sorted(
        (e["data"]["kind"], e["data"]["amount"])
        for e in emulated_billing.books.state()["webhooks"].values()
    )
    assert kinds == [("autopay", "150.00"), ("payment", "300.00")]


def test_a_full_refund_cancels_the_payment_and_a_partial_one_needs_a_person(
    osmp_world, run_jobs
):
    world = osmp_world
    whole, _, _ = pay_by_card(world, "500")
    part, _, _ = pay_by_card(world, "600")
    world.settle()
    run_jobs(world.app)
    with in_app(world.app):
        for order_id, amount in ((whole, None), (part, 10000)):
            made = refunds.start_refund(Transaction.by_order_id(order_id), amount, None)
            assert made.status == "done"
    world.settle()
    run_jobs(world.app)
    # Uniteller's `canceled` callback may overtake its answer to the full refund:
    # then the reversal takes the money back and the refund takes nothing. Either
    # way one delivery takes it back at the billing, never both.
    taken_back = billing_deliveries(world, "refund") + billing_deliveries(
        world, "reversal"
    )
    by_order = {}
    for delivery in taken_back:
        by_order.setdefault(delivery.transaction.order_id, []).append(delivery)
    assert sorted(by_order) == sorted([whole, part])
    assert [d.state for d in by_order[whole]] == ["done"]
    ((partial,),) = [by_order[part]]
    assert partial.kind == "refund" and partial.state == "attention"
    assert "whole payment" in partial.note
    (left,) = world.billing.paid()  # the whole refund canceled its payment
    assert left["sum"] == "600.00"


def test_callbacks_gather_their_deliveries_into_dispatch_jobs(osmp_world, redis):
    from rq import Queue

    from cabinet.extensions import QUEUE_NAME

    world = osmp_world
    for amount in ("100", "200", "300"):
        pay_by_card(world, amount)
    world.settle()
    flush_gathered()
    jobs = Queue(QUEUE_NAME, connection=redis).get_jobs()
    # A callback enqueues no job of its own: its delivery joins a dispatch job.
    assert {job.func_name for job in jobs} == {"cabinet.jobs.dispatch_billing"}
    gathered = sorted(i for job in jobs for i in job.args[0])
    assert gathered == sorted(d.id for d in billing_deliveries(world))
