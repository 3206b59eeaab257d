"""Periodic background work: a registry of jobs per app and the `qrsvc worker` loop that runs them.

Requests never do slow outbound work (SMTP, clean-ups); they leave rows behind and a
job picks them up. The core never imports an integration, so integrations register
their jobs from their `init_app` (`register(app, "shop.outbox", deliver, 5)`) and the
core registers its own clean-ups here. A job is a unit of work: it runs in its own app
context and session, and the worker commits it when it returns and rolls it back when
it raises (a job that must make progress visible earlier, like claiming a message
before a slow send, commits that itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import current_app, has_app_context

from qrsvc import clock
from qrsvc.config import Setting, apply_settings
from qrsvc.extensions import db
from qrsvc.idempotency import KEPT_FOR
from qrsvc.models import IdempotencyRecord
from qrsvc.transactions import unit_of_work

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

EXTENSION = "qrsvc_jobs"
#: The running Worker's stop event (`stop_requested` reads it).
STOP_EXTENSION = "qrsvc_jobs_stop"
#: A failing job is retried after interval × 2, × 4 … but never waits longer than this
#: (or its own interval, if that is longer).
MAX_BACKOFF_SECONDS = 15 * 60.0

SETTINGS = (
    Setting(
        "CLEANUP_INTERVAL_SECONDS",
        3600.0,
        float,
        "how often `qrsvc worker` deletes expired records (idempotency keys)",
    ),
)


@dataclass(frozen=True, slots=True)
class Job:
    """`run` takes no arguments (it runs in an app context) and may return a line for the log."""

    name: str
    run: Callable[[], object]
    interval: float


def register(app: Flask, name: str, run: Callable[[], object], interval: float) -> None:
    """Add a job that `qrsvc worker` runs every `interval` seconds (and once at start)."""
    jobs: dict[str, Job] = app.extensions.setdefault(EXTENSION, {})
    if name in jobs:
        raise ValueError(f"a job named {name!r} is already registered")
    if interval <= 0:
        raise ValueError(f"job {name!r}: the interval must be positive")
    jobs[name] = Job(name, run, float(interval))


def registered(app: Flask) -> tuple[Job, ...]:
    jobs: dict[str, Job] = app.extensions.get(EXTENSION, {})
    return tuple(jobs.values())


def stop_requested() -> bool:
    """True once the worker running this job was asked to stop (SIGTERM): a long job ends early.

    A job that works through a batch checks this between items and hands back what it
    claimed but did not start; outside a worker it is always False.
    """
    if not has_app_context():
        return False
    event: threading.Event | None = current_app.extensions.get(STOP_EXTENSION)
    return event is not None and event.is_set()


def run_job(app: Flask, job: Job) -> object:
    """One job, one unit of work: a fresh app context and session, committed or rolled back."""
    with app.app_context(), unit_of_work():
        result = job.run()
    return result


def purge_idempotency_records() -> str | None:
    """Delete `Idempotency-Key` records past their 24 hours (claims only clear their own key)."""
    deleted = db.session.execute(
        sa.delete(IdempotencyRecord).where(IdempotencyRecord.created_at < clock.now() - KEPT_FOR)
    )
    count: int = deleted.rowcount  # type: ignore[attr-defined]
    return f"deleted {count} expired idempotency records" if count else None


def init_app(app: Flask) -> None:
    """The core's own settings and clean-up jobs."""
    apply_settings(app.config, SETTINGS)
    register(app, "idempotency.purge", purge_idempotency_records, app.config["CLEANUP_INTERVAL_SECONDS"])


@dataclass(slots=True)
class _Schedule:
    due: float
    failures: int = 0


class Worker:
    """Runs each job when it is due; a failing job is logged and backed off, the others go on.

    `stop()` (the SIGTERM/SIGINT handler of `qrsvc worker`) lets the job in progress
    finish, then returns from `run_forever`.
    """

    def __init__(
        self,
        app: Flask,
        jobs: Iterable[Job] | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.jobs = tuple(registered(app) if jobs is None else jobs)
        self._monotonic = monotonic
        self._schedule = {job.name: _Schedule(due=monotonic()) for job in self.jobs}
        self._stopping = threading.Event()
        app.extensions[STOP_EXTENSION] = self._stopping

    def stop(self, *_signal: object) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run_once(self) -> list[str]:
        """Every job once, now (`--once`, for cron and tests); returns the names of those that failed."""
        failed = []
        for job in self.jobs:
            if self.stopping:
                break
            if not self._run(job):
                failed.append(job.name)
        return failed

    def run_due(self) -> float:
        """Run the jobs that are due; returns the seconds until the next one is."""
        for job in self.jobs:
            if self.stopping:
                break
            if self._schedule[job.name].due <= self._monotonic():
                self._run(job)
        next_due = min((s.due for s in self._schedule.values()), default=self._monotonic() + 60)
        return max(0.0, next_due - self._monotonic())

    def run_forever(self) -> None:
        while not self.stopping:
            wait = self.run_due()
            self._stopping.wait(wait)  # a signal's stop() ends the wait at once

    def _run(self, job: Job) -> bool:
        """Run `job` and log one line: INFO when it did something, DEBUG when idle, ERROR when it failed.

        The line's `fields` (in JSON logs: keys of their own) are the job, its outcome
        (done, idle, failed) and its duration in ms.
        """
        schedule = self._schedule[job.name]
        started = self._monotonic()
        try:
            result = run_job(self.app, job)
        except Exception:
            schedule.failures += 1
            delay = min(job.interval * 2**schedule.failures, max(job.interval, MAX_BACKOFF_SECONDS))
            schedule.due = self._monotonic() + delay
            fields = self._fields(job, "failed", started)
            fields.update(failures=schedule.failures, retry_in_s=round(delay, 3))
            log.exception(
                "job %s failed (%d in a row); next try in %.0f s",
                job.name,
                schedule.failures,
                delay,
                extra={"fields": fields},
            )
            return False
        schedule.failures = 0
        schedule.due = started + job.interval
        took = self._monotonic() - started
        if result is None:
            fields = self._fields(job, "idle", started)
            log.debug("job %s done in %.3f s", job.name, took, extra={"fields": fields})
        else:
            fields = self._fields(job, "done", started)
            log.info("job %s: %s (%.3f s)", job.name, result, took, extra={"fields": fields})
        return True

    def _fields(self, job: Job, outcome: str, started: float) -> dict[str, object]:
        took = self._monotonic() - started
        return {"job": job.name, "outcome": outcome, "duration_ms": round(took * 1000, 1)}


__all__ = [
    "Job",
    "Worker",
    "init_app",
    "purge_idempotency_records",
    "register",
    "registered",
    "run_job",
    "stop_requested",
]
