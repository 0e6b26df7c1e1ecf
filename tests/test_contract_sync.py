"""Contracts from the ISP's systems: one set of field rules, whole records or none."""

import pytest

from cabinet import accounts, contract_sync
from cabinet.contract_sync import FieldError
from cabinet.errors import Conflict, NotFound, PaymentUnavailable
from cabinet.models import Contract


def test_a_new_contract_takes_every_field_and_its_source(demo):
    contract, created = contract_sync.upsert(
        "2001",
        {
            "name": "Сидоров С. С.",
            "email": "sidorov@example.com",
            "phone": "8 (916) 123-45-67",
            "instance": "isp",
            "billing_balance": "-123.45",
            "billing_balance_at": "2026-12-01T10:00:00+03:00",
            "password": "secret-1",
        },
        "api",
    )
    assert created and contract.source == "api" and contract.status == "active"
    assert (contract.phone, contract.billing_balance) == ("+79161234567", -12345)
    assert contract.billing_balance_at.isoformat() == "2026-12-01T07:00:00"
    assert contract.balance == 0  # the cabinet's own sum stays the ledger's
    assert accounts.password_matches(contract, "secret-1")


def test_an_update_changes_only_the_fields_given(demo):
    contract_sync.upsert("1001", {"phone": "+79160000000"}, "api")
    contract = Contract.by_number("1001")
    assert (contract.name, contract.email, contract.phone) == (
        "Иванов И. И.",
        "ivanov@example.com",
        "+79160000000",
    )
    assert contract.source == "hand"  # it came by hand; the API only updated it


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"name": ""}, "name"),
        ({"email": "not-an-address"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"instance": "nowhere"}, "instance"),
        ({"status": "deleted"}, "status"),
        ({"billing_balance": "1.234"}, "billing_balance"),
        (
            {"billing_balance": "10", "billing_balance_at": "yesterday"},
            "billing_balance_at",
        ),
        ({"password": "abc"}, "password"),
        ({"balance": "100"}, "balance"),  # the cabinet's own sum is never set
    ],
)
def test_a_wrong_field_refuses_the_whole_record(demo, record, field):
    before = Contract.by_number("1001").__data__
    with pytest.raises(FieldError) as refused:
        contract_sync.upsert("1001", {"name": "Новое Имя", **record}, "api")
    assert refused.value.field == field
    assert Contract.by_number("1001").__data__ == before


def test_a_new_contract_needs_a_name(demo):
    with pytest.raises(FieldError, match="name: required"):
        contract_sync.upsert("2002", {"email": "a@example.com"}, "api")
    assert Contract.by_number("2002") is None


def test_blocking_ends_sessions_and_payments_but_keeps_the_contract(demo):
    generation = Contract.by_number("1001").session_generation
    contract = contract_sync.block("1001")
    assert contract.status == "blocked"
    assert contract.session_generation == generation + 1
    assert not accounts.password_matches(contract, "demo-pass")
    from cabinet import acquirer

    with pytest.raises(PaymentUnavailable, match="contract_blocked"):
        acquirer.payment_gateway(contract)
    with pytest.raises(NotFound):
        contract_sync.block("9999")


def test_a_contract_without_password_cannot_sign_in_by_password(demo):
    contract, _ = contract_sync.upsert("1001", {"password": None}, "api")
    assert contract.password_hash == ""
    assert not accounts.password_matches(contract, "")


def test_a_hand_edit_moves_updated_at_too(demo):
    """The API's updated_since sees a contact the subscriber typed in the cabinet."""
    before = Contract.by_number("1001").updated_at
    accounts.set_contact(Contract.by_number("1001"), phone="+79160000000")
    assert Contract.by_number("1001").updated_at > before


def test_create_only_leaves_a_contract_made_meanwhile_as_it_is(demo):
    """Quick pay's contract from the billing: one the API made first keeps its name."""
    with pytest.raises(Conflict):
        contract_sync.upsert("1001", {"name": "1001"}, "billing", create_only=True)
    assert Contract.by_number("1001").name == "Иванов И. И."
