"""Money: integer kopecks in storage, Decimal in code, "%d.%02d" on the wire."""

import re
from decimal import Decimal, InvalidOperation

_AMOUNT = re.compile(r"^\d+(?:[.,]\d{1,2})?$")


class AmountError(ValueError):
    """An amount a person typed that is not a valid sum of money."""


def parse_amount(text):
    """Parse a typed amount ("500", "500.5", "500,50") into kopecks."""
    cleaned = (text or "").strip().replace(" ", "").replace("\u00a0", "")
    if not cleaned:
        raise AmountError("empty")
    if not _AMOUNT.match(cleaned):
        if re.match(r"^-?\d+(?:[.,]\d+)?$", cleaned):
            if cleaned.startswith("-"):
                raise AmountError("not_positive")
            raise AmountError("too_many_decimals")
        raise AmountError("not_a_number")
    kopecks = to_kopecks(Decimal(cleaned.replace(",", ".")))
    if kopecks <= 0:
        raise AmountError("not_positive")
    return kopecks


def to_kopecks(value):
    """Convert a Decimal (or str/int) in roubles to integer kopecks, exactly."""
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise AmountError("not_a_number") from exc
    kopecks = amount * 100
    if kopecks != kopecks.to_integral_value():
        raise AmountError("too_many_decimals")
    return int(kopecks)


def to_decimal(kopecks):
    """Convert kopecks to a Decimal in roubles."""
    return (Decimal(int(kopecks)) / 100).quantize(Decimal("0.01"))


def format_wire(kopecks):
    """Format kopecks as Uniteller wants them: "%d.%02d", positive."""
    kopecks = int(kopecks)
    if kopecks < 0:
        raise AmountError("not_positive")
    return "%d.%02d" % divmod(kopecks, 100)  # noqa: UP031 (the spec's format)


def format_signed(kopecks):
    """Format kopecks as "-123.45" / "123.45", for reports and JSON."""
    sign = "-" if kopecks < 0 else ""
    return sign + format_wire(abs(kopecks))


def format_human(kopecks):
    """Format kopecks for people: "1 234,50" (Russian grouping)."""
    sign = "-" if kopecks < 0 else ""
    roubles, kop = divmod(abs(int(kopecks)), 100)
    grouped = f"{roubles:,}".replace(",", "\u00a0")
    return f"{sign}{grouped},{kop:02d}"
