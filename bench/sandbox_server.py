"""Serve the Uniteller sandbox for the benchmarks; count concurrent calls.

python -m bench.sandbox_server PORT DATABASE_FILE
GET /_bench/concurrency answers the peak of concurrent /recurrent/ requests so
far (DELETE starts counting anew); GET /_bench/concurrency/billing the same of
the emulated billing's OSMP calls.
"""

import json
import sys
import threading
import time

from werkzeug.serving import make_server

from cabinet.uniteller.sandbox import create_app

from . import BILLING

# What each counter watches: its name in /_bench/concurrency/NAME and a path prefix.
WATCHED = {"recurrent": "/recurrent", "billing": "/billing/osmp"}


class ConcurrencyCounter:
    """WSGI middleware: the peak number of requests in flight at once, per prefix."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.counts = {
            name: {"current": 0, "peak": 0, "total": 0, "seconds": 0.0}
            for name in WATCHED
        }

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_bench/concurrency"):
            name = path.removeprefix("/_bench/concurrency").strip("/") or "recurrent"
            counts = self.counts.get(name)
            if counts is None:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"no such counter"]
            if environ.get("REQUEST_METHOD") == "DELETE":  # a measurement begins
                with self.lock:
                    counts.update(peak=counts["current"], total=0, seconds=0.0)
            body = json.dumps(
                {
                    "peak": counts["peak"],
                    "total": counts["total"],
                    # How long a request took here on average: what a slot is
                    # held for at least, the emulator's own work included.
                    "mean_ms": 1000 * counts["seconds"] / max(counts["total"], 1),
                }
            )
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body.encode()]
        name = next((n for n, p in WATCHED.items() if path.startswith(p)), None)
        if name is None:
            return self.app(environ, start_response)
        counts = self.counts[name]
        with self.lock:
            counts["current"] += 1
            counts["total"] += 1
            counts["peak"] = max(counts["peak"], counts["current"])
        started = time.perf_counter()
        try:
            # The answer is short: read it whole so the count covers the work.
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                counts["current"] -= 1
                counts["seconds"] += time.perf_counter() - started


def main(port, database):
    """Serve until killed."""
    app = create_app(
        {
            "SANDBOX_DATABASE": database,
            "SANDBOX_RESULTS_INTERVAL": 0.2,
            "SANDBOX_CAPTURE_DELAY": 0,
            "SANDBOX_STATUS_CHECK_DELAY": 0,
            "SANDBOX_BILLING_LOGIN": BILLING["login"],
            "SANDBOX_BILLING_PASSWORD": BILLING["password"],
        }
    )
    server = make_server("127.0.0.1", int(port), ConcurrencyCounter(app), threaded=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main(*sys.argv[1:3])
