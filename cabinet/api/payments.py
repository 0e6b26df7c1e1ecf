"""GET /api/payments: the feed of credited payments, reversals and refunds."""

from flask import jsonify, request

from ..money import format_signed
from ..payments.feed import feed_after, position
from .common import bp, decode_cursor, encode_cursor, page_size, requires, utc_text


def entry_json(entry):
    """A ledger entry as the feed shows it, with its own cursor."""
    transaction = entry.transaction
    return {
        "id": entry.id,
        "cursor": encode_cursor(*position(entry)),
        "kind": entry.kind,
        "contract": entry.contract.number,
        "amount": format_signed(entry.amount),
        "order_id": transaction.order_id,
        "bill_number": transaction.bill_number,
        "transaction_kind": transaction.kind,
        "created_at": utc_text(entry.created_at),
    }


@bp.route("/payments", methods=["GET"])
@requires("payments")
def payments_feed():
    """Entries after the cursor `since` (from the start without it), in feed order."""
    limit = page_size()
    since = request.args.get("since")
    after = (0, 0) if since is None else decode_cursor("since", since, (int, int))
    items = [entry_json(entry) for entry in feed_after(tuple(after), limit)]
    cursor = items[-1]["cursor"] if items else encode_cursor(*after)
    return jsonify({"items": items, "next": cursor})
