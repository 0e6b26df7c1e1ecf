"""Operations: liveness, readiness, metrics, proxies and event retention."""

from datetime import timedelta

import pytest

from cabinet import retention
from cabinet.cron import build_cron_scheduler
from cabinet.models import LedgerEntry, Transaction, TransactionEvent, utcnow
from cabinet.tasks import run_task
from tests.helpers import new_payment, signed_callback

OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}


def test_healthz_answers_without_a_database(make_app):
    app = make_app()
    broken = make_app(DATABASE_URL="sqlite:////nonexistent/dir/cabinet.sqlite3")
    assert app.test_client().get("/healthz").status_code == 200
    assert broken.test_client().get("/healthz").data == b"ok\n"


def test_readyz_needs_the_cron_scheduler_heartbeat(app, redis):
    client = app.test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json["failing"] == ["cron"]
    assert answer.json["checks"]["database"] == answer.json["checks"]["redis"] == "ok"

    scheduler = build_cron_scheduler(app)
    scheduler.register_birth()  # what `python worker.py cron` does on start
    try:
        assert client.get("/readyz").json == {
            "status": "ok",
            "failing": [],
            "checks": {"database": "ok", "redis": "ok", "cron": "ok"},
        }
        app.config["CRON_HEARTBEAT_MAX_AGE"] = -1  # the heartbeat is now stale
        answer = client.get("/readyz")
        assert answer.status_code == 503 and answer.json["failing"] == ["cron"]
    finally:
        scheduler.register_death()


def test_readyz_fails_when_redis_is_down(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json["failing"] == ["redis", "cron"]
    assert answer.json["checks"]["redis"] == "unreachable (ConnectionError)"
    assert answer.json["checks"]["database"] == "ok"


def test_readyz_fails_when_the_database_is_down(make_app):
    make_app()  # the test schema is made on the first app's database
    broken = make_app(DATABASE_URL="sqlite:////nonexistent/dir/cabinet.sqlite3")
    answer = broken.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json["failing"] == ["database", "cron"]
    assert answer.json["checks"]["database"] == "unreachable (OperationalError)"


def test_metrics_count_transactions_callbacks_tasks_and_queues(client, demo, shop):
    paid = new_payment(demo["contract"])
    new_payment(demo["contract"])
    good = signed_callback(paid.order_id, "paid", shop["password"], "500.00")
    assert client.post("/uniteller/isp/notify", data=good).status_code == 200
    assert client.post("/uniteller/isp/notify", data=good).status_code == 200
    forged = dict(good, Signature="0" * 32)
    assert client.post("/uniteller/isp/notify", data=forged).status_code == 403
    run_task("retention")

    text = client.get("/metrics").get_data(as_text=True)
    assert 'cabinet_transactions{kind="payment",status="paid"} 1' in text
    assert 'cabinet_transactions{kind="payment",status="new"} 1' in text
    assert 'cabinet_callbacks_total{result="accepted"} 2' in text
    assert 'cabinet_callbacks_total{result="rejected"} 1' in text
    assert 'cabinet_task_runs_total{task="retention"} 1' in text
    assert 'cabinet_task_failures_total{task="retention"} 0' in text
    assert 'cabinet_task_last_success_timestamp_seconds{task="status-check"} 0' in text
    assert 'cabinet_task_last_success_timestamp_seconds{task="retention"} 0' not in text
    assert 'cabinet_queue_jobs{queue="cabinet",state="queued"}' in text
    assert 'cabinet_up{part="database"} 1' in text and 'part="redis"} 1' in text
    assert "# TYPE cabinet_callbacks_total counter" in text


def test_metrics_need_an_allowed_address_or_the_token(make_app, redis):
    app = make_app(METRICS_TOKEN="scrape-token-123")
    client = app.test_client()
    assert client.get("/metrics").status_code == 200  # 127.0.0.1 is allowed
    assert client.get("/metrics", environ_base=OUTSIDE).status_code == 403
    assert (
        client.get(
            "/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 403
    )
    assert (
        client.get(
            "/metrics",
            environ_base=OUTSIDE,
            headers={"Authorization": "Bearer scrape-token-123"},
        ).status_code
        == 200
    )


def test_without_a_token_setting_no_token_is_accepted(make_app, redis):
    client = make_app(METRICS_TOKEN="").test_client()
    assert (
        client.get(
            "/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer "}
        ).status_code
        == 403
    )


@pytest.mark.parametrize("proxies, status", [(0, 403), (1, 200)])
def test_trusted_proxies_decide_whose_address_counts(make_app, redis, proxies, status):
    app = make_app(TRUSTED_PROXIES=proxies, METRICS_ALLOW="10.1.2.0/24")
    answer = app.test_client().get(
        "/metrics",
        headers={"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https"},
    )
    assert answer.status_code == status


def _age(transaction, days):
    """Make a transaction's events `days` old."""
    TransactionEvent.update(created_at=utcnow() - timedelta(days=days)).where(
        TransactionEvent.transaction == transaction
    ).execute()


def test_retention_deletes_old_events_in_batches_and_nothing_else(
    make_app, ctx, demo, shop, monkeypatch
):
    ctx.config["EVENT_RETENTION_DAYS"] = 30
    monkeypatch.setattr(retention, "BATCH", 2)
    client = ctx.test_client()
    old, reviewed, recent = (new_payment(demo["contract"]) for _ in range(3))
    for transaction in (old, reviewed, recent):
        fields = signed_callback(transaction.order_id, "paid", shop["password"])
        assert client.post("/uniteller/isp/notify", data=fields).status_code == 200
    Transaction.update(needs_review=True).where(Transaction.id == reviewed.id).execute()
    _age(old, 31)
    _age(reviewed, 31)
    _age(recent, 29)
    kept = {
        t.id: TransactionEvent.select().where(TransactionEvent.transaction == t).count()
        for t in (reviewed, recent)
    }
    assert kept[recent.id] >= 3

    run = run_task("retention")

    assert run.changed == 3 and run.errors == 0
    assert (
        not TransactionEvent.select()
        .where(TransactionEvent.transaction == old)
        .exists()
    )
    for transaction_id, count in kept.items():
        assert (
            TransactionEvent.select()
            .where(TransactionEvent.transaction == transaction_id)
            .count()
            == count
        )
    assert Transaction.select().count() == 3
    assert LedgerEntry.select().count() == 3


def test_retention_keeps_everything_by_default(ctx, demo):
    transaction = new_payment(demo["contract"])
    _age(transaction, 3650)
    run = run_task("retention")
    assert run.changed == 0 and "kept forever" in run.note
    assert TransactionEvent.select().count() == 1
