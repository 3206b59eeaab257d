"""Order creation throughput with the confirmation email queued, through gunicorn (2 workers).

Each POST /v1/shop/orders stores an EC-M code, the order and its items, renders the
confirmation (text + HTML + inline PNG) into the outbox in the same transaction, and
then tries delivery. Cases: no SMTP configured (email stored as `disabled`), SMTP down
(email queued with its error and a retry time), SMTP up (aiosmtpd on loopback: sent
inside the request). Baseline, same run and server settings: POST /v1/qr/generate of
the same code alone.

Then the labels endpoint end to end: POST /v1/shop/labels for a 300-label avery-5160
PDF of 300 distinct products (request → bytes, through the view, the catalogue lookup
and WeasyPrint), against `render_shelf_labels` called directly in this process.
Run: `make bench BENCH=shop` or `.venv/bin/python bench/shop.py`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path

from server import BenchServer, require_wrk, run_wrk

ORDER_LUA = r"""
local counter = 0
function request()
  counter = counter + 1
  local number = string.format("%s-%d", RUN, counter)
  local body = string.format(
    '{"order_number":"%s","customer":{"name":"Ada Lovelace","email":"ada@example.com"},' ..
    '"items":[{"sku":"MUG-1","quantity":2,"unit_price":"9.50"},{"sku":"TEE-M","quantity":1}],' ..
    '"currency":"EUR","tracking_url":"https://track.example.com/o/%s",' ..
    '"shipping_address":{"name":"Ada Lovelace","address1":"12 St James Square","city":"London",' ..
    '"postal_code":"SW1Y 4JH","country":"GB"}}', number, number)
  return wrk.format("POST", "/v1/shop/orders",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. KEY}, body)
end
"""

CODE_LUA = r"""
local counter = 0
function request()
  counter = counter + 1
  local body = string.format(
    '{"data":"https://track.example.com/o/%s-%d","size":300,"error_correction":"M","response":"json"}',
    RUN, counter)
  return wrk.format("POST", "/v1/qr/generate",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. KEY}, body)
end
"""


def run_orders(server: BenchServer, lua: str, connections: int, seconds: int) -> tuple[float, float]:
    # A fresh prefix per wrk run: order numbers are unique per key (a repeat would be a 409).
    result = run_wrk(server, f'RUN = "{secrets.token_hex(4)}"\n' + lua, connections, seconds)
    return result["rps"], result["p50_ms"]


def measure(server: BenchServer, lua: str, connections: int, seconds: int) -> tuple[float, float]:
    run_orders(server, lua, connections, 1)  # warm-up
    return run_orders(server, lua, connections, seconds)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens here once the socket is closed: connection refused


def outbox_counts(server: BenchServer) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{server.instance / 'qrsvc.sqlite3'}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT status, count(*) FROM shop_outbox GROUP BY status")).all()
    engine.dispose()
    return ", ".join(f"{status} {count}" for status, count in rows)


def _post(server: BenchServer, path: str, body: object) -> bytes:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.key}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        content: bytes = response.read()
    return content


def measure_labels(count: int, runs: int) -> tuple[float, float]:
    """Median seconds for a `count`-label avery-5160 PDF: over HTTP, and by calling the renderer."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from integrations.shop.labels.documents import ShelfLabel, render_shelf_labels

    products = [
        {
            "sku": f"SKU-{n:04d}",
            "name": f"Product {n}",
            "url": f"https://shop.example.com/p/{n:04d}",
            "price": "9.99",
        }
        for n in range(count)
    ]
    with BenchServer(workers=2) as server:
        for product in products:
            _post(server, "/v1/shop/products", {**product, "currency": "EUR"})
        body = {"skus": [p["sku"] for p in products], "layout": "avery-5160"}
        _post(server, "/v1/shop/labels", body)  # warm-up: WeasyPrint and fonts load in each worker
        _post(server, "/v1/shop/labels", body)
        http = []
        for _ in range(runs):
            started = time.perf_counter()
            pdf = _post(server, "/v1/shop/labels", body)
            http.append(time.perf_counter() - started)
        assert pdf.startswith(b"%PDF")
    labels = [ShelfLabel(p["name"], p["sku"], "€9.99", p["url"]) for p in products]
    render_shelf_labels(labels, "avery-5160")
    direct = []
    for _ in range(runs):
        started = time.perf_counter()
        render_shelf_labels(labels, "avery-5160")
        direct.append(time.perf_counter() - started)
    return statistics.median(http), statistics.median(direct)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--label-runs", type=int, default=5)
    args = parser.parse_args()
    require_wrk()

    from aiosmtpd.controller import Controller

    class Sink:
        received = 0

        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            Sink.received += 1
            return "250 OK"

    smtp_port = closed_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    cases = {
        "baseline: code only": ({}, CODE_LUA),
        "order, no SMTP (disabled)": ({}, ORDER_LUA),
        "order, SMTP down (queued)": ({"QRSVC_SMTP_URL": f"smtp://127.0.0.1:{closed_port()}"}, ORDER_LUA),
        "order, SMTP up (sent)": ({"QRSVC_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}"}, ORDER_LUA),
    }
    results: dict[str, tuple[float, float, str]] = {}
    try:
        for name, (env, lua) in cases.items():
            with BenchServer(workers=2, **env) as server:
                rps, p50 = measure(server, lua, args.connections, args.seconds)
                results[name] = (rps, p50, outbox_counts(server) if lua is ORDER_LUA else "")
    finally:
        smtp.stop()

    print(
        f"\nSQLite, gunicorn 2 workers, wrk -c{args.connections} on the same 2 cores, {args.seconds} s each"
    )
    print(f"{'case':28} {'req/s':>8} {'p50 ms':>8}  outbox after the run")
    for name, (rps, p50, outbox) in results.items():
        print(f"{name:28} {rps:>8.1f} {p50:>8.2f}  {outbox}")
    base = results["baseline: code only"][0]
    queued = results["order, SMTP down (queued)"][0]
    print(f"\norders/s with the email queued: {queued:.0f} ({queued / base:.2f}x the code-only baseline)")
    print(f"messages received by the SMTP sink: {Sink.received}")

    http, direct = measure_labels(args.labels, args.label_runs)
    print(
        f"\n{args.labels}-label avery-5160 PDF, {args.labels} distinct products, median of {args.label_runs}"
    )
    print(f"POST /v1/shop/labels (request → bytes, gunicorn): {http:.2f} s (target <= 2 s)")
    print(f"render_shelf_labels() in-process baseline:        {direct:.2f} s ({http / direct:.2f}x)")


if __name__ == "__main__":
    main()
