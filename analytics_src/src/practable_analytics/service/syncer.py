"""A thread that runs one job at a time for the worker: the WAL's fsync of a commit that has requests
waiting on it, while the worker computes their answers (fdatasync releases the GIL, so both proceed at
once). The worker sends nothing and counts nothing before :meth:`Syncer.wait` has returned."""

import threading
from typing import Callable, Optional

from practable_analytics.service.threads import name_os_thread


class Syncer:
    """``start(job)`` hands a job to the thread (started on first use); ``wait()`` returns when it has
    run, raising what it raised. One job at a time: ``start`` is only called after ``wait``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._job: Optional[Callable[[], None]] = None
        self._running = False
        self._error: Optional[BaseException] = None
        self._closed = False
        self._thread: Optional[threading.Thread] = None

    def start(self, job: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("syncer closed")
            if self._job is not None or self._running:
                raise RuntimeError("a job is already running")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sync", daemon=True)
                self._thread.start()
            self._job = job
            self._running = True
            self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            while self._running:
                self._cond.wait()
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """End the thread (after the job in progress, if any)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        name_os_thread("serve-sync")
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._job is None:
                    return
                job, self._job = self._job, None
            error: Optional[BaseException] = None
            try:
                job()
            except Exception as exc:  # noqa: BLE001 (handed to the waiting worker, which raises it)
                error = exc
            with self._cond:
                self._error = error
                self._running = False
                self._cond.notify_all()
