"""The client against a real gunicorn: the API, batch splitting, rate limits, idempotency races."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from qrsvc.client import AuthenticationError, Client, NotFoundError, UnprocessableError
from tests.conftest import ROOT

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class RecordingSession(requests.Session):
    """A real session that notes when each request went out and what came back."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[float, float, int, str | None]] = []  # (sent, answered, status, Retry-After)

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        sent = time.monotonic()
        response = super().send(request, **kwargs)
        self.sent.append((sent, time.monotonic(), response.status_code, response.headers.get("Retry-After")))
        return response


@sqlite_only
def test_generate_get_image_and_usage(live, decode) -> None:
    server = live()
    client = Client(server.url, server.key)
    png = client.generate("https://example.com/client", size=300, error_correction="H")
    assert decode(png) == ["https://example.com/client"]
    meta = client.generate("https://example.com/meta", metadata=True, format="svg")
    assert meta["id"].startswith("qr_") and meta["format"] == "svg"
    assert client.get(meta["id"])["data"] == "https://example.com/meta"
    assert decode(client.image(meta["id"], "webp", size=200), "webp") == ["https://example.com/meta"]
    usage = client.usage()
    assert usage["usage"]["codes_today"] == 2
    with pytest.raises(UnprocessableError) as too_long:
        client.generate("x" * 3000, error_correction="H")
    assert (too_long.value.status, too_long.value.error, too_long.value.field) == (
        422,
        "data_too_long",
        "data",
    )
    with pytest.raises(NotFoundError):
        client.get("qr_nothere")
    with pytest.raises(AuthenticationError) as refused:
        Client(server.url, "qrs_wrong").usage()
    assert refused.value.status == 401 and refused.value.error == "invalid_api_key"


@sqlite_only
def test_batch_larger_than_the_server_limit_is_split_and_stitched_in_order(live, decode) -> None:
    server = live(QRSVC_BATCH_MAX_ITEMS="7")
    client = Client(server.url, server.key)
    items: list[Any] = [f"https://example.com/split/{i}" for i in range(25)]
    items[11] = {"data": "bad colour", "foreground": "red"}
    items[20] = {"data": "svg item", "format": "svg"}
    seen: list[int] = []
    result = client.batch(items, size=256, progress=seen.append)
    assert (result.count, result.failed) == (25, 1)
    assert [item["index"] for item in result.items] == list(range(25))
    assert result.items[11]["error"] == "invalid_parameter" and result.items[11]["field"] == "foreground"
    for index in range(25):
        if index not in (11, 20):
            assert decode(result.image(index)) == [items[index]]
    assert decode(result.image(20), "svg") == ["svg item"]
    assert client.batch_max_items == 7
    assert seen == [7, 14, 21, 25]
    assert server.statuses("/v1/qr/batch", 5) == ["413", "200", "200", "200", "200"]


@sqlite_only
def test_batch_zip_over_several_requests_has_global_names_and_manifest(live, decode, tmp_path) -> None:
    server = live(QRSVC_BATCH_MAX_ITEMS="4")
    items = [{"data": f"zip {i}", "filename": "same"} for i in range(3)]
    items += [f"plain {i}" for i in range(6)]
    out = tmp_path / "codes.zip"
    manifest = Client(server.url, server.key).batch_zip(items, out, format="png")
    archive = zipfile.ZipFile(out)
    names = archive.namelist()
    assert names[:3] == ["same.png", "same-2.png", "same-3.png"]
    assert names[3:] == [f"qr-{i:04d}.png" for i in range(3, 9)] + ["manifest.json"]
    assert json.loads(archive.read("manifest.json")) == manifest
    assert [entry["index"] for entry in manifest["items"]] == list(range(9))
    for entry in manifest["items"]:
        assert decode(archive.read(entry["filename"])) == [entry["data"]]


def _rate_limit_case(live, workers: int, **env: str) -> None:
    server = live(plan="burst", workers=workers, **env)
    session = RecordingSession()
    client = Client(server.url, server.key, session=session)
    items = [f"https://example.com/limited/{i}" for i in range(12)]
    started = time.monotonic()
    result = client.batch(items, chunk_size=2)  # 6 requests; the plan allows 3 per 2 seconds
    elapsed = time.monotonic() - started
    assert (result.count, result.failed) == (12, 0)
    assert [item["data"] for item in result.items] == items
    accepted = [entry for entry in session.sent if entry[2] == 200]
    refused = [entry for entry in session.sent if entry[2] == 429]
    assert len(accepted) == 6 and len(session.sent) == len(accepted) + len(refused)
    # It waited (the limit forces at least one full window) …
    assert refused and elapsed >= 2
    # … for as long as each 429 said, before sending anything else …
    for position, (_sent, answered, status, retry_after) in enumerate(session.sent[:-1]):
        if status == 429:
            assert retry_after is not None
            assert session.sent[position + 1][0] - answered >= float(retry_after) - 0.05
    # … so it never hammered: at most one refusal for each window the work needed.
    assert len(refused) <= math.ceil(6 / 3)
    # What the server saw matches what the client sent.
    statuses = server.statuses("/v1/qr/batch", len(session.sent))
    assert statuses.count("200") == 6 and statuses.count("429") == len(refused)


@sqlite_only
def test_client_waits_out_429s_and_never_exceeds_the_limit(live) -> None:
    _rate_limit_case(live, workers=1)


@sqlite_only
def test_client_waits_out_429s_with_limits_in_redis_and_two_workers(live, redis_url) -> None:
    _rate_limit_case(live, workers=2, QRSVC_RATELIMIT_STORAGE_URL=redis_url)


def test_concurrent_requests_with_one_idempotency_key_make_one_set_of_records(live, app) -> None:
    from qrsvc.extensions import db
    from qrsvc.models import IdempotencyRecord, QrCode

    server = live()
    body = {"items": [{"data": f"https://example.com/race/{i}"} for i in range(150)], "response": "url"}
    headers = {"Authorization": f"Bearer {server.key}", "Idempotency-Key": "race-1"}
    barrier = threading.Barrier(2)
    responses: list[requests.Response] = []

    def send() -> None:
        barrier.wait()
        responses.append(requests.post(f"{server.url}/v1/qr/batch", json=body, headers=headers, timeout=60))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].json() == responses[1].json()
    assert sorted(r.headers.get("Idempotent-Replayed", "no") for r in responses) == ["no", "true"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(QrCode)) == 150
        assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotencyRecord)) == 1
    usage = Client(server.url, server.key).usage()["usage"]
    assert usage["codes_today"] == 150
    assert server.statuses("/v1/qr/batch", 2) == ["200", "200"]


BLOCK_FLASK = textwrap.dedent(
    """
    import base64, sys
    from importlib.abc import MetaPathFinder

    class NoFlask(MetaPathFinder):
        BLOCKED = ("flask", "flask_sqlalchemy", "flask_limiter", "werkzeug", "sqlalchemy", "alembic")
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, NoFlask())
    try:
        import flask
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not work")
    from qrsvc.client import Client, QrsvcError
    image = Client(sys.argv[1], sys.argv[2]).generate("imported without flask")
    assert not any(m.split(".")[0] in NoFlask.BLOCKED for m in sys.modules), sorted(sys.modules)
    print(base64.b64encode(image).decode())
    """
)


@sqlite_only
def test_client_imports_and_works_without_flask(live, decode) -> None:
    server = live()
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_FLASK, server.url, server.key],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    import base64

    assert decode(base64.b64decode(done.stdout)) == ["imported without flask"]


@sqlite_only
def test_cli_batch_from_csv_to_zip(live, decode, tmp_path) -> None:
    from tests.conftest import cli

    server = live()
    rows = [("name", "url", "note")] + [
        (f"Contact {i}", f"https://crm.example.com/c/{i}", "x") for i in range(30)
    ]
    rows[5] = ("../evil", "https://crm.example.com/c/evil", "x")
    csv_path = tmp_path / "contacts.csv"
    csv_path.write_text("\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.zip"
    # No app module to load: the client commands must not need the Flask app.
    env = {"QRSVC_URL": server.url, "QRSVC_API_KEY": server.key, "QRSVC_APP_MODULE": "no_such_module"}
    args = ("client", "batch", "--csv", str(csv_path), "--column", "url", "--filename-column", "name")
    done = cli(*args, "-o", str(out), "--chunk-size", "8", "--size", "256", "--progress", env=env)
    assert done.returncode == 0, done.stderr
    assert "30 codes, 0 failed" in done.stdout
    assert "30/30" in done.stderr  # the progress bar reached the end
    usage = cli("client", "usage", env=env)
    assert usage.returncode == 0, usage.stderr
    assert json.loads(usage.stdout)["usage"]["codes_today"] == 30
    archive = zipfile.ZipFile(io.BytesIO(out.read_bytes()))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["count"] == 30
    assert "evil.png" in archive.namelist() and "Contact_7.png" in archive.namelist()
    for entry in manifest["items"]:
        assert decode(archive.read(entry["filename"])) == [entry["data"]]
    assert server.statuses("/v1/qr/batch", 4) == ["200"] * 4

    csv_path.write_text("url\nhttps://ok.example.com\n" + "y" * 3000 + "\n", encoding="utf-8")
    partial = cli("client", "batch", "--csv", str(csv_path), "--column", "url", "-o", str(out), env=env)
    assert partial.returncode == 1
    assert "row 3: data_too_long" in partial.stderr
    assert zipfile.ZipFile(out).namelist() == ["qr-0000.png", "manifest.json"]

    wrong = cli("client", "batch", "--csv", str(csv_path), "--column", "link", "-o", str(out), env=env)
    assert wrong.returncode == 2 and "no column 'link'" in wrong.stderr
    no_key = cli(
        "client",
        "batch",
        "--csv",
        str(csv_path),
        "--column",
        "url",
        "-o",
        str(out),
        env={"QRSVC_URL": server.url, "QRSVC_API_KEY": ""},
    )
    assert no_key.returncode == 1 and "401 missing_api_key" in no_key.stderr
