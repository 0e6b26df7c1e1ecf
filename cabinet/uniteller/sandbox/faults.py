"""Hold the injected faults that make the sandbox misbehave on purpose."""

import random
import threading


def _flag(value):
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _count(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a non-negative integer")
    return value


def _milliseconds(value):
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError("must be a non-negative number")
    return value


def _fraction(value):
    if not 0 <= _milliseconds(value) <= 1:
        raise ValueError("must be between 0 and 1")
    return float(value)


def _seed(value):
    return None if value is None else _count(value)


# name -> (validator, default)
FAULTS = {
    "drop_callbacks": (_flag, False),
    "callback_http_errors": (_count, 0),
    "latency_ms": (_milliseconds, 0),
    "error_rate": (_fraction, 0.0),
    "seed": (_seed, None),
    "duplicate_callbacks": (_count, 1),
    "reorder_callbacks": (_flag, False),
    "operation_failed": (_flag, False),
    # Fiscalization (docs/sandbox.md, "Fiscalization"): counters of the next
    # receipts to fail, used up one by one.
    "fail_sale_receipts": (_count, 0),
    "fail_sale_receipts_kept": (_count, 0),
    "fail_refund_receipts": (_count, 0),
    "fail_refunds_after_receipt": (_count, 0),
    "drop_fiscal_notifications": (_flag, False),
    "fiscal_notification_delay_ms": (_milliseconds, 0),
    # SBP: the next N charges on a bound SBP account get no timely answer from
    # the payer's bank: 28 "Payment result not received", paid later.
    "sbp_bank_silent": (_count, 0),
}


class Faults:
    """The faults in force; kept in memory, so a restart clears them."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self._values = {name: default for name, (_, default) in FAULTS.items()}
            self._rng = random.Random()

    def update(self, changes: dict) -> None:
        """Merge changes into the faults in force; raise ValueError naming a bad key."""
        checked = {}
        for name, value in changes.items():
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            try:
                checked[name] = FAULTS[name][0](value)
            except ValueError as error:
                raise ValueError(f"{name} {error}") from None
        with self._lock:
            self._values.update(checked)
            if "seed" in checked:
                self._rng = random.Random(checked["seed"])

    def as_dict(self) -> dict:
        """Return a copy of the faults in force."""
        with self._lock:
            return dict(self._values)

    def __getitem__(self, name: str):
        with self._lock:
            return self._values[name]

    def take(self, name: str) -> bool:
        """Use up one of a counter fault; False if it is at 0."""
        with self._lock:
            if self._values[name] <= 0:
                return False
            self._values[name] -= 1
            return True

    def draw_server_error(self) -> bool:
        """Tell whether this server-to-server answer should be an injected HTTP 500."""
        with self._lock:
            rate = self._values["error_rate"]
            return rate > 0 and self._rng.random() < rate
