"""Serve any WSGI app in a background thread, for tests and demos."""

import threading

from werkzeug.serving import make_server

POLL_INTERVAL = 0.02


class LiveServer:
    """A WSGI app served in a daemon thread; `url` is its base URL."""

    def __init__(self, server, thread: threading.Thread, host: str):
        self._server = server
        self._thread = thread
        self.url = f"http://{host}:{server.server_port}"

    def shutdown(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.shutdown()


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> LiveServer:
    """Serve a WSGI app with a threaded werkzeug server; port 0 picks a free one."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever,
        # A short poll makes shutdown() return at once instead of after 0.5 s.
        kwargs={"poll_interval": POLL_INTERVAL},
        name=f"wsgi-{server.server_port}",
        daemon=True,
    )
    thread.start()
    return LiveServer(server, thread, host)
