"""The processes a benchmark drives: gunicorn, the sandbox, RQ workers, wrk."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "wrk" / "load.lua"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"


def free_port():
    """Return a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url, timeout=60):
    """Wait until a URL answers at all; raise if it does not in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


class Process:
    """A child process with its output in a log file; stopped by its own pid."""

    def __init__(self, name, command, env, logdir):
        self.name = name
        self.log = open(Path(logdir) / f"{name}.log", "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.pid = self.popen.pid

    def stop(self, timeout=20):
        """Ask the process to stop (SIGTERM), then kill it if it lingers."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


def gunicorn(port, env, logdir, *extra, name="gunicorn"):
    """Start the app under gunicorn as the README deploys it; return (process, how)."""
    if GUNICORN_CONF.exists():
        options = ["-c", str(GUNICORN_CONF)]
        how = "deploy/gunicorn.conf.py"
    else:
        options = ["-w", "2", "--threads", "4"]
        how = "gunicorn -w 2 --threads 4 (deploy/gunicorn.conf.py does not exist yet)"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        *options,
        *extra,
        "--bind",
        f"127.0.0.1:{port}",
        "cabinet:create_app()",
    ]
    process = Process(name, command, env, logdir)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return process, how


def serve(port, env, logdir, workers=2, threads=8):
    """Start `flask --app cabinet serve`: the one process of a small ISP."""
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "cabinet",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    process = Process("serve", command, env, logdir)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return process


def sandbox(port, database, env, logdir):
    """Start the Uniteller sandbox in a process of its own."""
    process = Process(
        "sandbox",
        [sys.executable, "-m", "bench.sandbox_server", str(port), str(database)],
        env,
        logdir,
    )
    wait_http(f"http://127.0.0.1:{port}/ping")
    return process


def rq_workers(count, env, logdir):
    """Start `python worker.py` processes, as deployed."""
    return [
        Process(f"worker-{n}", [sys.executable, "worker.py"], env, logdir)
        for n in range(count)
    ]


def wrk(url, duration, connections, threads=2, **variables):
    """Run wrk with the bench script; return its JSON summary (rates in per second)."""
    env = dict(
        os.environ,
        BENCH_THREADS=str(threads),
        **{f"BENCH_{k.upper()}": str(v) for k, v in variables.items()},
    )
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    output = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    summary = json.loads(line[len("BENCH ") :])
    summary["rate"] = summary["requests"] / (summary["duration_us"] / 1e6)
    summary["errors"] = summary["socket_errors"] + summary["status_errors"]
    return summary


def children(pid):
    """The pids of a process's children (gunicorn's workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def memory_mb(pid, field="VmRSS"):
    """A process's resident memory (VmRSS) or its peak (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid):
    """Reset a process's peak resident memory (VmHWM) to its current size."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pids):
    """CPU time (user + system) of processes and their reaped children, summed."""
    total = 0
    for pid in pids:
        path = Path(f"/proc/{pid}/stat")
        if path.exists():
            # After the ")" that ends the command name: utime is field 14 of
            # stat(5), then stime, cutime, cstime.
            fields = path.read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")
