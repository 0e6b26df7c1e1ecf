"""Serve the Uniteller sandbox for the benchmarks; count concurrent /recurrent/ calls.

python -m bench.sandbox_server PORT DATABASE_FILE
GET /_bench/concurrency answers the peak of concurrent /recurrent/ requests so far.
"""

import json
import sys
import threading

from werkzeug.serving import make_server

from cabinet.uniteller.sandbox import create_app


class ConcurrencyCounter:
    """WSGI middleware: the peak number of /recurrent/ requests in flight at once."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.current = self.peak = self.total = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_bench/concurrency":
            body = json.dumps({"peak": self.peak, "total": self.total}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if not path.startswith("/recurrent"):
            return self.app(environ, start_response)
        with self.lock:
            self.current += 1
            self.total += 1
            self.peak = max(self.peak, self.current)
        try:
            # The answer is short: read it whole so the count covers the work.
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.current -= 1


def main(port, database):
    """Serve until killed."""
    app = create_app(
        {
            "SANDBOX_DATABASE": database,
            "SANDBOX_RESULTS_INTERVAL": 0.2,
            "SANDBOX_CAPTURE_DELAY": 0,
            "SANDBOX_STATUS_CHECK_DELAY": 0,
        }
    )
    server = make_server("127.0.0.1", int(port), ConcurrencyCounter(app), threaded=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main(*sys.argv[1:3])
