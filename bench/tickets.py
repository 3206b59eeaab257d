"""Ticketing benchmark: scan throughput and bulk ticket issuance through gunicorn (2 workers).

Runs on its own throwaway SQLite database (or QRSVC_BENCH_DATABASE_URL, e.g. a
PostgreSQL URL) and prints figures with ratios against baselines measured in the
same run on the same server:

- scans/s of distinct fresh tickets (verify + one conditional UPDATE + log row),
  and of already-used tickets (verify + refused UPDATE + log row), against
  GET /healthz (no database) at the same concurrency;
- tickets/s issued in bulk (sign, render the QR, store code and ticket), against
  single codes/s from POST /v1/qr/generate with data of the same length.

Usage: python bench/tickets.py [--tickets 800] [--concurrency 16] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from server import qrsvc_cli

ROOT = Path(__file__).resolve().parent.parent
PLANS = {"bench": {"requests_per_minute": 10_000_000, "codes_per_month": 100_000_000}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "qrsvc.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                return process
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit(f"server did not start: {log.read_text()}")


_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def _timed(concurrency: int, calls: Iterable[Callable[[requests.Session], Any]]) -> tuple[float, list[Any]]:
    """Run every call on a pool of `concurrency` threads (one keep-alive session each)."""
    work = list(calls)
    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        results = list(pool.map(lambda call: call(_session()), work))
        elapsed = time.perf_counter() - started
    return elapsed, results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=800, help="tickets issued (and scanned)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100, help="tickets per issuing request")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="qrsvc-bench-") as tmp:
        env = {
            **os.environ,
            "QRSVC_INSTANCE_PATH": tmp,
            "QRSVC_DATABASE_URL": os.environ.get("QRSVC_BENCH_DATABASE_URL")
            or f"sqlite:///{tmp}/bench.sqlite3",
            "QRSVC_PLANS": json.dumps(PLANS),
            "QRSVC_DEFAULT_PLAN": "bench",
            "QRSVC_LOG_LEVEL": "WARNING",
        }
        qrsvc_cli(env, "db", "upgrade")
        key = qrsvc_cli(env, "keys", "create", "--name", "bench", "--plan", "bench").strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {key}"}
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = _start(env, port, Path(tmp) / "server.log")
        try:
            now = datetime.now(UTC)
            event = requests.post(
                f"{base}/v1/events",
                json={
                    "name": "Bench",
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(hours=3)).isoformat(),
                },
                headers=headers,
                timeout=30,
            ).json()
            print(
                f"qrsvc tickets benchmark: gunicorn 2 workers, {env['QRSVC_DATABASE_URL'].split(':')[0]}, "
                f"concurrency {args.concurrency}, {os.cpu_count()} CPUs (shared; figures are indicative)"
            )

            # --- issuance: bulk tickets vs single codes of the same data length
            batches = [
                [{"holder_name": f"Guest {b}-{i}", "seat": f"{b}-{i}"} for i in range(args.batch)]
                for b in range(max(1, args.tickets // args.batch))
            ]

            def issue(batch: list[dict[str, str]]) -> Callable[[requests.Session], list[dict[str, Any]]]:
                def call(session: requests.Session) -> list[dict[str, Any]]:
                    response = session.post(
                        f"{base}/v1/events/{event['id']}/tickets",
                        json={"tickets": batch},
                        headers=headers,
                        timeout=300,
                    )
                    response.raise_for_status()
                    return list(response.json()["tickets"])

                return call

            issuing_workers = min(args.concurrency, 4)
            elapsed, issued = _timed(issuing_workers, [issue(b) for b in batches])
            tickets = [t for batch in issued for t in batch]
            tickets_per_s = len(tickets) / elapsed
            token_length = len(tickets[0]["token"])

            def generate(session: requests.Session) -> int:
                data = secrets.token_urlsafe(token_length)[:token_length]
                response = session.post(
                    f"{base}/v1/qr/generate",
                    json={"data": data, "response": "json"},
                    headers=headers,
                    timeout=60,
                )
                return response.status_code

            baseline_count = min(len(tickets), 400)
            code_elapsed, statuses = _timed(issuing_workers, [generate] * baseline_count)
            assert set(statuses) == {200}, Counter(statuses)
            codes_per_s = baseline_count / code_elapsed
            print(
                f"issue   {len(tickets)} tickets in batches of {args.batch} ({issuing_workers} clients): "
                f"{tickets_per_s:8.1f} tickets/s  (token {token_length} chars)"
            )
            print(
                f"        baseline POST /v1/qr/generate, same data length: {codes_per_s:8.1f} codes/s  "
                f"ratio {tickets_per_s / codes_per_s:.2f}"
            )

            # --- scanning: fresh tickets, then the same tickets again, vs /healthz
            def scan(token: str) -> Callable[[requests.Session], str]:
                def call(session: requests.Session) -> str:
                    response = session.post(
                        f"{base}/v1/tickets/scan",
                        json={"token": token, "gate": "bench"},
                        headers=headers,
                        timeout=60,
                    )
                    response.raise_for_status()
                    return str(response.json()["result"])

                return call

            tokens = [t["token"] for t in tickets]
            fresh_elapsed, fresh = _timed(args.concurrency, [scan(t) for t in tokens])
            used_elapsed, used = _timed(args.concurrency, [scan(t) for t in tokens])
            assert Counter(fresh) == {"admitted": len(tokens)}, Counter(fresh)
            assert Counter(used) == {"already_used": len(tokens)}, Counter(used)

            def health(session: requests.Session) -> int:
                return session.get(f"{base}/healthz", timeout=30).status_code

            health_elapsed, _ = _timed(args.concurrency, [health] * len(tokens))
            health_per_s = len(tokens) / health_elapsed
            for label, seconds in (("admitted", fresh_elapsed), ("already_used", used_elapsed)):
                rate = len(tokens) / seconds
                print(
                    f"scan    {len(tokens)} distinct tickets, {label:>12}: {rate:8.1f} scans/s  "
                    f"ratio to /healthz {rate / health_per_s:.2f}"
                )
            print(f"        baseline GET /healthz:                 {health_per_s:8.1f} requests/s")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(10)


if __name__ == "__main__":
    main()
