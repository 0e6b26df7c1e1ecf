"""`make run` (run.py): it stops everything it started, on Ctrl-C and on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.serial


def started_by(instance_dir):
    """Every live process whose environment names this instance folder: run.py's
    children and theirs, wherever they were re-parented."""
    found = []
    for process in psutil.process_iter(["pid", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if process.environ().get("INSTANCE_DIR") == str(instance_dir):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def listening(port):
    """True if something accepts connections on 127.0.0.1:port."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate, timeout, what):
    """Poll until predicate() is true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_run_py_stops_every_process_and_port_on_ctrl_c_and_sigterm(tmp_path, how):
    instance = tmp_path / "instance"
    web, sandbox = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TEST_")
        and k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PUBLIC_URL")
    }
    # REDIS_URL unset: the embedded Redis, as on a newcomer's machine.
    env.update(
        INSTANCE_DIR=str(instance), CABINET_PORT=str(web), SANDBOX_PORT=str(sandbox)
    )
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        # A session of its own, as a terminal gives `make run` its own group.
        run = subprocess.Popen(
            [sys.executable, "run.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    processes = []
    try:
        wait_until(
            lambda: "Ctrl-C stops everything" in log.read_text() or run.poll(),
            180,
            "run.py did not start",
        )
        assert run.poll() is None, log.read_text()[-3000:]
        page = requests.get(
            f"http://127.0.0.1:{web}/login?next=/payments&token=query-secret-9f",
            timeout=30,
        )
        assert page.status_code == 200
        processes = started_by(instance)
        names = [" ".join(p.cmdline()[1:]) for p in processes]
        # The embedded Redis rewrites its environment (its process title): it is
        # found by its pid file instead (and killed at the end whatever fails).
        settings = json.loads((instance / "redis.db.settings").read_text())
        socket_file = settings["unixsocket"]
        processes.append(psutil.Process(int(Path(settings["pidfile"]).read_text())))
        assert len(names) == 3, names  # run.py, the sandbox, `flask serve`
        assert any(" serve " in f"{name} " for name in names), names
        assert listening(web) and listening(sandbox) and _unix_listening(socket_file)

        if how == "ctrl-c":
            os.killpg(run.pid, signal.SIGINT)  # the terminal signals its group
        else:
            run.send_signal(signal.SIGTERM)  # `kill <pid of run.py>`
        run.wait(timeout=90)

        survivors = [p.pid for p in processes if p.is_running() and not _zombie(p)]
        survivors += [p.pid for p in started_by(instance)]
        assert survivors == [], log.read_text()[-3000:]
        assert not listening(web) and not listening(sandbox)
        assert not os.path.exists(socket_file) or not _unix_listening(socket_file)
        # The access log names paths without their query strings.
        text = log.read_text()
        assert '"GET /login HTTP/1.1" 200' in text and "query-secret-9f" not in text
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for process in processes:  # only what this test started
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def _zombie(process):
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _unix_listening(path):
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1)
        return probe.connect_ex(path) == 0
