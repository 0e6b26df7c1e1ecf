"""54-FZ receipts through Uniteller's fiscalization (fiscal 02.1.18).

Listens to the payments core: a receipt is frozen with each order of a fiscal
configuration (`order_created`) and follows its order's money
(`transaction_changed`); refunds freeze theirs with the refund. What Uniteller
fiscalized arrives in its fiscal notification, in the answers of /v2/recurrent
and /v2/cancel, and in /v2/results, and is kept once per fiscal.id.
"""

from . import listeners  # noqa: F401  (connects the payments listeners)
from .callbacks import is_fiscal_callback, receive_fiscal_callback
from .documents import (
    UnreadableReceipts,
    annotate,
    attention,
    attention_queries,
    decode_documents,
    documents_of,
    receipts_of,
    record_documents,
    sale_receipts_of,
    set_state,
)
from .issuing import issue_refund, issue_sale, profile_of
from .receipts import ContactRequired, build_refund, build_sale, decode, encode
from .recheck import RECEIPT_RESULT_FIELDS, recheck_receipts, record_rows
from .states import DOCUMENT_TYPES, NEEDS_ATTENTION, RECEIPT_STATES

__all__ = [
    "attention",
    "attention_queries",
    "receipts_of",
    "DOCUMENT_TYPES",
    "NEEDS_ATTENTION",
    "RECEIPT_RESULT_FIELDS",
    "RECEIPT_STATES",
    "ContactRequired",
    "UnreadableReceipts",
    "annotate",
    "build_refund",
    "build_sale",
    "decode",
    "decode_documents",
    "documents_of",
    "encode",
    "is_fiscal_callback",
    "issue_refund",
    "issue_sale",
    "profile_of",
    "receive_fiscal_callback",
    "sale_receipts_of",
    "recheck_receipts",
    "record_rows",
    "record_documents",
    "set_state",
]
