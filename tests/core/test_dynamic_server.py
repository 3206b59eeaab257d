"""Dynamic codes through a real `qrsvc serve`: scans survive a SIGTERM, retargets reach every worker, logs keep no address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa


@pytest.fixture
def server(app: Any, database_url: str, tmp_path: Path, serve: Any) -> Any:
    """gunicorn with two workers on the test database; scans wait up to a minute to be written."""
    env = {
        "QRSVC_DATABASE_URL": database_url,
        "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
        "QRSVC_SCAN_FLUSH_SECONDS": "60",
        "QRSVC_SCAN_FLUSH_ROWS": "100000",
    }
    return serve(env, workers=2)


def _make(server: Any, api_key: str, target: str) -> dict[str, Any]:
    response = requests.post(
        f"{server.url}/v1/qr/generate",
        json={"data": target, "dynamic": True, "response": "json"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    code: dict[str, Any] = response.json()
    return code


def _scans(app: Any) -> int:
    from qrsvc.extensions import db
    from qrsvc.models import Scan

    with app.app_context():
        count = int(db.session.scalar(sa.select(sa.func.count()).select_from(Scan)) or 0)
        db.session.remove()
        return count


def test_buffered_scans_are_all_written_when_the_server_stops(server, app, api_key) -> None:
    code = _make(server, api_key, "https://example.com/stop")
    short_url = f"{server.url}/R/{code['dynamic']['short_url'].rsplit('/', 1)[1]}"
    count = 120
    for _ in range(count):
        # A new connection each time, so both workers take some.
        response = requests.get(short_url, allow_redirects=False, timeout=30)
        assert response.status_code == 302
    assert _scans(app) == 0  # still waiting in the workers (a minute's buffer)
    server.stop()  # SIGTERM: gunicorn stops its workers gracefully
    assert _scans(app) == count
    lines = [line for line in server.log.read_text().splitlines() if '"GET /R/' in line]
    assert len(lines) == count
    assert all(line.startswith('- "GET /R/') for line in lines), lines[:3]


def test_a_retarget_reaches_every_worker_at_once(server, api_key) -> None:
    code = _make(server, api_key, "https://old.example.com/")
    short_url = f"{server.url}/R/{code['dynamic']['short_url'].rsplit('/', 1)[1]}"
    for _ in range(6):  # both workers have looked it up
        assert requests.get(short_url, allow_redirects=False, timeout=30).headers["Location"] == code["data"]
    changed = requests.patch(
        f"{server.url}/v1/qr/{code['id']}",
        json={"target": "https://new.example.com/"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    assert changed.status_code == 200
    locations = {
        requests.get(short_url, allow_redirects=False, timeout=30).headers["Location"] for _ in range(20)
    }
    assert locations == {"https://new.example.com/"}
