"""The data model: contracts, instances, configurations, transactions, ledger."""

import json

from peewee import (
    SQL,
    BigIntegerField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    PostgresqlDatabase,
    TextField,
)

from .clock import utcnow
from .contract_search import create_search
from .db import db
from .prepared import Prepared
from .sealing import seal, unseal


class JSONField(TextField):
    """A dict kept as JSON text (portable across SQLite and PostgreSQL)."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class SealedJSONField(JSONField):
    """A dict kept as JSON text whose secret keys' values are encrypted at rest.

    Code reads and writes plain values; only the database (and its dumps) hold
    the sealed ones (cabinet/sealing.py).
    """

    def __init__(self, secret_keys, *args, **kwargs):
        self.secret_keys = frozenset(secret_keys)
        super().__init__(*args, **kwargs)

    def db_value(self, value):
        if value is None:
            return None
        return super().db_value(
            {
                key: seal(item) if key in self.secret_keys else item
                for key, item in value.items()
            }
        )

    def python_value(self, value):
        params = super().python_value(value)
        if params is None:
            return None
        return {
            key: unseal(item) if key in self.secret_keys else item
            for key, item in params.items()
        }


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class ModuleInstance(BaseModel):
    """An instance of the Uniteller module (a shop), as in the billing's module tree."""

    code = CharField(max_length=64, unique=True)
    name = CharField(max_length=200)
    created_at = DateTimeField(default=utcnow)

    def active_configuration(self):
        """Return the configuration in force, or None."""
        return _ACTIVE_CONFIGURATION.first(instance=self.id)

    @classmethod
    def by_code(cls, code):
        """Return the instance with this code, or None."""
        return cls.get_or_none(cls.code == code)


class ModuleConfiguration(BaseModel):
    """A named set of parameters of an instance; exactly one is active at a time."""

    instance = ForeignKeyField(ModuleInstance, backref="configurations")
    name = CharField(max_length=100)
    # params.SECRET_PARAMS sealed at rest (a test keeps the two sets equal).
    params = SealedJSONField(("password", "login"), default=dict)
    is_active = BooleanField(default=False)
    created_by = CharField(max_length=100, default="")
    created_at = DateTimeField(default=utcnow)
    activated_by = CharField(max_length=100, null=True)
    activated_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("instance", "name"), True),)


# The last guard of "one active configuration per instance": a partial unique index.
ModuleConfiguration.add_index(
    SQL(
        "CREATE UNIQUE INDEX IF NOT EXISTS module_configuration_one_active "
        "ON module_configuration (instance_id) WHERE is_active"
    )
)


# Read on every payment and charge: its SQL built once (cabinet.prepared).
_ACTIVE_CONFIGURATION = Prepared(
    lambda slot: ModuleConfiguration.select().where(
        ModuleConfiguration.instance == slot("instance"),
        ModuleConfiguration.is_active == True,  # noqa: E712
    )
)


class ConfigurationVersion(BaseModel):
    """A configuration as it was after a change: who made it, when, and how."""

    configuration = ForeignKeyField(ModuleConfiguration, backref="versions")
    number = IntegerField()  # 1, 2, … within its configuration
    action = CharField(max_length=16)  # create | edit | copy | activate | rollback
    # The password only as a fingerprint: a change shows, the secret does not.
    params = JSONField(default=dict)
    who = CharField(max_length=100)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("configuration", "number"), True),)


class Contract(BaseModel):
    """A subscriber's contract: the login of the cabinet and the balance."""

    number = CharField(max_length=64, unique=True)
    name = CharField(max_length=200)
    email = CharField(max_length=200, null=True)
    # Where a fiscal receipt goes when there is no e-mail: +7XXXXXXXXXX.
    phone = CharField(max_length=16, null=True)
    # Empty when the contract has no password: it signs in only by a handoff
    # from the ISP's own site.
    password_hash = CharField(max_length=255)
    balance = BigIntegerField(default=0)  # kopecks; always the sum of the ledger
    instance = ForeignKeyField(ModuleInstance, null=True, backref="contracts")
    # Raised on logout and password change: older sessions no longer load.
    session_generation = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)
    # active | blocked: a blocked contract can neither sign in nor pay.
    status = CharField(max_length=16, default="active")
    # Where it came from: hand (the CLI, the console), api, import, billing
    # (a number the billing confirmed on /quick-pay).
    source = CharField(max_length=16, default="hand")
    # The balance as the ISP's billing sees it (kopecks), and when it was taken.
    billing_balance = BigIntegerField(null=True)
    billing_balance_at = DateTimeField(null=True)
    # Moved by every change of the contract's own fields (the API's updated_since);
    # nullable only because a column added to a filled table is (m0011 fills it).
    updated_at = DateTimeField(default=utcnow, index=True, null=True)

    @property
    def is_active(self):
        """True unless the contract is blocked (password_matches reads it)."""
        return self.status == "active"

    @classmethod
    def by_number(cls, number):
        """Return the contract with this number, or None."""
        return cls.get_or_none(cls.number == number)

    @classmethod
    def create_table(cls, safe=True, **options):
        """Create the table and the trigram index of the console's name search."""
        super().create_table(safe, **options)
        create_search(getattr(cls._meta.database, "obj", cls._meta.database))

    @classmethod
    def drop_table(cls, safe=True, drop_sequences=True, **options):
        """Drop the table and SQLite's search table (its triggers go with it)."""
        database = getattr(cls._meta.database, "obj", cls._meta.database)
        if database.table_exists("contract_search"):
            database.execute_sql("DROP TABLE contract_search")
        super().drop_table(safe, drop_sequences, **options)


class Operator(BaseModel):
    """A member of the ISP's staff who uses the console."""

    login = CharField(max_length=64, unique=True)
    password_hash = CharField(max_length=255)
    role = CharField(max_length=16, default="operator")  # admin | operator
    is_active = BooleanField(default=True)
    # Raised on logout, password change and deactivation: older sessions no
    # longer load.
    session_generation = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)


class Transaction(BaseModel):
    """One Uniteller order: a card payment, an autopay binding or a recurrent charge."""

    order_id = CharField(max_length=127, unique=True)
    contract = ForeignKeyField(Contract, backref="transactions")
    instance = ForeignKeyField(ModuleInstance, backref="transactions")
    configuration = ForeignKeyField(ModuleConfiguration, backref="transactions")
    kind = CharField(max_length=16, default="payment")  # payment | bind | recurrent
    # How it was paid: card | sbp (a recurrent charge takes its parent's).
    payment_type = CharField(max_length=8, default="card")
    amount = BigIntegerField()  # kopecks
    status = CharField(max_length=16, default="new")
    bill_number = CharField(max_length=32, null=True)
    approval_code = CharField(max_length=32, null=True)
    response_code = CharField(max_length=16, null=True)
    # The processing centre's code (/results/ and /recurrent/ Error_Code), e.g. F01.
    error_code = CharField(max_length=32, null=True)
    message = CharField(max_length=500, null=True)
    needs_review = BooleanField(default=False)
    review_reason = CharField(max_length=500, null=True)
    # The status check's schedule for this order (backoff while Uniteller
    # does not know it yet).
    check_attempts = IntegerField(default=0)
    next_check_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("contract", "created_at"), False),
            # The console's monitor pages by (created_at, id) within an instance,
            # with or without a status filter.
            (("instance", "created_at", "id"), False),
            (("instance", "status", "created_at", "id"), False),
            # Cover the monitor's totals and chart: no table reads; with a status
            # filter only that status group's rows are read.
            (("instance", "created_at", "status", "contract", "amount"), False),
            (("instance", "status", "created_at", "contract", "amount"), False),
            (("status", "created_at"), False),
            # The console counts and lists the flagged orders on every page:
            # a few rows of millions.
            (("needs_review", "updated_at"), False),
            (("status", "next_check_at"), False),
        )

    @property
    def is_final(self):
        """True when the status will not change without a refund or cancel."""
        return self.status in FINAL_STATUSES

    @property
    def is_credited(self):
        """True when the payment succeeded (the balance was credited)."""
        return self.status in CREDITED_STATUSES

    @classmethod
    def by_order_id(cls, order_id):
        """Return the transaction of an order id, or None."""
        return cls.get_or_none(cls.order_id == order_id)

    @classmethod
    def history(cls, contract, status=None, start=None, end=None):
        """Select a contract's transactions, newest first, filtered."""
        query = cls.select().where(cls.contract == contract)
        if status:
            query = query.where(cls.status.in_(STATUS_GROUPS.get(status, (status,))))
        if start is not None:
            query = query.where(cls.created_at >= start)
        if end is not None:
            query = query.where(cls.created_at < end)
        return query.order_by(cls.created_at.desc(), cls.id.desc())


STATUSES = ("new", "waiting", "authorized", "paid", "canceled", "failed", "expired")
OPEN_STATUSES = ("new", "waiting")
CREDITED_STATUSES = ("authorized", "paid")
FINAL_STATUSES = ("authorized", "paid", "canceled", "failed", "expired")
# Filters a person uses: "successful" covers both ways Uniteller says it, "open"
# both ways an order waits.
STATUS_GROUPS = {"success": CREDITED_STATUSES, "open": OPEN_STATUSES}


class TransactionEvent(BaseModel):
    """Something that happened to an order: a callback, a status answer, a change."""

    transaction = ForeignKeyField(Transaction, null=True, backref="events")
    instance = ForeignKeyField(ModuleInstance, null=True)
    order_id = CharField(max_length=127, index=True)
    source = CharField(max_length=32)  # callback | status | cabinet | cli | …
    kind = CharField(max_length=32)  # received | state | orphan | rejected | review
    old_status = CharField(max_length=16, null=True)
    new_status = CharField(max_length=16, null=True)
    fields = JSONField(null=True)  # raw fields, secrets removed
    note = CharField(max_length=500, null=True)
    created_at = DateTimeField(default=utcnow, index=True)

    @classmethod
    def orphans(cls):
        """Select events about orders we do not have, newest first."""
        return cls.select().where(cls.kind == "orphan").order_by(cls.id.desc())


# The transaction id of the inserting transaction, as a bigint (PostgreSQL 13+).
CURRENT_XID = "(pg_current_xact_id()::text::bigint)"


def set_commit_xid_default(database):
    """On PostgreSQL, make every ledger insert record its transaction's id."""
    if isinstance(database, PostgresqlDatabase):
        database.execute_sql(
            "ALTER TABLE ledger_entry ALTER COLUMN commit_xid "
            f"SET DEFAULT {CURRENT_XID}"
        )


class LedgerEntry(BaseModel):
    """A change of a contract's balance, tied to the transaction that caused it."""

    contract = ForeignKeyField(Contract, backref="ledger")
    transaction = ForeignKeyField(Transaction, backref="ledger")
    kind = CharField(max_length=16)  # credit | reversal
    amount = BigIntegerField()  # kopecks, signed
    # "credit:<order id>", "reversal:<order id>": one of each per transaction, ever.
    key = CharField(max_length=160, unique=True)
    created_at = DateTimeField(default=utcnow)
    # PostgreSQL: the id of the transaction that wrote the entry, filled by the
    # column's default (pg_current_xact_id()); the payments feed reads entries in
    # (commit_xid, id) order and only below the oldest transaction still open, so
    # an entry with a lower id committing late is never skipped. Null on SQLite
    # (one writer at a time: id order is commit order).
    commit_xid = BigIntegerField(null=True)

    class Meta:
        indexes = ((("commit_xid", "id"), False),)

    @classmethod
    def create_table(cls, safe=True, **options):
        """Create the table; on PostgreSQL give commit_xid its default."""
        super().create_table(safe, **options)
        set_commit_xid_default(getattr(cls._meta.database, "obj", cls._meta.database))


class Autopay(BaseModel):
    """A contract's autopay: its mode, parameters and the parent order of its card."""

    contract = ForeignKeyField(Contract, unique=True, backref="autopays")
    mode = CharField(max_length=16)  # weekly | monthly | automatic
    weekday = IntegerField(null=True)  # 0 = Monday (weekly)
    day_of_month = IntegerField(null=True)  # 1-31; the last day in a shorter month
    amount = BigIntegerField(null=True)  # kopecks (weekly, monthly)
    # binding (waiting for the first payment) | active | suspended | off
    state = CharField(max_length=16, default="binding")
    parent = ForeignKeyField(Transaction, null=True)  # the IsRecurrentStart order
    binding = ForeignKeyField(Transaction, null=True)  # a card payment under way
    suspended_reason = CharField(max_length=300, null=True)
    active_since = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class AutopayConsent(BaseModel):
    """The subscriber's explicit consent to recurring charges, as given."""

    autopay = ForeignKeyField(Autopay, backref="consents")
    terms_version = CharField(max_length=32)
    mode = CharField(max_length=16)
    amount = BigIntegerField(null=True)
    ip = CharField(max_length=64)
    user_agent = CharField(max_length=300)
    created_at = DateTimeField(default=utcnow)


class AutopayCharge(BaseModel):
    """The one charge of an autopay for one period; its tries are transactions."""

    autopay = ForeignKeyField(Autopay, backref="charges")
    # "2026-W48" (weekly), "2026-11" (monthly), "auto:2026-11-28" (policy),
    # "req:<id>" (asked for by the provider's logic or an operator)
    period = CharField(max_length=64)
    due_on = DateField()  # the local date it became due
    amount = BigIntegerField()
    reason = CharField(max_length=300, null=True)
    source = CharField(max_length=32, default="schedule")
    # due | sending | succeeded | retry | failed | skipped | canceled
    status = CharField(max_length=16, default="due")
    tries = IntegerField(default=0)
    next_try_on = DateField(null=True)
    transaction = ForeignKeyField(Transaction, null=True)  # the latest try
    result_code = CharField(max_length=32, null=True)
    result_message = CharField(max_length=300, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("autopay", "period"), True),  # one charge per autopay and period
            (("status", "next_try_on"), False),
        )


class Notice(BaseModel):
    """A message to a subscriber, shown in the cabinet (and e-mailed if set up)."""

    contract = ForeignKeyField(Contract, backref="notices")
    kind = CharField(max_length=32)
    text = TextField()
    created_at = DateTimeField(default=utcnow, index=True)
    read_at = DateTimeField(null=True)
    emailed_at = DateTimeField(null=True)


class ApiToken(BaseModel):
    """A token the provider's own logic uses to call our API (kept hashed)."""

    name = CharField(max_length=64, unique=True)
    token_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=utcnow)
    revoked_at = DateTimeField(null=True)
    # Space-separated: what the token may call (api_tokens.SCOPES).
    scopes = CharField(max_length=200, default="autopay")


class SignInHandoff(BaseModel):
    """A single-use sign-in link the ISP's site asked for (kept as a hash)."""

    token_hash = CharField(max_length=64, unique=True)
    contract = ForeignKeyField(Contract, backref="handoffs")
    api_token = ForeignKeyField(ApiToken, null=True)  # who asked for it
    next_url = CharField(max_length=500, null=True)  # a path of ours, e.g. /pay
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)
    used_ip = CharField(max_length=64, null=True)


class TaskRun(BaseModel):
    """One run of a scheduled task: when, how much it looked at and changed."""

    task = CharField(max_length=64)
    # The cron tick this run serves ("manual:<id>" for a run by hand): two cron
    # processes enqueueing the same tick produce one run.
    slot = CharField(max_length=64)
    trigger = CharField(max_length=16, default="cron")  # cron | manual
    started_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)
    looked_at = IntegerField(default=0)
    changed = IntegerField(default=0)
    errors = IntegerField(default=0)
    note = TextField(null=True)

    class Meta:
        indexes = ((("task", "slot"), True), (("task", "started_at"), False))

    @classmethod
    def latest(cls, task, limit=5):
        """Return a task's most recent runs, newest first."""
        return list(
            cls.select()
            .where(cls.task == task)
            .order_by(cls.started_at.desc())
            .limit(limit)
        )


class AuditEntry(BaseModel):
    """One change an operator made in the console: who, when, what, before and after."""

    operator = ForeignKeyField(Operator, null=True, backref="audit_entries")
    login = CharField(max_length=64)  # kept as it was, should the operator go
    action = CharField(max_length=64)
    object_type = CharField(max_length=32)
    object_id = CharField(max_length=127)
    before = JSONField(null=True)  # secrets are masked before they get here
    after = JSONField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("created_at", "id"), False),
            (("operator", "created_at"), False),
            (("action", "created_at"), False),
        )


class Refund(BaseModel):
    """A refund of (part of) a credited transaction through Uniteller's /unblock/."""

    transaction = ForeignKeyField(Transaction, backref="refunds")
    amount = BigIntegerField()  # kopecks
    status = CharField(max_length=16, default="pending")  # pending | done | failed
    operator = ForeignKeyField(Operator, null=True)
    error_code = CharField(max_length=16, null=True)
    error_message = CharField(max_length=500, null=True)
    note = CharField(max_length=500, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


# At most one refund in flight per transaction: the last guard is this index.
Refund.add_index(
    SQL(
        "CREATE UNIQUE INDEX IF NOT EXISTS refund_one_pending "
        "ON refund (transaction_id) WHERE status = 'pending'"
    )
)


class ReconcileRun(BaseModel):
    """A reconciliation asked for in the console: its period, progress and report."""

    instance = ForeignKeyField(ModuleInstance, backref="reconcile_runs")
    day_from = DateField()
    day_to = DateField()
    fix = BooleanField(default=False)
    who = CharField(max_length=100)
    status = CharField(max_length=16, default="queued")  # queued|running|done|failed
    report = JSONField(null=True)  # ours, theirs, requests, differences
    error = CharField(max_length=500, null=True)
    created_at = DateTimeField(default=utcnow)
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)


class BillingConnector(BaseModel):
    """Where an instance's credits go: the ISP's billing (OSMP) or a webhook."""

    instance = ForeignKeyField(ModuleInstance, backref="connectors")
    name = CharField(max_length=64)
    kind = CharField(max_length=16)  # osmp | webhook
    # Secrets (billing.connectors.SECRET_KEYS) sealed at rest; never shown or logged.
    params = SealedJSONField(("password", "secret"), default=dict)
    is_active = BooleanField(default=True)
    created_by = CharField(max_length=100, default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("instance", "name"), True),)


class BillingDelivery(BaseModel):
    """One credit, reversal or refund to deliver to one connector (the outbox)."""

    connector = ForeignKeyField(BillingConnector, backref="deliveries")
    transaction = ForeignKeyField(Transaction, backref="deliveries")
    # Not indexed: nothing looks deliveries up by refund (migration 16).
    refund = ForeignKeyField(Refund, null=True, index=False)
    kind = CharField(max_length=16)  # credit | reversal | refund
    # "credit:<transaction id>", "refund:<refund id>": one per connector, ever.
    key = CharField(max_length=64)
    amount = BigIntegerField()  # kopecks, positive
    account = CharField(max_length=64)  # the contract number; an operator may fix it
    # pending | sending | done | failed | attention (DELIVERY_TRANSITIONS)
    state = CharField(max_length=16, default="pending")
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(default=utcnow)
    lease_until = DateTimeField(null=True)  # a `sending` claim older than this is dead
    prv_txn = CharField(max_length=64, null=True)  # the billing's payment id
    last_answer = TextField(null=True)  # what the billing said last, secrets masked
    note = CharField(max_length=500, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    done_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("connector", "key"), True),
            (("state", "next_attempt_at"), False),
            (("transaction",), False),
        )

    @property
    def txn_id(self):
        """The delivery's id at the billing: 19 digits, the same on every resend.

        The second it was made and its row id: unique while fewer than ten
        million deliveries are made in one second, and a database restored
        from a backup makes its next rows at a later second, so a reused row id
        never meets a txn_id the billing has seen.
        """
        return f"{self.created_at:%y%m%d%H%M%S}{self.id % 10**7:07d}"


class DeliveryAttempt(BaseModel):
    """One call to a billing for a delivery: what was asked and what came back."""

    delivery = ForeignKeyField(BillingDelivery, backref="attempt_rows")
    number = IntegerField()
    request = TextField()  # the command without credentials
    answer = TextField(null=True)
    outcome = CharField(max_length=16)  # done | retry | final | lost
    created_at = DateTimeField(default=utcnow)


class Receipt(BaseModel):
    """A 54-FZ receipt we asked Uniteller to fiscalize: a sale's or a refund's.

    `body` is the base64 text sent, frozen when the order (or the refund) was
    written and never rebuilt: a retry sends the same bytes, and Uniteller
    refuses an order id seen with another receipt.
    """

    transaction = ForeignKeyField(Transaction, backref="receipts")
    refund = ForeignKeyField(Refund, null=True, backref="receipts")
    kind = CharField(max_length=16)  # sale | refund
    # "sale:<transaction id>", "refund:<refund id>": one receipt each, ever.
    key = CharField(max_length=64, unique=True)
    body = TextField()  # base64 of the receipt's UTF-8 JSON
    total = BigIntegerField()  # kopecks
    contact = CharField(max_length=254)  # the e-mail or phone it is sent to
    # pending | issued | failed | missing | void (fiscal.states.RECEIPT_TRANSITIONS)
    state = CharField(max_length=16, default="pending")
    note = CharField(max_length=500, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("state", "created_at"), False),)

    @classmethod
    def of_sale(cls, transaction_id):
        """Return the sale receipt of a transaction, or None."""
        return cls.get_or_none(cls.key == f"sale:{transaction_id}")

    @classmethod
    def of_refund(cls, refund_id):
        """Return the receipt of a refund, or None."""
        return cls.get_or_none(cls.key == f"refund:{refund_id}")


class FiscalDocument(BaseModel):
    """A receipt Uniteller fiscalized (fiscal 02.1.18, Appendix 2), as it sent it."""

    transaction = ForeignKeyField(Transaction, backref="fiscal_documents")
    receipt = ForeignKeyField(Receipt, null=True, backref="documents")
    fiscal_id = CharField(max_length=64, unique=True)  # fiscal.id at Uniteller
    # 0 sale, 1 refund of a sale, 2 correction of a sale, 3 of a refund
    doc_type = IntegerField()
    total = BigIntegerField(null=True)  # kopecks
    fiscal_number = CharField(max_length=32, null=True)
    fiscal_attr = CharField(max_length=32, null=True)
    fiscal_date = CharField(max_length=32, null=True)  # as Uniteller wrote it
    fiscal_link = CharField(max_length=1000, null=True)
    body = JSONField()  # the fiscalized receipt, whole
    source = CharField(max_length=16)  # callback | results | answer
    created_at = DateTimeField(default=utcnow)


MODELS = [
    ModuleInstance,
    ModuleConfiguration,
    ConfigurationVersion,
    Contract,
    Operator,
    Transaction,
    TransactionEvent,
    LedgerEntry,
    Autopay,
    AutopayConsent,
    AutopayCharge,
    Notice,
    ApiToken,
    SignInHandoff,
    TaskRun,
    AuditEntry,
    Refund,
    ReconcileRun,
    BillingConnector,
    BillingDelivery,
    DeliveryAttempt,
    Receipt,
    FiscalDocument,
]
