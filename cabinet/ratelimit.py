"""Limits shared by every process through Redis: Uniteller's request spacing."""

import time
import uuid


class RequestSpacing:
    """At most one request in flight, and one start per `interval`, per key."""

    def __init__(self, redis, key, interval, in_flight_limit=120):
        self.redis = redis
        self.key = key
        self.interval_ms = max(1, int(interval * 1000))
        # While a request is in flight the key is held for its longest possible
        # duration; finishing it re-arms the key for one interval.
        self.hold_ms = self.interval_ms + int(in_flight_limit * 1000)
        self.token = uuid.uuid4().hex

    def acquire(self, timeout):
        """Wait for our turn; False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            if self.redis.set(self.key, self.token, nx=True, px=self.hold_ms):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # While a request is in flight the key's TTL is long; look again soon.
            wait_ms = min(max(self.redis.pttl(self.key), 5), 250)
            time.sleep(min(left, wait_ms / 1000))

    def release(self):
        """Mark our request finished: the next may start one interval from now."""
        self.redis.set(self.key, self.token, px=self.interval_ms)


class ConcurrencySlots:
    """At most `size` holders at once per key, across all processes (Redis)."""

    def __init__(self, redis, key, size, hold_seconds=120):
        self.redis = redis
        self.keys = [f"{key}:{n}" for n in range(size)]
        self.hold_ms = int(hold_seconds * 1000)  # a dead holder frees its slot
        self.token = uuid.uuid4().hex
        self.held = None

    def acquire(self, timeout):
        """Take a free slot; False if none frees within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for key in self.keys:
                if self.redis.set(key, self.token, nx=True, px=self.hold_ms):
                    self.held = key
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def release(self):
        """Give the slot back (only if it is still ours)."""
        if self.held and self.redis.get(self.held) == self.token.encode():
            self.redis.delete(self.held)
        self.held = None
