"""A soak with faults: two `qrsvc serve` instances ("hosts") and two `qrsvc worker`s on one
PostgreSQL and one Redis, mixed traffic on both hosts, and faults injected while it runs.

Traffic, spread over both hosts: single codes (POST /v1/qr/generate), batches
(POST /v1/qr/batch), ticket issuing (POST /v1/events/<id>/tickets) with every new ticket
scanned at once by four scanners, two on each host (POST /v1/tickets/scan), orders
(POST /v1/shop/orders) whose emails the workers deliver to an aiosmtpd server, and a
60/minute key asking GET /v1/account/usage 4 times a second on both hosts.

Faults, at fractions of `--duration`: the SMTP server stopped for 4 s (at 10 %), `kill -9`
of one instance's gunicorn workers (30 %; gunicorn starts new ones), PostgreSQL stopped for
3 s and started again (45 %), Redis killed (`kill -9`) and started again 2 s later (from 60 %,
once the 60/minute key's window is full: lost counts would show as a second 60 in a minute).

Afterwards it proves, printing the numbers of each proof (exit status 1 when one fails):
every 2xx-acknowledged code, ticket, order and email exists exactly once; no ticket was
admitted twice across hosts; each acknowledged order's email was delivered exactly once;
the 60/minute key got at most 60 in any minute on both hosts together; requests failed
only during a fault, and then as JSON 5xx with `Retry-After` (or, for the requests a
killed worker held, a dropped connection), never HTML or a hang; `/readyz` said 503 while
PostgreSQL was down and 200 after; /metrics of both hosts (parsed with prometheus_client)
agrees with the traffic sent. Then throughput, errors by kind and p50/p99 per route.

Isolation: by default it makes its own PostgreSQL cluster (initdb, as the `postgres` user
when run as root) and Redis server (`--appendonly yes --appendfsync always`: the limits'
windows survive the restart) on free loopback ports in a temporary folder, and removes
them at the end, on Ctrl-C or failure too; `--timeout` bounds the whole run. To run it
against your own servers instead (a throw-away schema is made in that database and
dropped at the end):

    .venv/bin/python bench/soak.py --database-url postgresql+psycopg://postgres@127.0.0.1/test \\
        --redis-url redis://127.0.0.1:6379/0 \\
        --pg-stop "pg_ctlcluster 15 main stop" --pg-start "pg_ctlcluster 15 main start" \\
        --redis-restart "systemctl restart redis-server"

`--pg-restart CMD` may replace the stop/start pair (a fast restart may then be too quick
for the probes to see PostgreSQL down, which fails the readiness proof).
`--sizing` first drives each route alone and reports requests per CPU-second (the figures
of the README's sizing table); `--short` is the CI variant (30 s of traffic).
Run: `.venv/bin/python bench/soak.py [--duration 180] [--short] [--sizing]`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email
import email.policy
import glob
import io
import itertools
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests
from aiosmtpd.controller import Controller
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from server import qrsvc_cli

ROOT = Path(__file__).resolve().parent.parent
PLANS = {
    "soak": {"requests_per_minute": 100_000_000, "codes_per_month": 1_000_000_000},
    "limited": {"requests_per_minute": 60, "codes_per_month": 1_000_000_000},
}
#: A request without an answer after this long is a hang.
HANG_SECONDS = 20.0
#: Requests of the 60/minute key per second (both hosts together).
LIMITED_RATE = 6.0
#: After a fault ends, failures are still put down to it for this long (pools reconnect).
FAULT_GRACE = 3.0
SMTP_DOWN, PG_DOWN, REDIS_DOWN = 4.0, 3.0, 2.0


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (from /proc), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in found.split()]


def stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the process group started for `process`, SIGKILL when it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# -- backends --------------------------------------------------------------------------------------


class OwnPostgres:
    """A throw-away PostgreSQL cluster on a free loopback port, in `folder`."""

    def __init__(self, folder: Path) -> None:
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
        if not versions:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(versions[-1])
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.folder = folder / "pg"
        self.folder.mkdir()
        if self.as_owner:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self.as_owner, str(self.bin / program), *args], check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder}"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def pids(self) -> list[int]:
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [postmaster, *children(postmaster)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")


class OwnRedis:
    """A throw-away Redis that writes every change to its append-only file before answering."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "redis"
        self.folder.mkdir()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("the soak needs redis-server (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--logfile", str(self.folder / "log"),
            ],
            start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_for(lambda: _pings(client), 20, "Redis")
        client.close()

    def crash(self) -> None:
        """kill -9: what a restart after a crash or an OOM kill looks like."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process is not None and self.process.poll() is None else []

    def close(self) -> None:
        if self.process is not None:
            stop_group(self.process, 5)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class Inbox:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.subjects.append(str(message["Subject"]))
        return "250 Message accepted for delivery"

    def __init__(self) -> None:
        self.subjects: list[str] = []


class Smtp:
    """aiosmtpd on a fixed loopback port, stopped and started again during the run."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None
        self.start()

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# -- the service -----------------------------------------------------------------------------------


class Instance:
    """One `qrsvc serve` ("host"): its own instance folder and port, the shared database and Redis."""

    def __init__(self, name: str, env: dict[str, str], folder: Path, workers: int) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "QRSVC_INSTANCE_PATH": str(folder / name)}
        self.log_path = folder / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qrsvc.cli", "serve", "--port", str(self.port), "--workers", str(workers)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self) -> None:
        wait_for(self._answers, 60, f"{self.name} to answer")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def pids(self) -> list[int]:
        return [self.process.pid, *self.workers()]

    def close(self) -> None:
        stop_group(self.process)
        self._log.close()


class Worker:
    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qrsvc.cli", "worker"],
            cwd=ROOT,
            env={**env, "QRSVC_INSTANCE_PATH": str(folder / name)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def close(self) -> None:
        stop_group(self.process)
        self._log.close()


# -- requests and what became of them --------------------------------------------------------------


@dataclass
class Record:
    route: str
    host: str
    start: float  # time.time()
    end: float
    status: int | None  # None: no HTTP answer
    kind: str  # "ok", "<status> <error code>", "connection dropped", "hang", "<status> not JSON"
    retry_after: bool = False
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


@dataclass
class Ledger:
    """Everything sent and what came back, appended to by many threads (list.append is atomic)."""

    records: list[Record] = field(default_factory=list)
    sizing_records: list[Record] = field(default_factory=list)
    codes: list[tuple[str, str]] = field(default_factory=list)  # (id, data) of acknowledged codes
    batch_codes: list[str] = field(default_factory=list)
    tickets: list[tuple[str, str]] = field(default_factory=list)  # (id, holder_name)
    admitted_answers: list[str] = field(default_factory=list)  # ticket ids a scan answered "admitted"
    scanned_ok: set[str] = field(default_factory=set)
    orders: list[tuple[str, str]] = field(default_factory=list)  # (id, order_number)
    limited: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of 2xx of the 60/min key
    limited_refused: list[float] = field(default_factory=list)  # when the 429s came
    decoded: list[bool] = field(default_factory=list)
    readyz: list[tuple[float, float, str, int | None]] = field(default_factory=list)  # start, end
    db_probe: list[tuple[float, bool]] = field(default_factory=list)
    faults: list[tuple[str, float, float]] = field(default_factory=list)  # (name, start, end)


def call(
    ledger: Ledger | None,
    method: str,
    host: Instance,
    path: str,
    route: str,
    key: str,
    body: Any = None,
) -> tuple[Record, Any]:
    start = time.time()
    headers = {"Authorization": f"Bearer {key}"}
    try:
        response = requests.request(method, host.url + path, json=body, headers=headers, timeout=HANG_SECONDS)
    except requests.Timeout:
        record = Record(route, host.name, start, time.time(), None, "hang")
        payload = None
    except requests.ConnectionError:
        record = Record(route, host.name, start, time.time(), None, "connection dropped")
        payload = None
    else:
        end = time.time()
        payload = None
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        if is_json:
            with contextlib.suppress(ValueError):
                payload = response.json()
        if 200 <= response.status_code < 300:
            kind = "ok"
        elif isinstance(payload, dict) and payload.get("success") is False and "error" in payload:
            kind = f"{response.status_code} {payload['error']}"
        else:
            kind = f"{response.status_code} not JSON"
        record = Record(
            route,
            host.name,
            start,
            end,
            response.status_code,
            kind,
            "Retry-After" in response.headers,
            response.headers.get("X-Request-Id", ""),
        )
    if ledger is not None:
        ledger.records.append(record)
    if record.status == 503 and record.retry_after:
        # As a good client does: wait as told (at most 2 s here), then go on.
        time.sleep(min(2.0, float(response.headers["Retry-After"])))
    elif record.status is None:
        time.sleep(0.5)
    return record, payload


class Traffic:
    """The mix: each call picks a host in turn and records what it acknowledged."""

    def __init__(self, hosts: list[Instance], key: str, event_id: str, ledger: Ledger, run: str) -> None:
        self.hosts = hosts
        self.key = key
        self.event_id = event_id
        self.ledger = ledger
        self.run = run
        self._counter = itertools.count()
        self.tokens: list[str] = []
        self._decoder: Any = None
        with contextlib.suppress(ImportError):
            import zxingcpp

            self._decoder = zxingcpp

    def _next(self) -> tuple[int, Instance]:
        n = next(self._counter)
        return n, self.hosts[n % len(self.hosts)]

    def generate(self) -> None:
        n, host = self._next()
        data = f"https://soak.example.com/{self.run}/{n}"
        body = {"data": data, "size": 200, "response": "json"}
        record, payload = call(
            self.ledger, "POST", host, "/v1/qr/generate", "/v1/qr/generate", self.key, body
        )
        if record.ok:
            self.ledger.codes.append((payload["id"], data))
            if self._decoder is not None and n % 10 == 0:
                self.ledger.decoded.append(self._decode(payload["image_base64"]) == [data])

    def _decode(self, image_base64: str) -> list[str]:
        with Image.open(io.BytesIO(base64.b64decode(image_base64))) as image:
            found = self._decoder.read_barcodes(
                image.convert("L"), formats=self._decoder.BarcodeFormat.QRCode
            )
        return [barcode.text for barcode in found]

    def batch(self) -> None:
        n, host = self._next()
        items = [{"data": f"https://soak.example.com/{self.run}/b{n}/{i}"} for i in range(10)]
        body = {"items": items, "size": 200, "response": "url"}
        record, payload = call(self.ledger, "POST", host, "/v1/qr/batch", "/v1/qr/batch", self.key, body)
        if record.ok:
            self.ledger.batch_codes.extend(item["id"] for item in payload["items"] if item["success"])

    def tickets(self, scan: bool = True) -> None:
        n, host = self._next()
        body = {"tickets": [{"holder_name": f"Holder {self.run} {n} {i}", "seat": f"S{i}"} for i in range(2)]}
        path = f"/v1/events/{self.event_id}/tickets"
        record, payload = call(
            self.ledger, "POST", host, path, "/v1/events/<event_id>/tickets", self.key, body
        )
        if not record.ok:
            return
        for ticket in payload["tickets"]:
            self.ledger.tickets.append((ticket["id"], ticket["holder_name"]))
            self.tokens.append(ticket["token"])
        if scan:
            for ticket in payload["tickets"]:
                self._scan_everywhere(ticket["id"], ticket["token"])

    def issue(self) -> None:
        """Tickets issued, not scanned (sizing)."""
        self.tickets(scan=False)

    def scan(self) -> None:
        """One scan of an issued ticket, on one host (sizing: admitted the first time, then already used)."""
        n, host = self._next()
        body = {"token": self.tokens[n % len(self.tokens)], "gate": host.name, "device": "sizing"}
        call(self.ledger, "POST", host, "/v1/tickets/scan", "/v1/tickets/scan", self.key, body)

    def usage(self) -> None:
        _n, host = self._next()
        call(self.ledger, "GET", host, "/v1/account/usage", "/v1/account/usage", self.key)

    def _scan_everywhere(self, ticket_id: str, token: str) -> None:
        """Four scanners, two per host, scan the same ticket at the same moment."""
        barrier = threading.Barrier(4)

        def scan(host: Instance, gate: str) -> None:
            barrier.wait()
            body = {"token": token, "gate": gate, "device": f"soak-{gate}"}
            record, payload = call(
                self.ledger, "POST", host, "/v1/tickets/scan", "/v1/tickets/scan", self.key, body
            )
            if record.ok:
                self.ledger.scanned_ok.add(ticket_id)
                if payload.get("result") == "admitted":
                    self.ledger.admitted_answers.append(ticket_id)

        threads = [
            threading.Thread(target=scan, args=(host, f"{host.name}-{i}"))
            for host in self.hosts
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def order(self) -> None:
        n, host = self._next()
        number = f"{self.run}-{n}"
        body = {
            "order_number": number,
            "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
            "items": [{"sku": "MUG-1", "quantity": 2, "unit_price": "9.50"}],
            "currency": "EUR",
            "tracking_url": f"https://track.example.com/o/{number}",
        }
        record, payload = call(
            self.ledger, "POST", host, "/v1/shop/orders", "/v1/shop/orders", self.key, body
        )
        if record.ok:
            self.ledger.orders.append((payload["id"], number))

    def limited(self, key: str) -> None:
        _n, host = self._next()
        record, _payload = call(self.ledger, "GET", host, "/v1/account/usage", "/v1/account/usage", key)
        if record.ok:
            self.ledger.limited.append((record.start, record.end))
        elif record.status == 429:
            self.ledger.limited_refused.append(record.end)

    MIX: tuple[tuple[str, int], ...] = (("generate", 40), ("batch", 10), ("tickets", 15), ("order", 20))

    def mixed(self, stop: threading.Event, seed: int) -> None:
        choices = [name for name, weight in self.MIX for _ in range(weight)]
        rng = random.Random(seed)  # noqa: S311 (traffic mix, not secrets)
        while not stop.is_set():
            getattr(self, rng.choice(choices))()


# -- watchers and faults ---------------------------------------------------------------------------


def watch_readiness(hosts: list[Instance], dsn: str, ledger: Ledger, stop: threading.Event) -> None:
    """A direct probe of PostgreSQL every 0.05 s and /readyz of each host every 0.1 s, each in a thread."""

    def probe() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(dsn, connect_timeout=1, autocommit=True) as connection:
                    connection.execute("SELECT 1")
                up = True
            except psycopg.Error:
                up = False
            ledger.db_probe.append((time.time(), up))
            stop.wait(0.05)

    def ready(host: Instance) -> None:
        while not stop.is_set():
            start = time.time()
            try:
                status: int | None = requests.get(f"{host.url}/readyz", timeout=HANG_SECONDS).status_code
            except requests.RequestException:
                status = None
            ledger.readyz.append((start, time.time(), host.name, status))
            stop.wait(0.1)

    threads = [threading.Thread(target=probe)] + [threading.Thread(target=ready, args=(h,)) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_shell(command: str) -> None:
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120, check=False)  # noqa: S602 (the operator's own command)
    if done.returncode != 0:
        raise RuntimeError(f"{command!r} failed: {done.stderr.strip()}")


def shell_command(command: str | None) -> Callable[[], None] | None:
    return None if command is None else lambda: run_shell(command)


@dataclass
class Backends:
    database_url: str
    redis_url: str
    pg_stop: Callable[[], None] | None
    pg_start: Callable[[], None] | None
    pg_restart: Callable[[], None] | None
    redis_stop: Callable[[], None] | None
    redis_start: Callable[[], None] | None
    redis_restart: Callable[[], None] | None
    pids: Callable[[], list[int]]


def restart(
    stop: Callable[[], None] | None,
    start: Callable[[], None] | None,
    restart_command: Callable[[], None] | None,
    down: float,
) -> None:
    """Stop a backend, leave it down for `down` seconds, start it; or run its one restart command."""
    if stop is not None and start is not None:
        stop()
        time.sleep(down)
        start()
    elif restart_command is not None:
        restart_command()


def inject_faults(
    duration: float, begin: float, hosts: list[Instance], smtp: Smtp, backends: Backends, ledger: Ledger,
    stop: threading.Event,
) -> None:  # fmt: skip
    def at(fraction: float) -> bool:
        """Sleep until `fraction` of the run; False when the run is stopping."""
        return not stop.wait(max(0.0, begin + fraction * duration - time.monotonic()))

    def fault(name: str, action: Callable[[], None]) -> None:
        start = time.time()
        log(f"fault: {name}")
        action()
        ledger.faults.append((name, start, time.time()))

    if not at(0.10):
        return
    fault("smtp stopped", lambda: (smtp.stop(), time.sleep(SMTP_DOWN), smtp.start()))
    if not at(0.30):
        return
    victim = hosts[0]

    def kill_workers() -> None:
        killed = victim.workers()
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log(f"kill -9 {victim.name}'s workers {killed}")
        wait_for(lambda: len(set(victim.workers()) - set(killed)) >= len(killed), 30, "new workers")

    fault(f"kill -9 {victim.name} workers", kill_workers)
    if not at(0.45):
        return

    fault(
        "postgresql restart",
        lambda: restart(backends.pg_stop, backends.pg_start, backends.pg_restart, PG_DOWN),
    )
    if not at(0.60):
        return
    # Redis goes down while the 60/minute key's window is full and stays full for a while: lost
    # counts would then let the key through at once, on top of the 60 of that minute.
    while not stop.is_set() and time.monotonic() < begin + 0.85 * duration:
        granted = sorted(start for start, _end in ledger.limited)
        full_since = granted[-60] if len(granted) >= 60 else None
        refused = [t for t in ledger.limited_refused if t > (granted[-1] if granted else 0)]
        if full_since is not None and refused and time.time() - full_since < 30:
            break
        stop.wait(0.2)
    if stop.is_set():
        return

    fault(
        "redis restart",
        lambda: restart(backends.redis_stop, backends.redis_start, backends.redis_restart, REDIS_DOWN),
    )


# -- proofs ----------------------------------------------------------------------------------------


class Proofs:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def check(self, name: str, held: bool, numbers: str) -> None:
        print(f"  {'PASS' if held else 'FAIL'}  {name}: {numbers}", flush=True)
        if not held:
            self.failed.append(name)


def in_fault(record: Record, faults: list[tuple[str, float, float]]) -> str | None:
    for name, start, end in faults:
        if name.startswith("smtp"):
            continue  # requests never wait on the mail server: no failure is put down to it
        if record.end >= start and record.start <= end + FAULT_GRACE:
            return name
    return None


def max_in_window(acks: list[tuple[float, float]], window: float = 60.0) -> tuple[int, int]:
    """(most acknowledgements certainly granted within one `window`, most whose midpoints fall in one).

    The client knows only that a request was counted between its start and its end. Grants
    that all started at or after `a` and ended before `a + window` were certainly counted in
    one window: more than 60 of them prove a breach. Midpoints are shown too, but are not proof:
    a slow request's midpoint may lie a second before its grant.
    """
    by_start = sorted(acks)
    certain = max(
        (sum(1 for s, e in by_start[i:] if e < first + window) for i, (first, _) in enumerate(by_start)),
        default=0,
    )
    mids = sorted((s + e) / 2 for s, e in acks)
    most = 0
    j = 0
    for i, t in enumerate(mids):
        while mids[j] <= t - window:
            j += 1
        most = max(most, i - j + 1)
    return certain, most


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def scrape(host: Instance) -> dict[tuple[str, str], float]:
    """(route, status) → requests, from /metrics parsed by prometheus_client."""
    text = requests.get(f"{host.url}/metrics", timeout=HANG_SECONDS).text
    counts: dict[tuple[str, str], float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.name != "qrsvc_http_requests":
            continue
        for sample in family.samples:
            if sample.name == "qrsvc_http_requests_total":
                counts[(sample.labels["route"], sample.labels["status"])] += sample.value
    return counts


def prove(ledger: Ledger, database_url: str, smtp: Smtp, hosts: list[Instance], seconds: float) -> Proofs:
    proofs = Proofs()
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:

        def rows(query: str, values: list[str]) -> list[tuple[Any, ...]]:
            return connection.execute(query, (values,)).fetchall() if values else []

        # Codes: each acknowledged id is stored, and each acknowledged data once.
        code_ids = [cid for cid, _ in ledger.codes]
        found = dict(rows("SELECT id, data FROM qr_codes WHERE id = ANY(%s)", code_ids))
        per_data = Counter(
            d for (d,) in rows("SELECT data FROM qr_codes WHERE data = ANY(%s)", [d for _, d in ledger.codes])
        )
        missing = [cid for cid, data in ledger.codes if found.get(cid) != data]
        doubled = [d for d, count in per_data.items() if count != 1]
        proofs.check(
            "single codes stored exactly once",
            bool(code_ids) and not missing and not doubled and len(set(code_ids)) == len(code_ids),
            f"{len(code_ids)} acknowledged, {len(missing)} missing, {len(doubled)} stored more than once",
        )
        batch_found = {
            cid for (cid,) in rows("SELECT id FROM qr_codes WHERE id = ANY(%s)", ledger.batch_codes)
        }
        proofs.check(
            "batch codes stored",
            bool(batch_found)
            and batch_found == set(ledger.batch_codes)
            and len(set(ledger.batch_codes)) == len(ledger.batch_codes),
            f"{len(ledger.batch_codes)} acknowledged, {len(set(ledger.batch_codes) - batch_found)} missing",
        )
        if ledger.decoded:
            proofs.check(
                "sampled images decode (zxing-cpp) to their data",
                all(ledger.decoded),
                f"{sum(ledger.decoded)} of {len(ledger.decoded)}",
            )
        # Tickets: stored once each (by holder name, unique per ticket sent).
        names = [name for _, name in ledger.tickets]
        per_name = Counter(
            n for (n,) in rows("SELECT holder_name FROM tickets WHERE holder_name = ANY(%s)", names)
        )
        ticket_ids = {
            tid
            for (tid,) in rows("SELECT id FROM tickets WHERE id = ANY(%s)", [t for t, _ in ledger.tickets])
        }
        lost = [t for t, _ in ledger.tickets if t not in ticket_ids]
        proofs.check(
            "tickets stored exactly once",
            bool(names) and not lost and all(per_name[n] == 1 for n in names),
            f"{len(ledger.tickets)} acknowledged, {len(lost)} missing, "
            f"{sum(1 for n in names if per_name[n] > 1)} stored more than once",
        )
        # Scans: never admitted twice, across hosts; what the answers said is what was stored.
        admitted = Counter(
            tid
            for (tid,) in rows(
                "SELECT ticket_id FROM ticket_scans WHERE admit AND direction = 'entry' AND ticket_id = ANY(%s)",
                [t for t, _ in ledger.tickets],
            )
        )
        answered = Counter(ledger.admitted_answers)
        twice = [t for t, c in admitted.items() if c > 1] + [t for t, c in answered.items() if c > 1]
        unstored = [t for t in answered if admitted[t] != 1]
        never = [t for t in ledger.scanned_ok if admitted[t] != 1]
        scans = [r for r in ledger.records if r.route == "/v1/tickets/scan"]
        proofs.check(
            "no ticket admitted twice across hosts",
            bool(answered) and not twice and not unstored and not never,
            f"{len(scans)} concurrent scans ({sum(r.ok for r in scans)} answered) of {len(ledger.tickets)} "
            f"tickets on both hosts; {len(answered)} answered 'admitted', {sum(admitted.values())} admissions "
            f"stored, {len(twice)} admitted twice, {len(unstored) + len(never)} answers not matching the log",
        )
        # Orders and their emails.
        order_ids = {
            o for (o,) in rows("SELECT id FROM shop_orders WHERE id = ANY(%s)", [o for o, _ in ledger.orders])
        }
        numbers = [n for _, n in ledger.orders]
        per_number = Counter(
            n for (n,) in rows("SELECT order_number FROM shop_orders WHERE order_number = ANY(%s)", numbers)
        )
        proofs.check(
            "orders stored exactly once",
            bool(order_ids)
            and order_ids == {o for o, _ in ledger.orders}
            and all(per_number[n] == 1 for n in numbers),
            f"{len(ledger.orders)} acknowledged, {len(ledger.orders) - len(order_ids)} missing",
        )
        statuses = dict(
            connection.execute("SELECT status, count(*) FROM shop_outbox GROUP BY status").fetchall()
        )
    received = Counter(smtp.inbox.subjects)
    wanted = {f"Order {n} confirmed" for n in numbers}
    missing_mail = [s for s in wanted if received[s] == 0]
    duplicated = [s for s, c in received.items() if c > 1]
    proofs.check(
        "each acknowledged order's email delivered exactly once",
        bool(wanted) and not missing_mail and not duplicated,
        f"{len(wanted)} orders, {sum(received.values())} emails received, {len(missing_mail)} missing, "
        f"{len(duplicated)} delivered more than once; outbox {statuses}",
    )
    # The 60/minute key, over both hosts.
    certain, most = max_in_window(ledger.limited)
    redis_fault = [(start, end) for name, start, end in ledger.faults if name == "redis restart"]
    before = after = 0
    if redis_fault:
        before = sum(t < redis_fault[0][0] for t in ledger.limited_refused)
        after = sum(t > redis_fault[0][1] for t in ledger.limited_refused)
    proofs.check(
        "a 60/minute key got at most 60 in any minute on both hosts together",
        # Refused before Redis went down (the window was full) and after it came back (still full).
        before > 0 and after > 0 and certain <= 60,
        f"{len(ledger.limited)} granted, {len(ledger.limited_refused)} refused (429: {before} before the Redis "
        f"restart, {after} after it); at most {certain} certainly granted within one minute "
        f"({most} by the requests' midpoints)",
    )
    # Failures: only during a fault, JSON 5xx with Retry-After, or dropped by a killed worker.
    traffic = [r for r in ledger.records if not (r.route == "/v1/account/usage" and r.status == 429)]
    failures = [r for r in traffic if not r.ok]
    outside = [r for r in failures if in_fault(r, ledger.faults) is None]

    def acceptable(r: Record) -> bool:
        fault = in_fault(r, ledger.faults) or ""
        if r.kind == "connection dropped":
            return fault.startswith("kill -9")  # the requests the killed workers held
        json_5xx = r.status is not None and r.status >= 500 and "not JSON" not in r.kind
        return json_5xx and r.retry_after

    bad_shape = [r for r in failures if r.kind != "hang" and not acceptable(r)]
    hangs = [r for r in failures if r.kind == "hang"]
    for r in (outside + bad_shape + hangs)[:10]:
        print(f"        {r.kind} {r.route} on {r.host} at {r.start:.3f}, X-Request-Id {r.request_id or '-'}")
    proofs.check(
        "requests failed only during faults, as JSON 5xx with Retry-After (or dropped by a killed worker), never a hang",
        len(ledger.faults) == 4 and not outside and not bad_shape and not hangs,
        f"{len(failures)} failed of {len(traffic)}; {len(outside)} outside a fault, {len(bad_shape)} of "
        f"another kind, {len(hangs)} hangs",
    )
    refusals = [r for r in ledger.records if r.route == "/v1/account/usage" and r.status == 429]
    proofs.check(
        "429s are JSON with Retry-After",
        all(r.retry_after and r.kind == "429 rate_limited" for r in refusals),
        f"{len(refusals)} refusals",
    )
    # /readyz: 503 while PostgreSQL was down, 200 after.
    down = [t for t, up in ledger.db_probe if not up]
    if not down:
        proofs.check(
            "/readyz said 503 while PostgreSQL was down and 200 after", False, "the probe never saw it down"
        )
    else:
        first, last = min(down), max(down)
        # The outage lies between the last probe that found it up before, and the first after.
        since = max((t for t, up in ledger.db_probe if up and t < first), default=first)
        until = min((t for t, up in ledger.db_probe if up and t > last), default=last)
        said_200 = [x for x in ledger.readyz if first < x[0] and x[1] < last and x[3] == 200]
        per_host = {
            h.name: Counter(
                s for start, _, name, s in ledger.readyz if name == h.name and since < start < until
            )
            for h in hosts
        }
        back = {
            h.name: next(
                (
                    start - until
                    for start, _, n, s in ledger.readyz
                    if n == h.name and s == 200 and start > until
                ),
                None,
            )
            for h in hosts
        }
        final = {
            h.name: next((s for *_, n, s in reversed(ledger.readyz) if n == h.name), None) for h in hosts
        }
        proofs.check(
            "/readyz said 503 while PostgreSQL was down and 200 after",
            not said_200
            and all(counts[503] > 0 for counts in per_host.values())
            and all(v is not None and v < 15 for v in back.values())
            and all(s == 200 for s in final.values()),
            f"down {until - since:.1f} s (probes every 0.05 s); answers then "
            f"{ {k: dict(v) for k, v in per_host.items()} }, {len(said_200)} × 200 while surely down; "
            f"200 again after { {k: None if v is None else round(v, 1) for k, v in back.items()} } s; "
            f"last answers {final}",
        )
    # /metrics, both hosts, against the traffic sent.
    scraped: dict[tuple[str, str], float] = defaultdict(float)
    for host in hosts:
        for k, v in scrape(host).items():
            scraped[k] += v
    mismatches = []
    routes = sorted({r.route for r in ledger.records})
    for route in routes:
        sent = [r for r in ledger.records + ledger.sizing_records if r.route == route]
        ok = sum(r.ok for r in sent)
        dropped = sum(r.status is None for r in sent)
        counted = sum(v for (rt, status), v in scraped.items() if rt == route and status.startswith("2"))
        if not ok <= counted <= ok + dropped:
            mismatches.append(f"{route}: sent {ok} 2xx (+{dropped} dropped), /metrics {counted:g}")
    proofs.check(
        "/metrics (both hosts) counts the 2xx the clients got",
        not mismatches,
        "; ".join(mismatches) or f"{len(routes)} routes agree",
    )
    return proofs


def report(ledger: Ledger, seconds: float) -> None:
    traffic = [r for r in ledger.records]
    ok = [r for r in traffic if r.ok]
    print(f"\nthroughput: {len(traffic) / seconds:.1f} requests/s sent, {len(ok) / seconds:.1f}/s 2xx "
          f"({len(traffic)} requests in {seconds:.0f} s)")  # fmt: skip
    kinds = Counter(r.kind for r in traffic if not r.ok)
    print("errors by kind: " + (", ".join(f"{k}: {v}" for k, v in kinds.most_common()) or "none"))
    print(f"{'route':<34}{'2xx':>7}{'other':>7}{'p50 ms':>9}{'p99 ms':>9}")
    for route in sorted({r.route for r in traffic}):
        mine = [r for r in traffic if r.route == route]
        times = [(r.end - r.start) * 1000 for r in mine if r.ok]
        print(f"{route:<34}{len(times):>7}{len(mine) - len(times):>7}"
              f"{percentile(times, 0.5):>9.1f}{percentile(times, 0.99):>9.1f}")  # fmt: skip


# -- sizing ----------------------------------------------------------------------------------------


def sizing(traffic: Traffic, hosts: list[Instance], backends: Backends, seconds: float, clients: int) -> None:
    """Each route alone, `clients` at a time on both hosts: requests per CPU-second of the servers."""
    print(f"\nsizing: each route alone for {seconds:g} s, {clients} clients over both hosts, no faults")
    print(
        f"{'route':<34}{'req/s':>8}{'app CPU s':>11}{'req/s/core':>12}{'+db/redis':>11}{'p50 ms':>9}{'non-2xx':>9}"
    )
    for name, route in (
        ("generate", "/v1/qr/generate"),
        ("batch", "/v1/qr/batch"),
        ("issue", "/v1/events/<event_id>/tickets"),
        ("scan", "/v1/tickets/scan"),
        ("order", "/v1/shop/orders"),
        ("usage", "/v1/account/usage"),
    ):
        app_pids = [pid for host in hosts for pid in host.pids()]
        app0, back0 = cpu_seconds(app_pids), cpu_seconds(backends.pids())
        before = len(traffic.ledger.records)
        stop = threading.Event()
        threads = [
            threading.Thread(target=_repeat, args=(getattr(traffic, name), stop)) for _ in range(clients)
        ]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - start
        done = [r for r in traffic.ledger.records[before:] if r.route == route]
        n = sum(r.ok for r in done)
        app = cpu_seconds(app_pids) - app0
        back = cpu_seconds(backends.pids()) - back0
        times = [(r.end - r.start) * 1000 for r in done if r.ok]
        print(f"{route:<34}{n / wall:>8.1f}{app:>11.1f}{n / max(app, 1e-9):>12.1f}"
              f"{n / max(app + back, 1e-9):>11.1f}{percentile(times, 0.5):>9.1f}{len(done) - n:>9}")  # fmt: skip
        # Kept apart: the proofs are about the soak's traffic, /metrics counts both.
        traffic.ledger.sizing_records.extend(traffic.ledger.records[before:])
        del traffic.ledger.records[before:]
    print("(req/s/core: 2xx per CPU-second of the two instances' gunicorn processes — what one busy core "
          "serves; +db/redis also counts PostgreSQL's and Redis's CPU; a batch is 10 codes, a ticket "
          "request issues 2)")  # fmt: skip


def _repeat(action: Callable[[], None], stop: threading.Event) -> None:
    while not stop.is_set():
        action()


# -- the run ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def external_schema(url: str) -> Iterator[str]:
    """A throw-away schema in the given database, dropped at the end."""
    schema = f"qrsvc_soak_{secrets.token_hex(4)}"
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of traffic (default 180)")
    parser.add_argument("--short", action="store_true", help="the CI variant: 30 s of traffic")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients of the mixed traffic")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance")
    parser.add_argument("--timeout", type=float, default=None, help="hard limit of the whole run (s)")
    parser.add_argument("--sizing", action="store_true", help="first measure each route alone")
    parser.add_argument("--database-url", help="use this PostgreSQL (a throw-away schema) instead of our own")
    parser.add_argument("--redis-url", help="use this Redis instead of our own")
    parser.add_argument("--pg-stop", help="shell command stopping that PostgreSQL")
    parser.add_argument("--pg-start", help="shell command starting it again")
    parser.add_argument("--pg-restart", help="shell command restarting it (instead of stop/start)")
    parser.add_argument("--redis-stop", help="shell command stopping that Redis")
    parser.add_argument("--redis-start", help="shell command starting it again")
    parser.add_argument("--redis-restart", help="shell command restarting it (instead of stop/start)")
    args = parser.parse_args(argv)
    if args.short:
        args.duration = 30.0
    if args.database_url and not (args.pg_restart or (args.pg_stop and args.pg_start)):
        parser.error("--database-url needs --pg-restart or --pg-stop and --pg-start")
    if args.redis_url and not (args.redis_restart or (args.redis_stop and args.redis_start)):
        parser.error("--redis-url needs --redis-restart or --redis-stop and --redis-start")
    limit = args.timeout or args.duration + (120 if args.sizing else 0) + 150

    def out_of_time(*_: object) -> None:
        raise TimeoutError(f"the soak ran over its limit of {limit:.0f} s")

    def terminated(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGINT, terminated)  # also when started where SIGINT was ignored (`&` in a script)
    signal.alarm(int(limit))
    folder = Path(tempfile.mkdtemp(prefix="qrsvc-soak-"))
    folder.chmod(0o755)  # the postgres user walks into it
    cleanup = contextlib.ExitStack()
    try:
        return _run(args, folder, cleanup)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        signal.alarm(0)
        cleanup.close()
        shutil.rmtree(folder, ignore_errors=True)


def _run(args: argparse.Namespace, folder: Path, cleanup: contextlib.ExitStack) -> int:
    started = time.monotonic()
    if args.database_url:
        database_url = cleanup.enter_context(external_schema(args.database_url))
        shell = {n: shell_command(getattr(args, n)) for n in ("pg_stop", "pg_start", "pg_restart")}
        pg_pids: Callable[[], list[int]] = list
    else:
        pg = OwnPostgres(folder)
        cleanup.callback(pg.close)
        database_url = pg.url
        shell = {"pg_stop": pg.stop, "pg_start": pg.start, "pg_restart": None}
        pg_pids = pg.pids
    if args.redis_url:
        redis_url = args.redis_url
        rshell = {n: shell_command(getattr(args, n)) for n in ("redis_stop", "redis_start", "redis_restart")}
        redis_pids: Callable[[], list[int]] = list
    else:
        own_redis = OwnRedis(folder)
        cleanup.callback(own_redis.close)
        redis_url = own_redis.url
        rshell = {"redis_stop": own_redis.crash, "redis_start": own_redis.start, "redis_restart": None}
        redis_pids = own_redis.pids
    backends = Backends(
        database_url,
        redis_url,
        shell["pg_stop"],
        shell["pg_start"],
        shell["pg_restart"],
        rshell["redis_stop"],
        rshell["redis_start"],
        rshell["redis_restart"],
        lambda: pg_pids() + redis_pids(),
    )
    smtp = Smtp()
    cleanup.callback(smtp.stop)
    env = {
        **os.environ,
        "QRSVC_DATABASE_URL": database_url,
        "QRSVC_RATELIMIT_STORAGE_URL": redis_url,
        "QRSVC_PLANS": json.dumps(PLANS),
        "QRSVC_DEFAULT_PLAN": "soak",
        "QRSVC_LOG_LEVEL": "WARNING",
        "QRSVC_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        # A claim stranded by the database fault (its renewal failed: nothing sent, nothing
        # recorded) is sent again after its lease: short enough here for the wait below.
        "QRSVC_SMTP_TIMEOUT": "2",
        "QRSVC_OUTBOX_LEASE_SECONDS": "20",
        "QRSVC_OUTBOX_INTERVAL_SECONDS": "0.3",
        "QRSVC_OUTBOX_BACKOFF_SECONDS": "0.5",
        "QRSVC_OUTBOX_MAX_ATTEMPTS": "30",
        "QRSVC_RENDER_PROCESSES": "1",
        "QRSVC_INSTANCE_PATH": str(folder / "cli"),
    }
    qrsvc_cli(env, "db", "upgrade")
    hosts: list[Instance] = []
    for name in ("host-a", "host-b"):  # both start at once, while the keys are made
        hosts.append(Instance(name, env, folder, args.workers))
        cleanup.callback(hosts[-1].close)
    made: dict[str, str] = {}

    def make_key(plan: str) -> None:
        made[plan] = qrsvc_cli(env, "keys", "create", "--name", plan, "--plan", plan).strip().splitlines()[-1]

    makers = [threading.Thread(target=make_key, args=(plan,)) for plan in ("soak", "limited")]
    for thread in makers:
        thread.start()
    for thread in makers:
        thread.join()
    if set(made) != {"soak", "limited"}:
        raise RuntimeError("could not create the keys (see above)")
    key, limited_key = made["soak"], made["limited"]
    for host in hosts:
        host.wait()
    for name in ("worker-1", "worker-2"):
        cleanup.callback(Worker(name, env, folder).close)
    log(f"ready in {time.monotonic() - started:.1f} s: {', '.join(h.url for h in hosts)}, PostgreSQL "
        f"{database_url.split('@')[-1]}, Redis {redis_url}, SMTP :{smtp.port}")  # fmt: skip
    run = secrets.token_hex(3)
    ledger = Ledger()
    now = time.time()
    event = {
        "name": f"Soak {run}",
        "starts_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
        "ends_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 86400)),
    }
    record, payload = call(None, "POST", hosts[0], "/v1/events", "/v1/events", key, event)
    if not record.ok:
        raise RuntimeError(f"could not create the event: {record.kind} {payload}")
    traffic = Traffic(hosts, key, payload["id"], ledger, run)
    if args.sizing:
        sizing(traffic, hosts, backends, 8.0, args.clients)
        ledger.codes.clear()  # the proofs are about the soak's own traffic; sizing's stays stored
        ledger.batch_codes.clear()
        ledger.tickets.clear()
        ledger.admitted_answers.clear()
        ledger.scanned_ok.clear()
        ledger.orders.clear()
        ledger.decoded.clear()
    print(f"\nsoak: {args.duration:g} s of mixed traffic, {args.clients} clients + a 60/minute key at "
          f"{LIMITED_RATE:g}/s, over {len(hosts)} hosts × {args.workers} workers, 2 `qrsvc worker`s")  # fmt: skip
    stop = threading.Event()
    watcher_stop = threading.Event()
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    watcher = threading.Thread(target=watch_readiness, args=(hosts, dsn, ledger, watcher_stop))
    watcher.start()
    begin, begin_wall = time.monotonic(), time.time()
    clients = [threading.Thread(target=traffic.mixed, args=(stop, i)) for i in range(args.clients)]

    def limited_loop() -> None:
        while not stop.wait(1 / LIMITED_RATE):
            threading.Thread(target=traffic.limited, args=(limited_key,)).start()

    clients.append(threading.Thread(target=limited_loop))
    chaos = threading.Thread(
        target=inject_faults, args=(args.duration, begin, hosts, smtp, backends, ledger, stop)
    )
    for thread in [*clients, chaos]:
        thread.start()
    try:
        stop.wait(args.duration)
    finally:
        stop.set()
        for thread in [*clients, chaos]:
            thread.join()
        time.sleep(2)  # the last readiness answers, after the last fault
        watcher_stop.set()
        watcher.join()
    seconds = time.monotonic() - begin
    log("traffic stopped; waiting for the workers to deliver the emails")
    wanted = {f"Order {n} confirmed" for _, n in ledger.orders}
    with contextlib.suppress(RuntimeError):
        wait_for(lambda: wanted <= set(smtp.inbox.subjects), 60, "the emails")
    time.sleep(1)  # a second delivery of one, if there were one, has its chance
    print("\nfaults: " + "; ".join(f"{name} at {start - begin_wall:.1f} s ({end - start:.1f} s)"
                                   for name, start, end in ledger.faults))  # fmt: skip
    print("proofs:")
    proofs = prove(ledger, database_url, smtp, hosts, seconds)
    report(ledger, seconds)
    if proofs.failed:
        kept = Path(tempfile.mkdtemp(prefix="qrsvc-soak-logs-"))
        for path in folder.glob("*.log"):
            shutil.copy(path, kept)
        print(f"\nFAILED: {', '.join(proofs.failed)}; the servers' and workers' logs are kept in {kept}")
        return 1
    print("\nall proofs held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
