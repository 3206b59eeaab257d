"""gunicorn server hooks for `qrsvc serve` (`--config python:qrsvc.gunicorn_config`).

Its settings stay on the command line `qrsvc serve` builds.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess


def child_exit(_server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges leave the multiprocess metrics (its counters stay in the totals)."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
