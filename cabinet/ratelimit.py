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
