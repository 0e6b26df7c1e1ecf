"""Serve the sandbox: python -m cabinet.uniteller.sandbox [--host H] [--port P]."""

import argparse

from . import create_app


def main() -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(description="Uniteller sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    arguments = parser.parse_args()
    app = create_app()
    app.run(arguments.host, arguments.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
