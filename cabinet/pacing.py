"""Pacing shared by every process through Redis: Uniteller's spacing and slots,
and the limits of what others may ask of us."""

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

    # Give the slot back if it is still ours, and wake one waiter.
    RELEASE = """
    if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
    redis.call('rpush', KEYS[2], 1)
    redis.call('ltrim', KEYS[2], -tonumber(ARGV[2]), -1)
    redis.call('pexpire', KEYS[2], ARGV[3])
    """
    POLL_SECONDS = 0.05  # a holder that died frees its slot by expiry, unannounced

    def __init__(self, redis, key, size, hold_seconds=120):
        self.redis = redis
        self.keys = [f"{key}:{n}" for n in range(size)]
        self.wake_key = f"{key}:wake"
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
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # Wait for a release to wake us rather than sleeping a fixed time:
            # a slot left idle between polls is throughput lost. The slot keys
            # stay the only truth; a wake-up only says "look again".
            self.redis.blpop([self.wake_key], timeout=min(left, self.POLL_SECONDS))

    def release(self):
        """Give the slot back (only if it is still ours) and wake a waiter."""
        if self.held:
            self.redis.eval(
                self.RELEASE,
                2,
                self.held,
                self.wake_key,
                self.token,
                len(self.keys),
                self.hold_ms,
            )
        self.held = None


class WindowLimit:
    """At most `limit` hits per key in each window of `seconds` (0: no limit)."""

    def __init__(self, redis, key, limit, seconds=60):
        self.redis = redis
        self.key = key
        self.limit = limit
        self.seconds = seconds

    def hit(self):
        """Count one hit; False once the window's limit is passed."""
        if self.limit <= 0:
            return True
        window = int(time.time() // self.seconds)
        key = f"{self.key}:{window}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.seconds * 2)
        count, _ = pipe.execute()
        return count <= self.limit

    def retry_after(self):
        """Seconds until the current window ends."""
        return self.seconds - int(time.time()) % self.seconds
