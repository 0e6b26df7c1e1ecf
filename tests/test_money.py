from decimal import Decimal

import pytest

from cabinet.money import (
    AmountError,
    format_human,
    format_wire,
    parse_amount,
    to_decimal,
    to_kopecks,
)

pytestmark = pytest.mark.nodb


@pytest.mark.parametrize(
    "typed, kopecks",
    [
        ("500", 50000),
        ("500.5", 50050),
        ("500,50", 50050),
        (" 1 000,01 ", 100001),
        ("0.01", 1),
        ("0,1", 10),
        ("15000", 1500000),
        ("007", 700),
    ],
)
def test_typed_amounts_become_exact_kopecks(typed, kopecks):
    assert parse_amount(typed) == kopecks


@pytest.mark.parametrize(
    "typed, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "not_a_number"),
        ("1e3", "not_a_number"),
        ("0", "not_positive"),
        ("0,00", "not_positive"),
        ("-5", "not_positive"),
        ("10.001", "too_many_decimals"),
        ("1,234", "too_many_decimals"),
        ("5.", "not_a_number"),
        ("NaN", "not_a_number"),
        ("Infinity", "not_a_number"),
        ("1.2.3", "not_a_number"),
        ("１０", "not_a_number"),
        ("٥", "not_a_number"),
        ("1" + "0" * 12, "too_long"),
        ("9" * 400_000, "too_long"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(typed, reason):
    with pytest.raises(AmountError) as exc:
        parse_amount(typed)
    assert str(exc.value) == reason


@pytest.mark.parametrize(
    "wire, kopecks",
    [("500.00", 50000), ("-500.00", -50000), ("500.000", 50000), (Decimal("1.5"), 150)],
)
def test_wire_amounts_become_exact_kopecks(wire, kopecks):
    assert to_kopecks(wire) == kopecks


@pytest.mark.parametrize(
    "wire", ["1e3", "500.001", "１０", "9" * 4000, Decimal("1E+999999999"), None]
)
def test_wire_amounts_that_are_no_sum_of_ours_are_refused(wire):
    with pytest.raises(AmountError):
        to_kopecks(wire)


def test_wire_format_is_always_two_decimals():
    assert format_wire(50000) == "500.00"
    assert format_wire(1) == "0.01"
    assert format_wire(123456) == "1234.56"
    with pytest.raises(AmountError):
        format_wire(-1)


def test_people_see_russian_grouping_and_decimals_survive_round_trip():
    assert format_human(123456789) == "1\u00a0234\u00a0567,89"
    assert format_human(-50) == "-0,50"
    assert to_decimal(10 + 20) == Decimal("0.30")
