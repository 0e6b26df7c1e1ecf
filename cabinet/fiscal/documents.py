"""Keep what Uniteller fiscalized: each receipt once, linked to its order."""

import base64
import binascii
import json
import logging
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from peewee import IntegrityError

from ..clock import utcnow
from ..db import db, write_unit
from ..models import CREDITED_STATUSES, FiscalDocument, Receipt, Transaction
from ..money import to_kopecks
from .states import (
    DOCUMENT_TYPES,
    NEEDS_ATTENTION,
    RECEIPT_TRANSITIONS,
    REFUND,
    SALE,
)

log = logging.getLogger("cabinet.fiscal")

# A Receipt field holds at most 29,999 characters (fiscal Appendix 1); an answer
# listing all of an order's receipts may hold several such: bounded anyway.
DOCUMENTS_MAX_CHARS = 400_000
# A receipt still pending this long after its order is on the operators' list.
PENDING_LOOK_MINUTES = 10


class UnreadableReceipts(ValueError):
    """A Receipt field that is not base64 of a JSON array of fiscalized receipts."""


def decode_documents(text):
    """Read a Receipt field (base64 of a JSON array, Appendix 2) into its receipts.

    An empty field is no receipts (an order nothing was fiscalized for).
    """
    if not text or not text.strip():
        return []
    if len(text) > DOCUMENTS_MAX_CHARS:
        raise UnreadableReceipts("longer than any answer of receipts")
    try:
        value = json.loads(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise UnreadableReceipts(type(exc).__name__) from None
    if isinstance(value, dict):
        value = [value]  # some answers carry one receipt, not an array
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UnreadableReceipts("not an array of receipts")
    return [doc for doc in value if isinstance(doc.get("fiscal"), dict)]


def _kopecks(value):
    try:
        return to_kopecks(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return None


def _text(value, limit):
    return None if value in (None, "") else str(value)[:limit]


def set_state(receipt_id, state, note=None):
    """Move a receipt to `state` by compare-and-set; True if it moved."""
    changes = {"state": state, "updated_at": utcnow()}
    if note is not None:
        changes["note"] = note[:500]
    return bool(
        Receipt.update(**changes)
        .where(
            Receipt.id == receipt_id,
            Receipt.state.in_(RECEIPT_TRANSITIONS[state]),
        )
        .execute()
    )


def annotate(receipt_id, note):
    """Add a note to a receipt whose state stays (say, issued and then corrected)."""
    return bool(
        Receipt.update(note=note[:500], updated_at=utcnow())
        .where(Receipt.id == receipt_id)
        .execute()
    )


def _receipt_for(transaction, doc_type, total, receipt):
    """The receipt a fiscalized document answers: given, or found by type and sum."""
    if receipt is not None or doc_type not in (SALE, REFUND):
        return receipt
    if doc_type == SALE:
        return Receipt.of_sale(transaction.id)
    # A refund's document: the refund receipt of that sum still waiting for one,
    # else any of that sum (the same document arriving again).
    candidates = list(
        Receipt.select()
        .where(
            Receipt.transaction == transaction.id,
            Receipt.kind == "refund",
            Receipt.total == total,
        )
        .order_by(Receipt.state != "pending", Receipt.id)
    )
    return candidates[0] if candidates else None


def record_documents(transaction, documents, source, receipt=None):
    """Keep each fiscalized receipt once (fiscal.id unique) and mark its receipt issued.

    Returns the number of documents new to us. Call in a write unit, or alone.
    """
    added = 0
    with write_unit():
        for doc in documents:
            fiscal = doc["fiscal"]
            fiscal_id = _text(fiscal.get("id"), 64)
            try:
                doc_type = int(fiscal.get("type"))
            except (TypeError, ValueError):
                doc_type = None
            if fiscal_id is None or doc_type not in DOCUMENT_TYPES:
                log.warning(
                    "fiscal document without id or type order=%s", transaction.order_id
                )
                continue
            total = _kopecks(doc.get("total"))
            target = _receipt_for(transaction, doc_type, total, receipt)
            register = fiscal.get("register") or {}
            try:
                with db.atomic():  # a savepoint: a duplicate undoes only itself
                    FiscalDocument.create(
                        transaction=transaction.id,
                        receipt=target.id if target else None,
                        fiscal_id=fiscal_id,
                        doc_type=doc_type,
                        total=total,
                        fiscal_number=_text(register.get("fiscal_number"), 32),
                        fiscal_attr=_text(register.get("fiscal_attr"), 32),
                        fiscal_date=_text(register.get("fiscal_date"), 32),
                        fiscal_link=_text(register.get("fiscal_link"), 1000),
                        body=doc,
                        source=source,
                    )
            except IntegrityError:
                continue  # this document is kept already: a duplicate changes nothing
            added += 1
            if target is not None and doc_type in (SALE, REFUND):
                set_state(target.id, "issued")
    if added:
        log.info(
            "fiscal documents kept order=%s new=%d source=%s",
            transaction.order_id,
            added,
            source,
            extra={"order_id": transaction.order_id},
        )
    return added


def documents_of(transaction):
    """A transaction's fiscalized documents, oldest first."""
    return list(
        FiscalDocument.select()
        .where(FiscalDocument.transaction == transaction.id)
        .order_by(FiscalDocument.id)
    )


def receipt_link(document):
    """Where a person checks a fiscalized receipt: its FNS check link."""
    return document.fiscal_link or ""


def sale_receipts_of(transaction_ids):
    """The sale receipts of some transactions, each with its check link, by id.

    Two queries for a page of rows: the receipts, then their documents' links.
    """
    keys = [f"sale:{i}" for i in transaction_ids]
    if not keys:
        return {}
    found = {
        r.transaction_id: r
        for r in Receipt.select(
            Receipt.id, Receipt.transaction, Receipt.state, Receipt.contact
        ).where(Receipt.key.in_(keys))
    }
    links = {
        d.receipt_id: d.fiscal_link
        for d in FiscalDocument.select(
            FiscalDocument.receipt, FiscalDocument.fiscal_link
        )
        .where(
            FiscalDocument.receipt.in_([r.id for r in found.values()]),
            FiscalDocument.doc_type == SALE,
        )
        .order_by(FiscalDocument.id)
        if d.fiscal_link
    }
    for receipt in found.values():
        receipt.link = links.get(receipt.id, "")
    return found


def attention(limit=200):
    """Receipts an operator must look at: missing or failed, then long pending ones.

    Pending ones count once their sale was credited over `PENDING_LOOK_MINUTES`
    ago; the newest first, at most `limit` of each kind.
    """
    troubled, waiting = attention_queries()
    return (
        list(troubled.order_by(Receipt.updated_at.desc()).limit(limit)),
        list(waiting.order_by(Receipt.created_at.desc()).limit(limit)),
    )


def attention_queries():
    """Select the receipts attention() lists, unordered: (troubled, waiting)."""
    troubled = (
        Receipt.select(Receipt, Transaction)
        .join(Transaction)
        .where(Receipt.state.in_(NEEDS_ATTENTION))
    )
    waiting = (
        Receipt.select(Receipt, Transaction)
        .join(Transaction)
        .where(
            Receipt.state == "pending",
            Receipt.created_at < utcnow() - timedelta(minutes=PENDING_LOOK_MINUTES),
            (Receipt.kind == "refund") | Transaction.status.in_(CREDITED_STATUSES),
        )
    )
    return troubled, waiting


def receipts_of(transaction):
    """A transaction's receipts, each with its fiscalized documents, oldest first."""
    found = list(
        Receipt.select()
        .where(Receipt.transaction == transaction.id)
        .order_by(Receipt.id)
    )
    documents = documents_of(transaction)
    for receipt in found:
        receipt.fiscal = [d for d in documents if d.receipt_id == receipt.id]
    return found, [d for d in documents if d.receipt_id is None]
