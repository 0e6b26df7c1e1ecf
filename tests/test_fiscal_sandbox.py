"""A payment with its 54-FZ receipt, end to end: the cabinet and the live sandbox."""

from cabinet.models import Contract, FiscalDocument, Receipt, Transaction
from cabinet.uniteller.sandbox import add_shop
from tests.helpers import FISCAL_PROFILE, in_app, pay_by_card


def test_a_card_payment_gets_exactly_one_fiscalized_receipt(make_world, shop):
    world = make_world()
    profile = [p for p in FISCAL_PROFILE if not p.startswith("fiscal_gateway_url")]
    with in_app(world):
        from cabinet import configurations
        from cabinet.models import ModuleInstance

        configuration = ModuleInstance.by_code("isp").active_configuration()
        configurations.update_configuration(
            configuration,
            {
                **configuration.params,
                **dict(p.split("=", 1) for p in profile),
                "fiscal_gateway_url": world.sandbox_url,
            },
        )
        Contract.update(email="ivanov@example.com").execute()
    add_shop(
        world.sandbox_app,
        shop["shop_id"],
        password=shop["password"],
        login=shop["login"],
        notify_url=f"{world.url}/uniteller/isp/notify",
        status_url=f"{world.url}/uniteller/isp/status",
        callback_fields="BillNumber ApprovalCode Total",
        fiscal=True,
        fiscal_notify_url=f"{world.url}/uniteller/isp/fiscal",
    )
    order_id, _, _ = pay_by_card(world, "500")
    world.settle()
    with in_app(world):
        transaction = Transaction.by_order_id(order_id)
        assert (transaction.status, transaction.contract.balance) == ("paid", 50000)
        receipt = Receipt.of_sale(transaction.id)
        assert receipt.state == "issued"
        (document,) = FiscalDocument.select().where(
            FiscalDocument.transaction == transaction.id
        )
        assert (document.doc_type, document.total) == (0, 50000)
        assert document.fiscal_link.startswith(world.sandbox_url)
