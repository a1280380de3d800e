"""Bounds on what the server holds at once: a burst of requests cannot pile up without limit.

Colorizing a photo holds a few hundred MB (the decoded image, its Lab, the
resized ab) for a second or so. An unbounded server would accept every request
of a burst, hold every upload in memory and run out of it. So at most
``workers`` jobs run at once (threads: TensorFlow and the decoders release the
GIL), at most ``queue`` more wait, and a request beyond that is refused at
once (the API answers 503 with Retry-After) instead of waiting for memory that
is not there.

A place is taken only once the request's body has arrived: a client that
sends its upload slowly must not hold a place while it does (three clients
sending a byte a second would lock a small pool). Bodies still arriving are
bounded by an ``UploadBudget`` instead: the bytes they hold together, not
their number, so that many slow clients cost nothing and a few that send
much and then stall cannot exhaust memory either (the API's deadlines free
their bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor


class PoolFull(Exception):
    """Every worker is busy and the queue is full."""


class UploadsFull(Exception):
    """The bodies being received already hold the whole upload budget."""


class UploadBudget:
    """At most ``total`` bytes held by the bodies being received, all requests together."""

    def __init__(self, total: int):
        self.total, self._held = total, 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes held now by bodies being received."""
        return self._held

    @contextlib.contextmanager
    def account(self):
        """A request's share: ``take(count)`` for each piece received (``UploadsFull``
        when the budget would be exceeded); everything taken is given back on exit."""
        taken = 0

        def take(count: int) -> None:
            nonlocal taken
            with self._lock:
                if self._held + count > self.total:
                    raise UploadsFull
                self._held += count
            taken += count

        try:
            yield take
        finally:
            with self._lock:
                self._held -= taken


class BoundedPool:
    """``workers`` threads and room for ``queue`` waiting requests (see the module docstring)."""

    def __init__(self, workers: int, queue: int):
        if workers < 1 or queue < 0:
            raise ValueError(f"a pool needs at least one worker and a queue of zero or more, got {workers}, {queue}")
        self.workers, self.queue = workers, queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colorize")
        self._admitted = 0
        self._lock = threading.Lock()

    @property
    def admitted(self) -> int:
        """Requests holding a place now (running or waiting)."""
        return self._admitted

    @contextlib.asynccontextmanager
    async def place(self):
        """Hold one of the ``workers + queue`` places for the duration of a request,
        or raise ``PoolFull`` at once when there is none."""
        with self._lock:
            if self._admitted >= self.workers + self.queue:
                raise PoolFull
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1

    async def run(self, function, *args):
        """``function(*args)`` on a worker thread; a request that goes away while
        its job still waits in the queue cancels the job."""
        return await asyncio.wrap_future(self._executor.submit(function, *args))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
