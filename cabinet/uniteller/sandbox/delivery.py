"""Talk to the merchant: callbacks and status requests, run by a background worker."""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

log = logging.getLogger(__name__)

TIMEOUT = 10
STATUS_ANSWERS = ("PAID", "NEW", "CANCELLED")


def post_callback(
    url: str, params: dict, fmt: str, in_query: bool = True
) -> tuple[int | None, str]:
    """POST one callback; return (HTTP code or None, error text).

    An ordinary callback repeats its fields in the query; a fiscal notification
    does not (its Receipt runs to 30,000 characters and names the payer).
    """
    body = {"json": params} if fmt == "json" else {"data": params}
    query = params if in_query else None
    try:
        answer = requests.post(url, params=query, timeout=TIMEOUT, **body)
    except requests.RequestException as error:
        return None, f"{type(error).__name__}: {error}"[:300]
    return answer.status_code, ""


def post_callback_copies(
    url: str, params: dict, fmt: str, copies: int, in_query: bool = True
) -> list:
    """POST the same callback `copies` times at once; return every (code, error)."""
    if copies <= 1:
        return [post_callback(url, params, fmt, in_query)]
    with ThreadPoolExecutor(max_workers=copies) as pool:
        futures = [
            pool.submit(post_callback, url, params, fmt, in_query)
            for _ in range(copies)
        ]
        return [future.result() for future in futures]


def ask_status(url: str, order_id: str, shop_id: str) -> tuple[int | None, str, str]:
    """POST a status request; return (HTTP code, PAID/NEW/CANCELLED or '', error)."""
    try:
        answer = requests.post(
            url, data={"order_id": order_id, "upoint_id": shop_id}, timeout=TIMEOUT
        )
    except requests.RequestException as error:
        return None, "", f"{type(error).__name__}: {error}"[:300]
    word = answer.text.strip().upper()
    if answer.status_code == 200 and word in STATUS_ANSWERS:
        return answer.status_code, word, ""
    return answer.status_code, "", f"unexpected answer {answer.text[:100]!r}"


class Worker:
    """A daemon thread that runs due tasks from the sandbox's persistent queue."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.busy = False
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread = None

    def start(self) -> None:
        """Start the thread unless it runs already."""
        if self._thread and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name="sandbox-worker", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15) -> None:
        """Ask the thread to finish its current task and wait for it."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread:
            self._thread.join(timeout)
        self._thread = None
        self.busy = False

    @property
    def running(self) -> bool:
        """Tell whether the thread is alive."""
        return bool(self._thread and self._thread.is_alive())

    def wake(self) -> None:
        """Make the thread look at the queue again now."""
        self._wakeup.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Clear before reading the queue so a task added meanwhile is not missed.
            self._wakeup.clear()
            self.busy = True
            task = self.sandbox.next_task()
            now = time.time()
            if task and task["due_at"] <= now:
                self._run_task(task)
                continue
            self.busy = False
            wait = 1.0 if task is None else min(task["due_at"] - now, 1.0)
            self._wakeup.wait(wait)
        self.busy = False

    def _run_task(self, task: dict) -> None:
        try:
            self.sandbox.run_task(task)
        except Exception:
            # A failing task must not stop the queue or run again in a tight loop.
            log.exception("sandbox task %s %s failed", task["kind"], task["id"])
            self.sandbox.finish_task(task["id"])
