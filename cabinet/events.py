"""Signals an ISP can connect its own code to (blinker); see README "Events".

Modules named in the EVENT_HANDLERS setting are imported when the app starts, so
their `@signal.connect` handlers are in place in the web and the workers alike.
"""

import importlib
from dataclasses import dataclass, field

from blinker import Namespace

_signals = Namespace()

#: Before a weekly or monthly charge. sender: the Autopay; kwargs: decision
#: (a ChargeDecision). A handler may set decision.amount (kopecks) or call
#: decision.skip(reason); the reason is recorded.
before_charge = _signals.signal("before-charge")

#: The daily run's automatic-mode decision. sender: the local date; kwargs:
#: proposals (a list of AutomaticCharge the built-in policy made). Handlers may
#: remove, change or add proposals; what is left is charged.
automatic_charges = _signals.signal("automatic-charges")

#: After a charge succeeded. sender: the AutopayCharge.
charge_succeeded = _signals.signal("charge-succeeded")

#: After a charge failed (declined, or its retries ran out). sender: the AutopayCharge.
charge_failed = _signals.signal("charge-failed")

#: After an autopay was suspended (the card needs replacing). sender: the Autopay.
autopay_suspended = _signals.signal("autopay-suspended")


@dataclass
class ChargeDecision:
    """What a weekly or monthly charge will do; handlers may change it."""

    amount: int
    skipped: bool = False
    reason: str | None = None

    def skip(self, reason):
        """Skip this period's charge, for the recorded reason."""
        self.skipped = True
        self.reason = reason


@dataclass
class AutomaticCharge:
    """A top-up the automatic mode will ask for: which contract, how much, why."""

    contract_number: str
    amount: int
    reason: str = ""
    extra: dict = field(default_factory=dict)


def load_handlers(module_names):
    """Import the ISP's handler modules (comma-separated names)."""
    for name in filter(None, (n.strip() for n in module_names.split(","))):
        importlib.import_module(name)
