"""Shared fixtures: an app on a real database, keys made by the real service, a real decoder.

PostgreSQL and Redis are used when they answer at their usual local addresses or when
QRSVC_TEST_DATABASE_URL / QRSVC_TEST_REDIS_URL name them (tests/backends.py); tests that
need them are reported as skipped otherwise, and the report header says why.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import zxingcpp
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TEST_PLANS = {
    "free": {"requests_per_minute": 30, "codes_per_month": 1000},
    "pro": {"requests_per_minute": 500, "codes_per_month": 100000},
    "tiny": {"requests_per_minute": 3, "codes_per_month": 5},
    "unlimited": {"requests_per_minute": 1000000, "codes_per_month": 100000000},
}


def pytest_configure(config: pytest.Config) -> None:
    from tests import backends

    config.stash[_BACKENDS] = backends.choose()


def pytest_report_header(config: pytest.Config) -> str:
    from tests import backends

    return backends.summary(config.stash[_BACKENDS])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from tests import backends

    terminalreporter.write_line(backends.summary(config.stash[_BACKENDS]))


_BACKENDS = pytest.StashKey[tuple[Any, ...]]()


def decode_image(image: Image.Image) -> list[str]:
    """QR codes only: with every format on, zxing-cpp may also "find" a short ITF barcode
    inside a QR code's modules."""
    found = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormat.QRCode, text_mode=zxingcpp.TextMode.Plain
    )
    return [barcode.text for barcode in found]


def rasterise(content: bytes, fmt: str) -> Image.Image:
    """Any format we produce as a Pillow image: SVG via cairosvg, PDF via pdfium."""
    if fmt == "svg":
        import cairosvg

        content = cairosvg.svg2png(bytestring=content)
    elif fmt == "pdf":
        import pypdfium2

        document = pypdfium2.PdfDocument(content)
        try:
            page = document[0]
            image: Image.Image = page.render(scale=300 / 72).to_pil()
            page.close()
            return image
        finally:
            document.close()
    with Image.open(io.BytesIO(content)) as opened:
        opened.load()
        image = opened.copy()
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # As shown on a white page.
        white = Image.new("RGBA", image.size, "white")
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image


def decode(content: bytes, fmt: str = "png") -> list[str]:
    """Texts of every QR code an independent decoder (zxing-cpp) finds in `content`."""
    return decode_image(rasterise(content, fmt))


@pytest.fixture(name="decode")
def decode_fixture() -> Callable[..., list[str]]:
    return decode


def _postgres_schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database per backend; PostgreSQL gets its own throwaway schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'qrsvc.sqlite3'}"
        return
    with postgres_schema("qrsvc_test") as url:
        yield url


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A URL for a throwaway PostgreSQL schema, dropped afterwards; skips without PostgreSQL."""
    base = os.environ.get("QRSVC_TEST_DATABASE_URL")
    if not base:
        pytest.skip("PostgreSQL: not found at 127.0.0.1:5432 and QRSVC_TEST_DATABASE_URL is not set")
    schema = f"{prefix}_{secrets.token_hex(4)}"
    engine = sa.create_engine(base)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _postgres_schema_url(base, schema)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("QRSVC_TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis: not found at 127.0.0.1:6379 and QRSVC_TEST_REDIS_URL is not set")
    return url


_migrated: set[str] = set()


def make_app(database_url: str, instance: Path, **overrides: Any) -> Any:
    from app import create

    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(instance),
        "PLANS": TEST_PLANS,
        **overrides,
    }
    return create(config)


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Per-test configuration overrides; a test module may override this fixture."""
    return {}


@pytest.fixture
def app(database_url: str, tmp_path: Path, app_config: dict[str, Any]) -> Iterator[Any]:
    from qrsvc import scans
    from qrsvc.db import upgrade
    from qrsvc.extensions import db

    application = make_app(database_url, tmp_path / "instance", **app_config)
    if database_url not in _migrated:
        upgrade(application)
        _migrated.add(database_url)
    yield application
    application.extensions["qrsvc_rendering"].close()  # render processes, if a batch started them
    scans.close(application)  # scans still buffered are written before the tables are emptied
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())
        db.engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def make_key(app: Any) -> Callable[..., str]:
    """Create a key through the real key service; returns the plain key."""
    from qrsvc.keys import create_key
    from qrsvc.transactions import unit_of_work

    def make(name: str = "test", plan: str = "pro", scopes: tuple[str, ...] = ("*",)) -> str:
        with app.app_context(), unit_of_work():
            _key, plain = create_key(name, plan, scopes, list(app.config["PLANS"]))
        return plain

    return make


@pytest.fixture
def api_key(make_key: Callable[..., str]) -> str:
    return make_key()


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A real gunicorn serving `app:app` on loopback, with its log captured."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qrsvc.cli", "serve", "--port", str(self.port), "--workers", str(workers)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log_file.close()
                raise RuntimeError(f"server exited: {log.read_text()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).ok:
                    return
            except requests.RequestException:  # not listening yet, or still importing
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start gunicorn with the given environment; stopped after the test."""
    servers: list[Server] = []

    def start(env: dict[str, str], workers: int = 2) -> Server:
        server = Server(env, workers, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        # Captured output: pytest shows it only when the test failed, which is when it is wanted.
        print(f"--- {server.log.name} (tail) ---\n{server.log.read_text(errors='replace')[-8000:]}")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed `qrsvc` command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "qrsvc.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
