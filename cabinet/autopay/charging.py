"""Send one try of a charge, resolve a lost answer, settle the try it made."""

import logging
import os
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from flask import current_app
from peewee import JOIN, IntegrityError, fn

from .. import acquirer, events, fiscal, payments, queueing
from .. import params as module_params
from ..clock import local_midnight_utc, local_today, utcnow
from ..db import db, on_commit, write_unit
from ..errors import CabinetError
from ..models import (
    Autopay,
    AutopayCharge,
    Contract,
    ModuleInstance,
    Receipt,
    Transaction,
)
from ..prepared import Prepared
from ..queueing import enqueue, enqueue_many
from ..task_stats import TaskStats
from ..uniteller.client import OperationRefused, RateLimited, UnitellerError
from ..wording import decline_reason
from . import notices, states

# The package's one logger name, as before it was a package.
log = logging.getLogger("cabinet.autopay")

# Jobs of a charge try: a try waits up to a minute for a slot, then the request.
CHARGE_JOB_TIMEOUT = 600
# Charges per batch job: enough that a fork and RQ's bookkeeping are paid once
# for many tries, few enough that every worker gets batches of a planning run.
CHARGE_BATCH = 100
# A batch's tries wait their turns for the shop's slots one after another.
CHARGE_BATCH_JOB_TIMEOUT = 3600
# /v2/recurrent's fiscal refusals (fiscal 02.1.18 §3.6, Appendix 8).
# 53: the receipt failed and Uniteller's protection against the tax office's
# fines reversed the payment: a declined try, tried again on the next retry day.
RECEIPT_FAILED_REVERSED = 53
# 54: the receipt failed and the payment stands (no protection): the money was
# taken, so the try is settled by /results/ and its receipt is missing.
RECEIPT_FAILED_PAID = 54


# A charge and what a try reads of it, each read once in one statement whose SQL is
# built once (cabinet.prepared): per try, peewee's building of the lazy reads of
# the autopay, contract, instance and parent cost more than running them.
_Parent = Transaction.alias()
_CHARGE = Prepared(
    lambda slot: (
        AutopayCharge.select(AutopayCharge, Autopay, Contract, ModuleInstance, _Parent)
        .join(Autopay)
        .join(Contract)
        .join(ModuleInstance, JOIN.LEFT_OUTER)
        .join_from(
            Autopay,
            _Parent,
            JOIN.LEFT_OUTER,
            on=(Autopay.parent == _Parent.id),
            attr="parent",
        )
        .where(AutopayCharge.id == slot("id"))
    )
)
_CHARGE_OF_TRY = Prepared(
    lambda slot: (
        AutopayCharge.select(AutopayCharge, Autopay, Contract)
        .join(Autopay)
        .join(Contract)
        .where(AutopayCharge.transaction == slot("transaction"))
    )
)
_STATUS = Prepared(
    lambda slot: AutopayCharge.select(AutopayCharge.status).where(
        AutopayCharge.id == slot("id")
    )
)
_FAILED_SINCE = Prepared(
    lambda slot: Transaction.select(fn.COUNT(Transaction.id)).where(
        Transaction.contract == slot("contract"),
        Transaction.kind == "recurrent",
        Transaction.status == "failed",
        Transaction.updated_at >= slot("since", Transaction.updated_at),
    )
)


def status_of(charge_id):
    """The status of a charge now (None if there is no such charge)."""
    rows = _STATUS.tuples(id=charge_id)
    return rows[0][0] if rows else None


def enqueue_charges(charge_ids, delay=None):
    """Enqueue a try of each charge (after `delay` seconds if given).

    Many charges go as batch jobs (`charge_autopays`) of CHARGE_BATCH ids: one
    job, one fork, per batch, and the batch's tries run side by side up to
    Uniteller's concurrency limit (charge_many).
    """
    if delay is not None or len(charge_ids) == 1:
        for charge_id in charge_ids:
            enqueue(
                "charge_autopay", charge_id, delay=delay, timeout=CHARGE_JOB_TIMEOUT
            )
    elif charge_ids:
        ids = list(charge_ids)
        # One round trip for a planning batch.
        enqueue_many(
            "charge_autopays",
            [(ids[n : n + CHARGE_BATCH],) for n in range(0, len(ids), CHARGE_BATCH)],
            timeout=CHARGE_BATCH_JOB_TIMEOUT,
        )


def charge_many(charge_ids):
    """Send one try of each due charge, up to RECURRENT_CONCURRENCY at once.

    Each try is charge() in a thread of its own with its own connection: as
    durable and idempotent as a job of its own. A try that raises is logged and
    left where it stopped (due, or with an unknown outcome), for the daily run's
    sweeps, as a failed job's would be. Tries not begun when the process is
    asked to stop are enqueued again. Returns {outcome: count}.
    """
    app = current_app._get_current_object()
    size = max(1, min(app.config["RECURRENT_CONCURRENCY"], len(charge_ids)))
    left = []

    def one(charge_id):
        if queueing.stopping.is_set():
            left.append(charge_id)
            return "left"
        with app.app_context(), db.connection_context():
            try:
                return charge(charge_id)
            except Exception:  # noqa: BLE001  (one try's fault is not the batch's)
                log.exception("charge %s failed; the sweeps will find it", charge_id)
                return "error"

    pool = ThreadPoolExecutor(size, thread_name_prefix="cabinet-charge")
    try:
        outcomes = Counter(str(outcome) for outcome in pool.map(one, charge_ids))
    finally:
        # A batch stopped by its job's timeout begins nothing more.
        pool.shutdown(cancel_futures=True)
    if left:
        enqueue_charges(left)
    return dict(outcomes)


def enqueue_resolve(charge_id, delay=None):
    """Enqueue asking /results/ about a charge's try (after `delay` seconds)."""
    enqueue("resolve_autopay_charge", charge_id, delay=delay)


def kill_point(name):
    """Die at once (SIGKILL) here if CABINET_KILL_AT names this point; else nothing."""
    # Only the fault suite sets it (scenario 9: a worker killed before sending,
    # after sending, or with the answer's recording uncommitted).
    if os.environ.get("CABINET_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def charge(charge_id):
    """Send one try of a due charge to /recurrent/ and record what it said."""
    prepared = _prepare_try(charge_id)
    if prepared is None:
        return None
    transaction, configuration, parent_order_id = prepared
    receipt = _receipt_of(transaction)
    client = acquirer.client_for(configuration)
    slots = acquirer.recurrent_slots(configuration, client)
    if not slots.acquire(timeout=60):
        _back_to_due(charge_id, "no free slot within Uniteller's concurrency limit")
        return "deferred"
    try:
        kill_point("before_send")
        answer = client.recurrent(
            transaction.order_id, transaction.amount, parent_order_id, receipt=receipt
        )
        kill_point("after_send")
    except OperationRefused as exc:
        return _refused(charge_id, transaction, exc)
    except UnitellerError as exc:
        log.warning(
            "recurrent %s: %s; resolving through /results/", transaction.order_id, exc
        )
        _resolve_later(charge_id)
        return "unknown"
    finally:
        slots.release()
    documents = answer.pop("Receipt", None)  # kept as documents, not in events
    success = answer.get("Response_Code") == "AS000"
    word = (answer.get("Status") or "Paid") if success else "Not Authorized"
    payments.apply_status(
        transaction.order_id,
        word,
        source="recurrent",
        fields=answer,
        instance=transaction.instance,
    )
    if documents:
        _keep_documents(transaction, documents)
    return status_of(charge_id)


def _receipt_of(transaction):
    """The frozen sale receipt a try's order carries, or None (not fiscal)."""
    # The try's own configuration decides, as it did when its order was written.
    if not acquirer.is_fiscal(transaction.configuration):
        return None
    receipt = Receipt.of_sale(transaction.id)
    return receipt.body if receipt is not None else None


def _keep_documents(transaction, text):
    """Keep the fiscalized receipts a /v2/recurrent answer carried."""
    try:
        documents = fiscal.decode_documents(text)
    except fiscal.UnreadableReceipts as exc:
        # The receipt stays pending: the receipt check reads /v2/results.
        log.warning("recurrent %s: receipts unreadable (%s)", transaction.order_id, exc)
        return
    fiscal.record_documents(transaction, documents, "answer")


class _ClaimLost(Exception):
    """Another worker claimed the charge first."""


def _prepare_try(charge_id):
    """Claim a due charge and write its try's transaction; None if not ours to send.

    Returns (transaction, configuration, the parent's order id): all a try needs.
    """
    try:
        return _claim(charge_id)
    except (_ClaimLost, IntegrityError):
        return None  # the try's order id or the claim went to another worker


def _claim(charge_id):
    """Claim a charge in one unit (see _prepare_try)."""
    with write_unit():
        charge = _CHARGE.first(id=charge_id)
        if charge is None or charge.status not in states.CLAIMABLE:
            return None
        this_charge = AutopayCharge.id == charge.id
        autopay = charge.autopay
        if autopay.state != "active" or autopay.parent_id is None:
            states.move(
                states.CANCELED,
                this_charge,
                among=(charge.status,),
                result_message=f"autopay is {autopay.state}",
            )
            return None
        try:
            configuration = acquirer.payment_gateway(autopay.contract)[1]
        except CabinetError as exc:
            states.move(
                states.CANCELED,
                this_charge,
                among=(charge.status,),
                result_message=exc.message,
            )
            return None
        if charge.status == states.RESEND:
            # Uniteller never saw this try: the same order id goes again.
            transaction = charge.transaction
        else:
            if _failed_today(autopay) >= states.FAILED_PER_PARENT_PER_DAY:
                states.move(
                    states.RETRY,
                    this_charge,
                    among=(charge.status,),
                    next_try_on=states.next_try_on(local_today()),
                    result_message="Uniteller's limit of failed charges per day",
                )
                return None
            tries = charge.tries + 1
            order_id = payments.recurrent_order_id(autopay.id, charge.period, tries)
            charge.tries = tries
            try:
                with db.atomic():  # a savepoint: a refused order leaves no row
                    transaction = payments.create_recurrent(
                        charge, order_id, configuration
                    )
            except fiscal.ContactRequired:
                _no_contact(charge, autopay)
                return None
        transaction.instance = autopay.contract.instance  # read above already
        claimed = states.move(
            states.UNKNOWN,
            this_charge,
            among=(charge.status,),
            tries=charge.tries,
            transaction=transaction,
        )
        if not claimed:
            raise _ClaimLost
        parent_order_id = autopay.parent.order_id
    return transaction, configuration, parent_order_id


def _no_contact(charge, autopay):
    """End a charge a fiscal receipt cannot go with: the contract has no contact."""
    # Nothing was sent: the charge is canceled, with why, and the subscriber is
    # asked for an e-mail or phone; the next period's charge tries again.
    moved = states.move(
        states.CANCELED,
        AutopayCharge.id == charge.id,
        among=(charge.status,),
        result_message="no e-mail or phone for the receipt (54-FZ)",
    )
    if moved:
        notices.contact_required(autopay.contract, charge.amount)
        log.warning(
            "autopay charge #%d canceled: contract %s has no e-mail or phone",
            charge.id,
            autopay.contract.number,
        )


def _failed_today(autopay):
    """Count today's failed recurrent charges of the contract (its one card)."""
    since = local_midnight_utc(local_today())
    return _FAILED_SINCE.tuples(contract=autopay.contract_id, since=since)[0][0]


def _back_to_due(charge_id, why):
    """Return a claimed charge to the queue (nothing was sent)."""
    with write_unit():
        states.move(states.RESEND, AutopayCharge.id == charge_id, result_message=why)
        enqueue_charges([charge_id], delay=30)


def _refused(charge_id, transaction, exc):
    """Record an ErrorCode answer: unknown outcome, or a refusal of this try."""
    if exc.code in states.UNKNOWN_ERRORS:
        # 24: this order id reached Uniteller before; 15/28: no result yet.
        _resolve_later(charge_id)
        return "unknown"
    receipt = Receipt.of_sale(transaction.id)
    if exc.code == RECEIPT_FAILED_PAID:
        # Paid without a receipt: /results/ settles the try as paid (with its
        # BillNumber); the receipt waits on the operators' list for one.
        if receipt is not None:
            fiscal.set_state(receipt.id, "missing", note=f"54: {exc.message}")
        log.warning(
            "recurrent %s: paid without a receipt (54); resolving through /results/",
            transaction.order_id,
        )
        _resolve_later(charge_id)
        return "unknown"
    with write_unit():
        if exc.code == RECEIPT_FAILED_REVERSED and receipt is not None:
            # Before the status: an unpaid order's receipt would go void, and
            # this one failed (the payment was reversed for want of it).
            fiscal.set_state(receipt.id, "failed", note=f"53: {exc.message}")
        payments.apply_status(
            transaction.order_id,
            "Not Authorized",
            source="recurrent",
            fields={"Response_Code": f"E{exc.code}", "Message": exc.message},
            instance=transaction.instance,
        )
    return status_of(charge_id)


def _resolve_later(charge_id):
    """Ask /results/ about a try once Uniteller has had time to record it."""
    enqueue_resolve(charge_id, delay=current_app.config["RESOLVE_DELAY"])


def resolve(charge_id):
    """Find out what became of a try whose answer we do not know, via /results/."""
    charge = AutopayCharge.get_or_none(AutopayCharge.id == charge_id)
    if charge is None:
        return None
    if charge.status != states.UNKNOWN:
        return charge.status  # settled meanwhile (a callback, the status check)
    transaction = charge.transaction
    if transaction.status == "new":
        client = acquirer.client_for(transaction.configuration)
        try:
            rows = acquirer.ask_results(
                client,
                acquirer.results_spacing(transaction.configuration),
                TaskStats(),
                order_id=transaction.order_id,
            )
        except RateLimited:
            _resolve_later(charge_id)  # Uniteller's pacing: ask again later
            return charge.status
        if rows.names_unreadable(transaction.order_id):
            # Uniteller answered about it, unreadably: never send it again on
            # that; the status check reports the row and settles the order.
            log.warning(
                "resolve %s: its result row did not parse", transaction.order_id
            )
            return charge.status
        row = next(
            (r for r in rows if r.get("OrderNumber") == transaction.order_id), None
        )
        if row is None:
            # Uniteller never got it: sending the same order id again is safe
            # (if it did arrive meanwhile, the answer is error 24).
            _back_to_due(charge_id, "unknown to Uniteller: sending again")
            return "resend"
        payments.apply_status(
            transaction.order_id,
            row.get("Status"),
            source="status",
            fields=row,
            instance=transaction.instance,
        )
    else:
        settle_try(transaction)  # a callback or the status check got there first
    return status_of(charge_id)


def settle_try(transaction):
    """Finish the charge of a recurrent try that succeeded or failed (in a unit)."""
    charge = _CHARGE_OF_TRY.first(transaction=transaction.id)
    if charge is None or charge.status not in states.TRYING:
        return
    kill_point("before_record")
    autopay = charge.autopay
    if transaction.status in ("authorized", "paid"):
        _finish(charge, states.SUCCEEDED, transaction)
        notices.charge_succeeded(autopay.contract, charge.amount)
        if events.charge_succeeded.receivers:  # else no read for no one
            on_commit(
                lambda: events.charge_succeeded.send(AutopayCharge.get_by_id(charge.id))
            )
        return
    if transaction.status != "failed":
        return
    code = (transaction.response_code or "").upper()
    message = transaction.message or ""
    hard = states.is_hard_decline(code, message, transaction.error_code)
    # The subscriber reads a reason in words; the codes stay on the charge.
    told = str(decline_reason(code, transaction.error_code, message))
    retry_days = int(
        module_params.effective(transaction.configuration.params)["autopay_retry_days"]
    )
    if states.after_decline(hard, charge.tries, retry_days) == states.RETRY:
        _finish(
            charge,
            states.RETRY,
            transaction,
            next_try_on=states.next_try_on(local_today()),
        )
        notices.charge_failed(autopay.contract, charge.amount, told, retrying=True)
        return
    _finish(charge, states.FAILED, transaction)
    notices.charge_failed(autopay.contract, charge.amount, told, retrying=False)
    on_commit(lambda: events.charge_failed.send(AutopayCharge.get_by_id(charge.id)))
    if hard:
        suspend(autopay, message or code, told=told)


def _finish(charge, status, transaction, next_try_on=None):
    """Record how a try ended on its charge, unless another worker did first."""
    states.move(
        status,
        AutopayCharge.id == charge.id,
        among=states.TRYING,
        next_try_on=next_try_on,
        result_code=transaction.response_code,
        result_message=transaction.message,
    )


def suspend(autopay, reason, told=None):
    """Suspend an autopay until the subscriber pays with a new card.

    `reason` is kept for operators; the notice says `told` (words) if given.
    """
    changed = (
        Autopay.update(
            state="suspended", suspended_reason=reason[:300], updated_at=utcnow()
        )
        .where(Autopay.id == autopay.id, Autopay.state == "active")
        .execute()
    )
    if changed:
        sbp = autopay.parent is not None and autopay.parent.payment_type == "sbp"
        notices.autopay_suspended(autopay.contract, told or reason, sbp=sbp)
        on_commit(lambda: events.autopay_suspended.send(Autopay.get_by_id(autopay.id)))
