"""Pace /results/ as Uniteller does (v1.43 §4.6.3): hold an early request, then 429.

Per shop and client IP: at most one request per interval, at most 5 at once
about one order, at most 1 at once about a period. A request over a limit waits
for its turn up to the hold; if its turn has not come by then, it is refused.
Turns go first come, first served among the requests whose own limit lets
them run: one held by its order's 5 does not hold a request about another.
"""

import threading
import time
from collections import Counter, deque
from contextlib import contextmanager

PER_ORDER = 5
PER_PERIOD = 1


class TooManyRequests(Exception):
    """The request's turn did not come within the hold: HTTP 429."""


class _Key:
    """The pacing state of one (shop, IP)."""

    def __init__(self):
        self.last_start = None
        self.queue = deque()
        self.periods = 0
        self.orders = Counter()


class ResultsPacer:
    """Give /results/ requests their turns, per (shop, client IP)."""

    def __init__(self, interval: float, hold: float):
        self.interval = interval
        self.hold = hold
        self._changed = threading.Condition()
        self._keys = {}

    @contextmanager
    def turn(self, shop_id: str, ip: str, order_id: str | None):
        """Wait for this request's turn and hold its place while it runs."""
        # Shop_IDP is case-insensitive at Uniteller (v1.43 Table 1).
        key = (shop_id.lower(), ip)
        self._wait(key, order_id)
        try:
            yield
        finally:
            with self._changed:
                state = self._keys[key]
                if order_id is None:
                    state.periods -= 1
                else:
                    state.orders[order_id] -= 1
                self._changed.notify_all()

    def _wait(self, key, order_id: str | None) -> None:
        deadline = time.monotonic() + self.hold
        ticket = (object(), order_id)
        with self._changed:
            state = self._keys.setdefault(key, _Key())
            state.queue.append(ticket)
            try:
                while True:
                    now = time.monotonic()
                    wait = self._wait_for(state, ticket, order_id, now)
                    if wait == 0:
                        self._take(state, order_id, now)
                        return
                    if now >= deadline:
                        raise TooManyRequests
                    self._changed.wait(min(wait, deadline - now))
            finally:
                # Served or refused, the request leaves the queue: the next one's turn.
                if ticket in state.queue:
                    state.queue.remove(ticket)
                self._changed.notify_all()

    def _wait_for(self, state, ticket, order_id, now) -> float:
        """Return 0 if the request may start now, else how long to wait at most."""
        if _busy(state, order_id):
            return float("inf")
        for earlier in state.queue:
            if earlier is ticket:
                break
            if not _busy(state, earlier[1]):
                return float("inf")
        if state.last_start is None:
            return 0
        return max(state.last_start + self.interval - now, 0)

    def _take(self, state, order_id, now) -> None:
        state.last_start = now
        if order_id is None:
            state.periods += 1
        else:
            state.orders[order_id] += 1


def _busy(state: _Key, order_id: str | None) -> bool:
    """Tell whether a request's own concurrency limit is reached."""
    if order_id is None:
        return state.periods >= PER_PERIOD
    return state.orders[order_id] >= PER_ORDER
