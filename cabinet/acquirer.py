"""The acquirer as a configuration sees it: its client, limits and request pacing."""

from flask import current_app

from . import params as module_params
from .errors import PaymentUnavailable
from .extensions import get_redis
from .money import to_kopecks
from .pacing import ConcurrencySlots, RequestSpacing
from .uniteller.client import RateLimited, UnitellerClient

# Seconds a killed worker's /recurrent/ slot stays taken past that request's timeout.
SLOT_MARGIN = 15


def client_for(configuration):
    """Build the Uniteller client of a module configuration."""
    p = module_params.effective(configuration.params)
    return UnitellerClient(
        p["gateway_url"],
        p["shop_id"],
        p["password"],
        p["login"],
        timezone=current_app.config["UNITELLER_TIMEZONE"],
        fiscal_gateway_url=p["fiscal_gateway_url"],
    )


def is_fiscal(configuration):
    """Tell whether a configuration sends 54-FZ receipts with its payments."""
    return module_params.effective(configuration.params)["fiscal"] == "yes"


def payment_gateway(contract):
    """Return (instance, configuration) a contract pays through, or raise why not."""
    if contract.status != "active":
        raise PaymentUnavailable("contract_blocked")
    if contract.instance_id is None:
        raise PaymentUnavailable("not_linked")
    configuration = contract.instance.active_configuration()
    if configuration is None:
        raise PaymentUnavailable("no_active_configuration")
    if module_params.missing_for_payments(configuration.params):
        raise PaymentUnavailable("configuration_incomplete")
    return contract.instance, configuration


def amount_limits(configuration):
    """Return (min, max) payment in kopecks for a configuration."""
    p = module_params.effective(configuration.params)
    return to_kopecks(p["min_amount"]), to_kopecks(p["max_amount"])


def payment_types(configuration, autopay=False):
    """Return the ways a subscriber may pay ("card", "sbp") under a configuration."""
    p = module_params.effective(configuration.params)
    sbp = p["sbp_autopay" if autopay else "sbp"] == "yes"
    return ("card", "sbp") if sbp else ("card",)


def results_spacing(configuration):
    """Return the shared limiter of /results/ requests of a configuration's shop."""
    shop_id = configuration.params.get("shop_id", "")
    return RequestSpacing(
        get_redis(),
        f"cabinet:results:{shop_id}",
        current_app.config["RESULTS_MIN_INTERVAL"],
    )


def recurrent_slots(configuration, client):
    """Return the shared slots of a shop's concurrent /recurrent/ requests."""
    shop_id = configuration.params.get("shop_id", "")
    return ConcurrencySlots(
        get_redis(),
        f"cabinet:recurrent:{shop_id}",
        current_app.config["RECURRENT_CONCURRENCY"],
        # A worker killed mid-request frees its slot once its /recurrent/ could
        # no longer be running: that request's timeout and a margin, not the
        # client's longest (/results/, which takes no slot).
        hold_seconds=client.timeout_of("/recurrent/") + SLOT_MARGIN,
    )


def ask_results(client, spacing, stats, **query):
    """Send one /results/ request when the shop's shared limiter allows it."""
    # Uniteller holds an early request up to 100 s and then answers 429, so
    # waiting our turn here costs nothing it would not cost there.
    if not spacing.acquire(timeout=max(30, spacing.interval_ms / 1000 * 3)):
        # Not an error: other requests of this shop had the turns; wait.
        raise RateLimited("results: no turn within the limit, try later")
    try:
        stats.requests += 1
        return client.results(**query)
    finally:
        spacing.release()
