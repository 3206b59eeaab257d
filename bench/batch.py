"""Bulk generation end to end: POST /v1/qr/batch through gunicorn (2 workers), from the client's
request to the last byte of the response.

Measures, in one run on this machine:
- a 500-item batch (distinct URLs, PNG 512 px, EC H, JSON with base64): median of several runs;
- the same with one render process per worker (no pool), to show what the pool adds;
- the same with QRSVC_ENGINE=qrcode, the baseline (one run: it is slow), and once more with
  the qrcode engine and no render pool (one core, like a plain qrcode-based service);
- a 1000-item ZIP, and the peak RSS growth of the server's processes (master, workers and
  their render processes) while it is made.
Every item carries new data, so the render cache never helps (the server reports its hits
in X-QR-Cache-Hits; they are checked to be 0). Run: `.venv/bin/python bench/batch.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import threading
import time
import uuid
import zipfile
from typing import Any

import psutil
import requests
from server import BenchServer

TARGET_SECONDS = 0.5
TARGET_RATIO = 10
TARGET_MEMORY_MB = 200


def items(count: int) -> list[dict[str, str]]:
    run = uuid.uuid4().hex[:10]
    return [{"data": f"https://crm.example.com/contact/{run}/{i:05d}?utm=bench"} for i in range(count)]


def post_batch(server: BenchServer, count: int, response: str = "json") -> tuple[float, requests.Response]:
    body = {
        "items": items(count),
        "format": "png",
        "size": 512,
        "error_correction": "H",
        "response": response,
    }
    headers = {"Authorization": f"Bearer {server.key}"}
    started = time.perf_counter()
    answer = requests.post(f"{server.url}/v1/qr/batch", json=body, headers=headers, timeout=600)
    answer.content  # noqa: B018 (read to the last byte)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"batch failed: {answer.status_code} {answer.text[:300]}")
    if answer.headers.get("X-QR-Cache-Hits") != "0":
        raise RuntimeError(f"cache hits in a cold benchmark: {answer.headers.get('X-QR-Cache-Hits')}")
    return elapsed, answer


def check_json(answer: requests.Response, count: int) -> None:
    result = answer.json()
    if (result["count"], result["failed"]) != (count, 0) or len(result["items"][-1]["image_base64"]) < 100:
        raise RuntimeError("unexpected batch result")


def warm_up(server: BenchServer) -> None:
    """Imports, SQLite pages and each worker's render processes: two batches at once, twice."""
    for _ in range(2):
        threads = [threading.Thread(target=post_batch, args=(server, 200)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def timed_runs(server: BenchServer, count: int, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        elapsed, answer = post_batch(server, count)
        check_json(answer, count)
        times.append(elapsed)
    return times


def server_processes(server: BenchServer) -> list[psutil.Process]:
    master = psutil.Process(server.process.pid)
    return [master, *master.children(recursive=True)]


def rss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


def zip_with_memory(server: BenchServer, count: int) -> dict[str, Any]:
    processes = server_processes(server)
    before = rss(processes)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss(processes))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        elapsed, answer = post_batch(server, count, response="zip")
    finally:
        done.set()
        sampler.join()
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    if len(archive.namelist()) != count + 1:
        raise RuntimeError("the ZIP lacks images")
    return {
        "seconds": elapsed,
        "bytes": len(answer.content),
        "processes": len(processes),
        "before_mb": before / 2**20,
        "growth_mb": (peak - before) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--zip-items", type=int, default=1000)
    args = parser.parse_args()
    count = args.items
    print(f"cores: {psutil.cpu_count()}, load average: {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}")

    with BenchServer(workers=2) as server:
        warm_up(server)
        pooled = timed_runs(server, count, args.runs)
        memory = zip_with_memory(server, args.zip_items)
    with BenchServer(workers=2, QRSVC_RENDER_PROCESSES="1") as server:
        warm_up(server)
        single = timed_runs(server, count, max(3, args.runs // 2))
    with BenchServer(workers=2, QRSVC_ENGINE="qrcode") as server:
        post_batch(server, 20)
        (baseline,) = timed_runs(server, count, 1)
    with BenchServer(workers=2, QRSVC_ENGINE="qrcode", QRSVC_RENDER_PROCESSES="1") as server:
        post_batch(server, 20)
        (serial_baseline,) = timed_runs(server, count, 1)

    median = statistics.median(pooled)
    print(f"\n{count}-item batch, PNG 512 px, EC H, JSON base64, gunicorn 2 workers (end to end):")
    print(
        f"  zxing + render pool      median {median:.3f} s  (min {min(pooled):.3f}, max {max(pooled):.3f},"
        f" {args.runs} runs)  {count / median:,.0f} codes/s"
    )
    print(
        f"  zxing, no pool           median {statistics.median(single):.3f} s  "
        f"(min {min(single):.3f}, {len(single)} runs)"
    )
    print(f"  qrcode engine (baseline) {baseline:.3f} s  (1 run; rendered in the pool too)")
    print(f"  qrcode engine, no pool   {serial_baseline:.3f} s  (1 run; one core, as a plain qrcode build)")
    print(f"  ratio baseline / zxing + pool: {baseline / median:.1f}x")
    print(f"  ratio qrcode without pool / zxing + pool: {serial_baseline / median:.1f}x")
    print(f"\n{args.zip_items}-item ZIP: {memory['seconds']:.3f} s, {memory['bytes'] / 2**20:.1f} MB")
    print(
        f"  server RSS ({memory['processes']} processes) before {memory['before_mb']:.0f} MB, "
        f"peak growth {memory['growth_mb']:.1f} MB"
    )
    print("\ntargets:")
    print(
        f"  500 codes <= {TARGET_SECONDS} s: {'met' if median <= TARGET_SECONDS else 'MISSED'} ({median:.3f} s)"
    )
    print(f"  >= {TARGET_RATIO}x baseline: {'met' if baseline / median >= TARGET_RATIO else 'MISSED'}")
    print(
        f"  ZIP growth < {TARGET_MEMORY_MB} MB: "
        f"{'met' if memory['growth_mb'] < TARGET_MEMORY_MB else 'MISSED'} ({memory['growth_mb']:.1f} MB)"
    )


if __name__ == "__main__":
    main()
