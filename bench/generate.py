"""Single-code throughput and latency of /v1/qr/generate through gunicorn (2 workers).

Every request carries distinct data (no cache can help), and authentication, rate
limiting, storage and usage counting are all on. The `qrcode` engine is the baseline,
measured in the same run. Run: `make bench` or `.venv/bin/python bench/generate.py`.
"""

from __future__ import annotations

import argparse
import statistics

from server import BenchServer, require_wrk, run_wrk

LUA = r"""
local counter = 0
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function request()
  counter = counter + 1
  local body = string.format(
    '{"data":"https://shop.example.com/product/%d-%d-%d?ref=bench","format":"%s","size":512,"error_correction":"H"}',
    tid, counter, math.random(1000000000), FORMAT)
  return wrk.format("POST", "/v1/qr/generate",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. KEY}, body)
end
"""


def run_case(server: BenchServer, fmt: str, connections: int, seconds: int) -> dict[str, float]:
    return run_wrk(server, f'FORMAT = "{fmt}"\n' + LUA, connections, seconds)


def measure(server: BenchServer, fmt: str, connections: int, seconds: int, repeats: int) -> dict[str, float]:
    run_case(server, fmt, connections, 1)  # warm-up: imports, connections, SQLite pages
    runs = [run_case(server, fmt, connections, seconds) for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_wrk()
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    for engine in ("zxing", "qrcode"):
        with BenchServer(workers=2, QRSVC_ENGINE=engine) as server:
            cases = [("png", 1), ("png", 16), ("svg", 16)] if engine == "zxing" else [("png", 1), ("png", 16)]
            for fmt, connections in cases:
                repeats = args.repeats if engine == "zxing" else 1
                results[(engine, fmt, connections)] = measure(server, fmt, connections, args.seconds, repeats)

    print("\nPOST /v1/qr/generate, 512 px, EC H, distinct data, gunicorn 2 workers, wrk on the same 2 cores")
    print(f"{'engine':8} {'format':6} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for (engine, fmt, connections), r in results.items():
        print(f"{engine:8} {fmt:6} {connections:>4} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    png16 = results[("zxing", "png", 16)]["rps"]
    base16 = results[("qrcode", "png", 16)]["rps"]
    print(
        f"\nPNG c16: {png16:.0f} req/s (target >= 600); {png16 / base16:.1f}x the qrcode engine (target >= 5x)"
    )
    print(f"SVG c16: {results[('zxing', 'svg', 16)]['rps']:.0f} req/s (target >= 750)")
    print(
        f"PNG c1 latency p50: {results[('zxing', 'png', 1)]['p50_ms']:.2f} ms "
        f"(qrcode engine {results[('qrcode', 'png', 1)]['p50_ms']:.2f} ms)"
    )


if __name__ == "__main__":
    main()
