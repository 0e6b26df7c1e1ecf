"""Scenarios 9 and 11: workers killed mid-charge, lost and refused gateway answers."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from cabinet import autopay, clock
from cabinet.acquirer import SLOT_MARGIN
from cabinet.extensions import QUEUE_NAME
from cabinet.models import AutopayCharge, Contract
from cabinet.uniteller.client import (
    CONNECT_TIMEOUT,
    READ_TIMEOUTS,
    OperationRefused,
    UnitellerClient,
    UnitellerError,
)
from tests.fault.tools import (
    WATCH,
    age_charges,
    expire_recurrent_slots,
    sandbox_orders,
    scaled,
)
from tests.helpers import add_autopays_like, bind_autopay, in_app, redis_url

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]

# The longest a killed worker's /recurrent/ slot may stay taken: no request of
# its could still be running at Uniteller after that.
RECURRENT_SLOT_HOLD = CONNECT_TIMEOUT + READ_TIMEOUTS["/recurrent/"] + SLOT_MARGIN


@pytest.fixture
def weekly_world(make_world):
    """The live pair with weekly autopay allowed."""
    return make_world(
        app_settings={"RESOLVE_DELAY": 0},
        config=("autopay_weekly=yes", "autopay_retry_days=2"),
    )


def due_wednesday(world):
    """The next Wednesday (today included) at 07:00 Moscow, as naive UTC."""
    with in_app(world.app):
        today = clock.local_today()
    day = today + timedelta(days=(2 - today.weekday()) % 7)
    return datetime(day.year, day.month, day.day, 4)


def charged_at_sandbox(world):
    """Successful recurrent charges at the sandbox, per autopay and period."""
    charged = {}
    for order in sandbox_orders(world):
        if order["order_id"].startswith("R") and order["status"] in (
            "paid",
            "authorized",
        ):
            charge = order["order_id"].rsplit("-", 1)[0]  # R<autopay>-<period>
            charged[charge] = charged.get(charge, 0) + 1
    return charged


def move_scheduled_jobs(redis):
    """Make delayed jobs due now (the 30 s resend and the resolve delay)."""
    queue = Queue(QUEUE_NAME, connection=redis)
    registry = ScheduledJobRegistry(queue=queue)
    for job_id in registry.get_job_ids():
        registry.remove(job_id)
        job = queue.fetch_job(job_id)
        if job is not None:  # a worker's own scheduler may have moved it first
            queue.enqueue_job(job)


def blocked_dequeues(redis):
    """Count the clients of the test's Redis database waiting for a job."""
    number = str(redis.connection_pool.connection_kwargs["db"])
    return sum(
        client.get("db") == number and client.get("cmd") in ("blmove", "blpop")
        for client in redis.client_list()
    )


class Worker:
    """`python worker.py` in a process of its own, against the test's app settings."""

    def __init__(self, world, database_url, redis, tmp_path, kill_at=None):
        self.redis = redis
        env = {
            **os.environ,
            "TESTING": "1",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url(redis),
            "SECRET_KEY": world.app.config["SECRET_KEY"],
            "PUBLIC_URL": world.url,
            "INSTANCE_DIR": str(tmp_path),
            "RESULTS_MIN_INTERVAL": "0.05",
            "RESOLVE_DELAY": "0",
            "LOG_LEVEL": "INFO",
        }
        env.pop("CABINET_KILL_AT", None)
        if kill_at:
            env["CABINET_KILL_AT"] = kill_at
        self.log = tmp_path / f"worker-{kill_at or 'plain'}-{time.monotonic_ns()}.log"
        # A group of its own: RQ's scheduler runs in a child process, which must
        # die with the worker rather than keep moving jobs for later tests.
        self.process = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def kill(self):
        """SIGKILL the worker and its children; return once nothing of it is left.

        Its scheduler, a child, shares its Redis socket: until the last of them
        has exited and Redis has seen the socket close, Redis still counts the
        dead worker's dequeue as waiting and hands it the next job enqueued,
        which then sits in RQ's intermediate queue and never runs. On a busy
        machine that lasts a while after the worker itself is reaped.
        """
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        # Scenario 9 runs one worker at a time: once it is dead, none waits.
        assert wait_for(lambda: blocked_dequeues(self.redis) == 0, 30)
        WATCH.log("worker.py", self.log.read_text(errors="replace"))


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("point", ["before_send", "after_send", "before_record"])
def test_9_a_worker_killed_around_a_charge_never_charges_twice(
    weekly_world, database_url, redis, tmp_path, figure, point
):
    world = weekly_world
    bind_autopay(world, "weekly", "300", weekday=2)
    # Three subscribers: a run's charges go as one batch job whose tries run
    # side by side, so the kill finds the others anywhere in their own tries.
    add_autopays_like(world, 2)
    world.faults(drop_callbacks=True)  # only the worker's own answer could settle it
    rounds = scaled(5, 1)
    for round_ in range(rounds):
        with in_app(world.app):
            # A period per round: the same autopays, a later week each time.
            autopay.run(now=due_wednesday(world) + timedelta(weeks=round_))
            charges = [
                c.id for c in AutopayCharge.select().where(AutopayCharge.tries == 0)
            ]
        assert len(charges) == 3
        doomed = Worker(world, database_url, redis, tmp_path, kill_at=point)
        failed = FailedJobRegistry(queue=Queue(QUEUE_NAME, connection=redis))
        died = wait_for(lambda n=round_ + 1, failed=failed: failed.count >= n)
        doomed.kill()
        assert died, f"the job did not die at {point}"
        # Killed holding /recurrent/ slots (before_record's own try gave its
        # back; the others' may be held): a slot frees itself once its request
        # could no longer run. Let that time pass rather than wait it out.
        held = expire_recurrent_slots(redis)
        assert point == "before_record" or held, held
        assert len(held) <= 3 and all(0 < left <= RECURRENT_SLOT_HOLD for left in held)
        with in_app(world.app):
            left = [AutopayCharge.get_by_id(pk).status for pk in charges]
        assert "sending" in left and set(left) <= {"sending", "due"}, left
        age_charges(world, 11)  # the daily run finds the charges stuck or lost
        with in_app(world.app):
            autopay.run(now=due_wednesday(world) + timedelta(weeks=round_))
        restarted = Worker(world, database_url, redis, tmp_path)
        try:

            def settled(charges=charges):
                move_scheduled_jobs(redis)
                with in_app(world.app):
                    return all(
                        AutopayCharge.get_by_id(pk).status == "succeeded"
                        for pk in charges
                    )

            assert wait_for(settled), f"charges not settled after a kill {point}"
        finally:
            restarted.kill()
    charged = charged_at_sandbox(world)
    doubles = figure(
        9, f"double charges ({point})", sum(n - 1 for n in charged.values()), 0
    )
    assert doubles == 0 and len(charged) == 3 * rounds
    with in_app(world.app):
        assert Contract.by_number("1001").balance == 30000 * (1 + rounds)
        assert Contract.by_number("2001").balance == 30000 * rounds


def _answer_lost_after_charging(kind):
    """A /recurrent/ that charges at Uniteller, then loses or refuses the answer."""
    real = UnitellerClient.recurrent
    lost = []

    def recurrent(self, order_id, *args, **kwargs):
        answer = real(self, order_id, *args, **kwargs)
        if order_id in lost:
            return answer
        lost.append(order_id)
        if kind == "28":
            raise OperationRefused("recurrent", 28, "Payment result not received")
        raise UnitellerError("recurrent: HTTP 502")

    return recurrent


@pytest.mark.parametrize(
    "fault", ["timeout", "http_500", "code_15", "code_28", "502_after_charging"]
)
def test_11_unknown_gateway_answers_are_resolved_before_any_retry(
    weekly_world, run_jobs, redis, figure, monkeypatch, fault
):
    world = weekly_world
    bind_autopay(world, "weekly", "300", weekday=2)
    world.faults(drop_callbacks=True)
    calls = []
    recurrent, results = UnitellerClient.recurrent, UnitellerClient.results
    if fault == "code_28":
        recurrent = _answer_lost_after_charging("28")
    elif fault == "502_after_charging":
        recurrent = _answer_lost_after_charging("502")

    def logged_recurrent(self, order_id, *args, **kwargs):
        calls.append(("send", order_id))
        return recurrent(self, order_id, *args, **kwargs)

    def logged_results(self, order_id=None, **kwargs):
        calls.append(("ask", order_id))
        return results(self, order_id=order_id, **kwargs)

    monkeypatch.setattr(UnitellerClient, "recurrent", logged_recurrent)
    monkeypatch.setattr(UnitellerClient, "results", logged_results)
    if fault == "timeout":
        world.faults(latency_ms=800)
        monkeypatch.setattr(UnitellerClient, "__init__", _short_timeout(0.3))
    elif fault == "http_500":
        world.faults(error_rate=1.0, seed=11)
    elif fault == "code_15":
        world.faults(operation_failed=True)
    rounds = scaled(5, 1)
    for round_ in range(rounds):
        with in_app(world.app):
            autopay.run(now=due_wednesday(world) + timedelta(weeks=round_))
            charge = AutopayCharge.select().order_by(AutopayCharge.id.desc()).get()
        run_jobs(world.app)  # the try, whose answer is unknown
        if fault in ("timeout", "http_500", "code_15"):
            time.sleep(1)  # a late request lands before the faults clear
            world.faults(latency_ms=0, error_rate=0.0, operation_failed=False)
        for _ in range(6):
            move_scheduled_jobs(redis)
            run_jobs(world.app)
            world.settle()
            with in_app(world.app):
                if AutopayCharge.get_by_id(charge.id).status == "succeeded":
                    break
        with in_app(world.app):
            assert AutopayCharge.get_by_id(charge.id).status == "succeeded", calls
        if fault == "timeout":
            world.faults(latency_ms=800)
        elif fault == "http_500":
            world.faults(error_rate=1.0)
        elif fault == "code_15":
            world.faults(operation_failed=True)
    charged = charged_at_sandbox(world)
    blind_resends = 0
    for n, (kind, order_id) in enumerate(calls):
        if kind == "send" and ("send", order_id) in calls[:n]:
            last_send = max(
                i for i, c in enumerate(calls[:n]) if c == ("send", order_id)
            )
            blind_resends += ("ask", order_id) not in calls[last_send:n]
    doubles = figure(
        11, f"double charges ({fault})", sum(n - 1 for n in charged.values()), 0
    )
    figure(11, f"resends not preceded by /results/ ({fault})", blind_resends, 0)
    assert doubles == 0 and blind_resends == 0 and len(charged) == rounds


def _short_timeout(seconds):
    init = UnitellerClient.__init__

    def short(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.timeouts = dict.fromkeys(self.timeouts, seconds)

    return short
