"""What a platform watches: `/readyz` for a load balancer, `/metrics` for Prometheus."""

from __future__ import annotations

import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import cli, free_port, make_app


@pytest.fixture
def other_app(tmp_path: Path):
    """Build an app of its own (its database engine disposed afterwards)."""
    from qrsvc.extensions import db

    made = []

    def build(database_url: str, **overrides):
        made.append(make_app(database_url, tmp_path / f"instance-{len(made)}", **overrides))
        return made[-1]

    yield build
    for application in made:
        with application.app_context():
            db.engine.dispose()


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# /readyz


def test_readyz_is_ok_on_a_migrated_database(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "ready"
    assert "Retry-After" not in response.headers


def test_readyz_is_503_on_an_unmigrated_database(tmp_path: Path, other_app) -> None:
    app = other_app(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready"
    assert "database" in body["checks"]
    assert "migrat" in body["checks"]["database"]
    assert int(response.headers["Retry-After"]) >= 1
    assert app.test_client().get("/healthz").status_code == 200  # the process is up all the same


def test_readyz_is_503_when_the_database_does_not_answer(other_app) -> None:
    app = other_app(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    started = time.monotonic()
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "unreachable" in response.get_json()["checks"]["database"]
    assert time.monotonic() - started < 5


@pytest.fixture
def silent_server():
    """A real TCP server that accepts connections and never says a word (a hung database or Redis)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def ask_readyz(app) -> Any:
    """GET /readyz in a thread, given a generous minute only so that a hang fails instead of stalling."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(app.test_client().get, "/readyz").result(timeout=60)
    finally:
        pool.shutdown(wait=False)  # a hung probe must not hold the test up as well


def test_readyz_is_503_when_postgresql_accepts_but_never_answers(other_app, silent_server: int) -> None:
    app = other_app(f"postgresql+psycopg://nobody@127.0.0.1:{silent_server}/none")
    response = ask_readyz(app)
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"].startswith("unreachable")
    assert body["reason"].startswith("database: unreachable")
    assert "Retry-After" in response.headers


def test_readyz_is_503_when_postgresql_answers_but_the_check_is_stuck(other_app) -> None:
    """A lock held on the migrations table (a stuck migration, say): the probe's statement_timeout ends it."""
    from qrsvc.db import upgrade
    from tests.conftest import postgres_schema

    with postgres_schema("qrsvc_probe") as url:
        app = other_app(url)
        upgrade(app)
        holder = sa.create_engine(url)
        try:
            with holder.begin() as connection:
                connection.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
                response = ask_readyz(app)
        finally:
            holder.dispose()
        assert response.status_code == 503
        assert response.get_json()["checks"]["database"] == "unreachable (QueryCanceled)"
        assert ask_readyz(app).status_code == 200  # the lock gone, ready again
        from qrsvc.extensions import db

        with app.app_context():
            db.engine.dispose()
        app.extensions["qrsvc_probe_engine"].dispose()


def test_readyz_is_503_when_redis_accepts_but_never_answers(
    app, database_url: str, other_app, silent_server: int
) -> None:
    hung = other_app(database_url, RATELIMIT_STORAGE_URL=f"redis://127.0.0.1:{silent_server}/0")
    response = ask_readyz(hung)
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["redis"].startswith("unreachable")
    assert body["checks"]["database"] == "ok"


def test_readyz_names_redis_when_it_does_not_answer(app, database_url: str, other_app) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    broken = other_app(database_url, RATELIMIT_STORAGE_URL=closed)
    started = time.monotonic()
    response = broken.test_client().get("/readyz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    body = response.get_json()
    assert "redis" in body["checks"]
    assert body["checks"]["database"] == "ok"
    assert "Retry-After" in response.headers


def test_readyz_checks_a_redis_that_answers(app, database_url: str, redis_url: str, other_app) -> None:
    other = other_app(database_url, RATELIMIT_STORAGE_URL=redis_url)
    response = other.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


# /metrics


def test_metrics_count_requests_by_route_status_and_format(client, auth) -> None:
    for _ in range(3):
        assert (
            client.post("/v1/qr/generate", json={"data": "a", "format": "png"}, headers=auth).status_code
            == 200
        )
    for _ in range(2):
        assert (
            client.post("/v1/qr/generate", json={"data": "b", "format": "svg"}, headers=auth).status_code
            == 200
        )
    assert client.post("/v1/qr/generate", json={"data": "c", "size": 1}, headers=auth).status_code == 400
    assert client.get("/v1/qr/qr_secret123", headers=auth).status_code == 404
    assert client.get("/nowhere/secret-path-xyz").status_code == 404

    text = client.get("/metrics").get_data(as_text=True)
    route = "/v1/qr/generate"
    assert samples(text, "qrsvc_http_requests_total", route=route, method="POST", status="200") == 5
    assert samples(text, "qrsvc_http_requests_total", route=route, method="POST", status="400") == 1
    assert samples(text, "qrsvc_http_request_duration_seconds_count", route=route, status="200") == 5
    assert samples(text, "qrsvc_http_requests_total", route="/v1/qr/<code_id>", status="404") == 1
    assert samples(text, "qrsvc_http_requests_total", route="unmatched", status="404") == 1
    assert "secret" not in text  # the rule, never the raw path
    assert samples(text, "qrsvc_codes_rendered_total", format="png") == 3
    assert samples(text, "qrsvc_codes_rendered_total", format="svg") == 2


def test_metrics_count_rate_limit_refusals(client, make_key) -> None:
    headers = {"Authorization": f"Bearer {make_key(plan='tiny')}"}
    statuses = [
        client.post("/v1/qr/generate", json={"data": str(i)}, headers=headers).status_code for i in range(5)
    ]
    assert statuses.count(429) == 2
    text = client.get("/metrics").get_data(as_text=True)
    assert samples(text, "qrsvc_rate_limit_refusals_total", route="/v1/qr/generate") == 2
    assert samples(text, "qrsvc_http_requests_total", route="/v1/qr/generate", status="429") == 2


def test_metrics_are_for_loopback_only_without_a_token(client) -> None:
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert outside.status_code == 404
    assert "qrsvc_" not in outside.get_data(as_text=True)


@pytest.mark.parametrize("app_config", [{"METRICS_TOKEN": "s3cret-token"}])
def test_metrics_token_is_required_when_set(client) -> None:
    outside = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/metrics").status_code == 404  # loopback is not enough any more
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": "s3cret-token"}).status_code == 404
    good = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}, environ_base=outside)
    assert good.status_code == 200
    assert good.headers["Content-Type"].startswith("text/plain")
    assert "qrsvc_http_requests_total" in good.get_data(as_text=True)


def test_metrics_add_up_across_gunicorn_workers(tmp_path: Path, serve) -> None:
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
    assert cli("db", "upgrade", env=env).returncode == 0
    key = cli("keys", "create", "--name", "m", "--plan", "pro", env=env).stdout.strip().splitlines()[-1]
    # One connection a worker at a time, so that a busy worker leaves the next one to the other.
    server = serve({**env, "QRSVC_THREADS": "1"}, workers=2)
    headers = {"Authorization": f"Bearer {key}"}

    def generate(i: int) -> int:
        body = {"data": f"code {i}", "size": 1024, "format": "png" if i % 2 else "svg"}
        return requests.post(
            f"{server.url}/v1/qr/generate", json=body, headers=headers, timeout=60
        ).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(generate, range(60)))
    assert statuses == [200] * 60
    text = requests.get(f"{server.url}/metrics", timeout=30).text

    pids = set(re.findall(r'"POST /v1/qr/generate" 200 .* <(\d+)>', server.log.read_text()))
    assert len(pids) == 2, "both workers must have served for this test to mean anything"
    assert samples(text, "qrsvc_http_requests_total", route="/v1/qr/generate", status="200") == 60
    assert samples(text, "qrsvc_codes_rendered_total", format="png") == 30
    assert samples(text, "qrsvc_codes_rendered_total", format="svg") == 30
    folder = tmp_path / "instance" / "metrics" / str(server.port)  # set up in the instance folder
    assert any(folder.glob("*.db"))


def test_serve_starts_with_clean_metrics(tmp_path: Path, serve, monkeypatch) -> None:
    """A restarted server does not add its predecessor's counts (their files are removed at start)."""
    import tests.conftest

    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
    assert cli("db", "upgrade", env=env).returncode == 0
    port = free_port()
    monkeypatch.setattr(tests.conftest, "free_port", lambda: port)
    first = serve(env, workers=1)
    for _ in range(5):
        assert requests.get(f"{first.url}/v1/nothing", timeout=30).status_code == 404
    first.stop()
    second = serve(env, workers=1)
    text = requests.get(f"{second.url}/metrics", timeout=30).text
    assert samples(text, "qrsvc_http_requests_total", route="unmatched") == 0


def test_an_integration_counts_through_the_toolkit(app, client) -> None:
    from qrsvc.toolkit import metrics_counter

    with app.app_context():
        scans = metrics_counter("qrsvc_test_scans", "Scans by result.", ("result",))
    scans.labels("admitted").inc(2)
    text = client.get("/metrics").get_data(as_text=True)
    assert samples(text, "qrsvc_test_scans_total", result="admitted") == 2


# QRSVC_LOG_FORMAT=json


def test_json_logs_are_one_object_a_line_without_secrets(tmp_path: Path, serve) -> None:
    import json

    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance"), "QRSVC_LOG_FORMAT": "json"}
    assert cli("db", "upgrade", env=env).returncode == 0
    key = cli("keys", "create", "--name", "j", "--plan", "pro", env=env).stdout.strip().splitlines()[-1]
    server = serve(env, workers=1)
    made = requests.post(
        f"{server.url}/v1/qr/generate",
        json={"data": "x"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert made.status_code == 200
    in_query = requests.get(f"{server.url}/v1/qr/generate", params={"data": "y", "api_key": key}, timeout=30)
    assert in_query.status_code == 200
    assert requests.get(f"{server.url}/v1/nowhere", params={"api_key": key}, timeout=30).status_code == 404
    server.stop()

    text = server.log.read_text()
    assert key not in text
    assert key.split("_")[2] not in text  # not even the secret part
    assert "api_key=" not in text
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    access = {r.get("request_id"): r for r in records if r.get("status") is not None}
    line = access[made.headers["X-Request-Id"]]
    assert line["route"] == "/v1/qr/generate"
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], int | float)
    assert line["key_prefix"] == key.split("_")[1]
    assert line["level"] == "INFO"
    assert line["time"].endswith("Z") and line["time"][:2] == "20"
    assert access[in_query.headers["X-Request-Id"]]["key_prefix"] == key.split("_")[1]
    unknown = [r for r in access.values() if r["status"] == 404]
    assert unknown and unknown[0]["route"] is None and unknown[0]["path"] == "/v1/nowhere"


def test_an_unknown_log_format_is_refused_by_name(tmp_path: Path) -> None:
    from qrsvc import config

    with pytest.raises(config.ConfigError, match="QRSVC_LOG_FORMAT"):
        config.load({"INSTANCE_PATH": str(tmp_path)}, environ={"QRSVC_LOG_FORMAT": "xml"})


def test_metrics_observe_batch_sizes(client, auth) -> None:
    for size in (3, 20):
        body = {"items": [{"data": f"{size}-{i}"} for i in range(size)], "response": "url"}
        assert client.post("/v1/qr/batch", json=body, headers=auth).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert samples(text, "qrsvc_batch_items_count") == 2
    assert samples(text, "qrsvc_batch_items_sum") == 23
    assert samples(text, "qrsvc_batch_items_bucket", le="10.0") == 1


def test_metrics_count_render_cache_hits(client, auth) -> None:
    same = {"data": "cached once", "format": "png", "size": 256}
    for _ in range(3):
        assert client.post("/v1/qr/generate", json=same, headers=auth).status_code == 200
    other = {"data": "drawn once", "format": "svg"}
    assert client.post("/v1/qr/generate", json=other, headers=auth).status_code == 200
    batch = {"items": [same, other, {"data": "new in the batch"}], "response": "json"}
    assert client.post("/v1/qr/batch", json=batch, headers=auth).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert samples(text, "qrsvc_render_cache_hits_total") == 4  # 2 repeats, then 2 of the batch's 3
    assert samples(text, "qrsvc_codes_rendered_total", format="png") == 5  # hits are images produced too
    assert samples(text, "qrsvc_codes_rendered_total", format="svg") == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smtp://u:p@ss@mail.example", "smtp://u:[redacted]@mail.example"),
        (
            "to smtp://mailer:a@b@c@mail.example:587/x failed",
            "to smtp://mailer:[redacted]@mail.example:587/x failed",
        ),
        ("postgresql+psycopg://app:hunter2@db/q?u=a@b", "postgresql+psycopg://app:[redacted]@db/q?u=a@b"),
        ("redis://:pw@cache/0 smtp://u:two@at@mail", "redis://:[redacted]@cache/0 smtp://u:[redacted]@mail"),
    ],
)
def test_a_password_in_a_url_is_redacted_up_to_the_authoritys_last_at(text: str, expected: str) -> None:
    """A password may hold an `@` of its own: everything up to the authority's last one is hidden."""
    from qrsvc.http import redact

    assert redact(text) == expected
