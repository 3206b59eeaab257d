"""Big batches against a real `qrsvc serve` (gunicorn): memory stays bounded, killed workers wedge nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import sqlalchemy as sa

from qrsvc.models import IdempotencyRecord, QrCode


def _tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants (gunicorn, workers, render processes)."""
    total = 0
    try:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        return 0
    return total


class _PeakRss:
    """Samples a process tree's RSS every 20 ms in a thread; `peak` is the highest sum seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def server(app: Any, database_url: str, tmp_path: Path, serve: Any, api_key: str) -> Any:
    """gunicorn with one worker on the test database (the `app` fixture migrates and cleans it)."""
    env = {"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
    return serve(env, workers=1)


def _big_batch(count: int) -> dict[str, Any]:
    items = [{"data": f"{i:04d}" + "x" * 2796} for i in range(count)]  # ~2.8 KB each
    return {"items": items, "format": "jpeg", "size": 1024, "error_correction": "L"}


def test_an_oversized_inline_batch_is_413_without_holding_the_images(server, api_key, app) -> None:
    """900 JPEGs of 1024 px are ~900 MB as base64: refused early, the server never holds them."""
    auth = {"Authorization": f"Bearer {api_key}"}
    baseline = _tree_rss(server.process.pid)
    with _PeakRss(server.process.pid) as rss:
        response = requests.post(f"{server.url}/v1/qr/batch", json=_big_batch(900), headers=auth, timeout=120)
    assert response.status_code == 413
    body = response.json()
    assert (body["error"], body["field"]) == ("response_too_large", "response")
    assert '"response": "url"' in body["message"]
    grown = rss.peak - baseline
    print(
        f"baseline {baseline / 2**20:.0f} MiB, peak {rss.peak / 2**20:.0f} MiB, grown {grown / 2**20:.0f} MiB"
    )
    # The 64 MiB inline limit, a render slice and a render process or two; today's code grew by GBs.
    assert grown < 600 * 2**20


def _owner_count(app: Any, model: Any) -> int:
    from qrsvc.extensions import db

    with app.app_context():
        count = int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
        db.session.remove()
        return count


def _claimed(app: Any) -> bool:
    from qrsvc.extensions import db

    with app.app_context():
        found = db.session.scalar(sa.select(sa.func.count()).where(IdempotencyRecord.status.is_(None)))
        db.session.remove()
        return bool(found)


def test_a_retry_takes_over_from_a_killed_worker_and_is_charged_once(server, api_key, app) -> None:
    auth = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "killed-worker-1"}
    body = {**_big_batch(300), "response": "url"}
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            outcome["first"] = requests.post(
                f"{server.url}/v1/qr/batch", json=body, headers=auth, timeout=120
            )
        except requests.ConnectionError as exc:
            outcome["first"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 30
    while not _claimed(app):
        assert time.monotonic() < deadline, "the batch never claimed its key"
        time.sleep(0.05)
    time.sleep(0.5)  # well into rendering
    (worker,) = psutil.Process(server.process.pid).children()
    os.kill(worker.pid, signal.SIGKILL)
    thread.join(60)
    assert isinstance(outcome["first"], requests.ConnectionError)
    assert _owner_count(app, QrCode) == 0  # nothing of the dead request was committed

    started = time.monotonic()
    retry = requests.post(f"{server.url}/v1/qr/batch", json=body, headers=auth, timeout=120)
    elapsed = time.monotonic() - started
    assert retry.status_code == 200, retry.text
    assert retry.json()["failed"] == 0
    print(f"retry answered in {elapsed:.1f} s")
    assert elapsed < 25  # lease (6 s) + a new worker + the batch; not the 10-minute lock of old
    again = requests.post(f"{server.url}/v1/qr/batch", json=body, headers=auth, timeout=120)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [i["id"] for i in again.json()["items"]] == [i["id"] for i in retry.json()["items"]]
    usage = requests.get(f"{server.url}/v1/account/usage", headers=auth, timeout=30).json()["usage"]
    assert usage["codes_this_month"] == 300  # charged once
    assert _owner_count(app, QrCode) == 300
