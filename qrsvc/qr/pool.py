"""Rendering spread over the machine's cores: a lazily started process pool.

Encoding and drawing are CPU-bound and hold the GIL, so a large batch is split
into chunks rendered by worker processes. The pool is made on first use in the
process that uses it (after gunicorn has forked its workers) and remade if the
process finds itself forked with a pool it did not start. Children are spawned
(a fresh interpreter each, started once), so they never inherit a web worker's
threads, locks or connections. (A fork server would start them faster, but its
global state does not survive a fork of the process that started it.)
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from qrsvc.qr.render import RenderError, Style, render
from qrsvc.qr.symbols import DataTooLongError, Symbol, encode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """One code to draw, in plain values that cross a process boundary."""

    data: str
    error_correction: str
    min_version: int | None
    engine: str
    format: str
    style: Style


@dataclass(frozen=True, slots=True)
class Drawn:
    symbol: Symbol
    content: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    """A job that cannot be drawn: `reason` is `data_too_long` or `size_too_small`."""

    reason: str
    message: str


def draw(job: Job) -> Drawn | Refused:
    """Encode and render one job; the expected failures come back as values, not exceptions."""
    try:
        symbol = encode(job.data, job.error_correction, job.min_version, job.engine)
    except DataTooLongError as exc:
        return Refused("data_too_long", str(exc))
    try:
        return Drawn(symbol, render(symbol, job.format, job.style))
    except RenderError as exc:
        return Refused("size_too_small", str(exc))


def _draw_chunk(jobs: Sequence[Job]) -> list[Drawn | Refused]:
    return [draw(job) for job in jobs]


def _exit_with_parent(parent: int) -> None:
    """In each render process: leave when the web worker that started it is gone.

    A worker killed outright (gunicorn's timeout sends SIGKILL) cannot stop its pool,
    and the pool's queues keep the children blocked; this watch ends them.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="qrsvc-parent-watch", daemon=True).start()


class RenderPool:
    """Draws jobs in `processes` worker processes when there are at least `min_jobs` of them."""

    def __init__(self, processes: int, min_jobs: int) -> None:
        self.processes = processes
        self.min_jobs = min_jobs
        self._executor: ProcessPoolExecutor | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def parallel(self, count: int) -> bool:
        """Whether `count` jobs are worth the trip to other processes."""
        return self.processes > 1 and count >= max(self.min_jobs, 2)

    def draw_all(self, jobs: Sequence[Job]) -> Iterator[Drawn | Refused]:
        """Results in the order of `jobs`, drawn here or in the pool depending on their number."""
        if not self.parallel(len(jobs)):
            yield from map(draw, jobs)
            return
        # A few chunks per process balance uneven chunks without paying per-job IPC.
        size = max(1, math.ceil(len(jobs) / (self.processes * 4)))
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        submitted = self._submit_all(chunks)
        if submitted is None:
            for chunk in chunks:
                yield from _draw_chunk(chunk)
            return
        executor, futures = submitted
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                drawn = future.result()
            except BrokenProcessPool:
                # A render process died (killed, out of memory): draw here, start afresh next time.
                log.warning("render pool broken; drawing %d jobs in the web worker", len(chunk))
                self._discard(executor)
                drawn = _draw_chunk(chunk)
            yield from drawn

    def _submit_all(
        self, chunks: list[Sequence[Job]]
    ) -> tuple[ProcessPoolExecutor, list[Future[list[Drawn | Refused]]]] | None:
        """Hand every chunk to the pool; None when no working pool could be had (draw here).

        A process that died since the last call (killed, out of memory) may have left the pool
        marked broken, which refuses even to take work: start a new one, once.
        """
        for _attempt in range(2):
            executor = self._executor_here()
            try:
                return executor, [executor.submit(_draw_chunk, chunk) for chunk in chunks]
            except BrokenProcessPool:
                log.warning("render pool broken; starting a new one")
                self._discard(executor)
        return None

    def _executor_here(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                # A pool inherited through fork belongs to the parent: leave it alone, start ours.
                context = multiprocessing.get_context("spawn")
                self._executor = ProcessPoolExecutor(
                    self.processes,
                    mp_context=context,
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
                self._pid = os.getpid()
            return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
                self._pid = None
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker processes (if this process started them)."""
        with self._lock:
            if self._executor is not None and self._pid == os.getpid():
                self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
            self._pid = None


__all__ = ["Drawn", "Job", "Refused", "RenderPool", "draw"]
