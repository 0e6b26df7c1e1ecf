"""Money: integer kopecks in storage, Decimal in code, "%d.%02d" on the wire."""

import re
from decimal import Decimal

# Digits of roubles we read at most: a trillion is beyond any payment. A longer
# number is refused by its length, before anything converts it: Decimal and int()
# take time growing with the square of the digits, and a 400,000-digit "amount"
# in a form would hold a CPU for seconds.
MAX_ROUBLE_DIGITS = 12
# Longer than any amount of ours can be spelled (sign, digits, separator, a dozen
# decimals): refused before a regular expression looks at it.
_MAX_TEXT = 32
# ASCII digits only: Python's \d and Decimal also take "１０" and "٥".
_NUMBER = re.compile(r"(-?)([0-9]+)(?:[.,]([0-9]+))?", re.ASCII)


class AmountError(ValueError):
    """An amount a person typed that is not a valid sum of money."""


def _split(text):
    """Split an amount's text into (negative, roubles digits, decimals digits)."""
    if len(text) > _MAX_TEXT:
        raise AmountError("too_long")
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise AmountError("not_a_number")
    sign, roubles, decimals = match.groups()
    if len(roubles.lstrip("0")) > MAX_ROUBLE_DIGITS:
        raise AmountError("too_long")
    return bool(sign), roubles, decimals or ""


def _kopecks(roubles, decimals):
    """Exact kopecks of a split amount; refuse a fraction of a kopeck."""
    if decimals.rstrip("0")[2:]:
        raise AmountError("too_many_decimals")
    return int(roubles) * 100 + int(decimals[:2].ljust(2, "0"))


def parse_amount(text):
    """Parse a typed amount ("500", "500.5", "500,50") into kopecks."""
    cleaned = (text or "").strip().replace(" ", "").replace("\u00a0", "")
    if not cleaned:
        raise AmountError("empty")
    negative, roubles, decimals = _split(cleaned)
    if negative:
        raise AmountError("not_positive")
    if len(decimals) > 2:
        raise AmountError("too_many_decimals")
    kopecks = _kopecks(roubles, decimals)
    if kopecks <= 0:
        raise AmountError("not_positive")
    return kopecks


def to_kopecks(value):
    """Convert roubles (a wire text like "500.00", a Decimal or int) to kopecks."""
    if isinstance(value, Decimal) and not value.is_finite():
        raise AmountError("not_a_number")
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        # Compared before converted: a Decimal like 1E+999999999 is cheap to
        # hold and endless to turn into an int.
        if not -(10**MAX_ROUBLE_DIGITS) < value < 10**MAX_ROUBLE_DIGITS:
            raise AmountError("too_long")
        value = format(Decimal(value), "f")
    if not isinstance(value, str):
        raise AmountError("not_a_number")
    negative, roubles, decimals = _split(value.strip())
    kopecks = _kopecks(roubles, decimals)
    return -kopecks if negative else kopecks


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
