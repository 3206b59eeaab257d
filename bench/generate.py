"""Single-code throughput and latency of /v1/qr/generate against bare Flask apps, in one paired run.

`qrsvc serve` (2 workers) answers with authentication, rate limiting, storage and usage
counting all on, every request with distinct data (no cache can help). The baselines, in
`bench/bare/`, have none of that: a Flask + python-qrcode app (PNG) and a Flask + segno app
(PNG and SVG), each under gunicorn with as many sync workers. Every server is started first;
then each repetition drives every case once with wrk (c=16, the order rotated each time) and
takes the ratios within the repetition, so a machine that gets busier or quieter in between
moves both sides of a ratio alike. Reported: medians over repetitions of req/s, p50 and p99,
and of the ratios.

Storage: SQLite files in a fresh instance folder, and (when given or found) PostgreSQL with the
rate limits in Redis: `--database-url`/`--redis-url`, else `$QRSVC_TEST_DATABASE_URL` and
`$QRSVC_TEST_REDIS_URL`. PostgreSQL gets a throwaway schema, dropped at the end.

Run: `make bench` or `.venv/bin/python bench/generate.py [--seconds 5] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from server import ROOT, BareServer, BenchServer, require_wrk, run_wrk

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

#: (server, format) pairs whose ratio each repetition takes: ours / baseline.
RATIOS = (("png", "qrcode"), ("png", "segno"), ("svg", "segno"))
GOALS = {("png", "qrcode"): 4.0, ("svg", "segno"): 3.0}
P99_GOAL_MS = 60.0

Server = BenchServer | BareServer


def run_case(server: Server, fmt: str, connections: int, seconds: int) -> dict[str, float]:
    return run_wrk(server, f'FORMAT = "{fmt}"\n' + LUA, connections, seconds)


@contextlib.contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A throwaway schema on the server at `base`, as a URL whose connections use it; dropped after."""
    schema = f"qrsvc_bench_{secrets.token_hex(4)}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def paired_run(
    servers: dict[str, Server], cases: list[tuple[str, str]], seconds: int, repeats: int, connections: int
) -> tuple[dict[tuple[str, str], list[dict[str, float]]], list[dict[tuple[str, str, str], float]]]:
    """Every case once per repetition (rotated order); the ratios ours/baseline within each repetition."""
    for name, fmt in cases:
        run_case(servers[name], fmt, connections, 1)  # warm-up: imports, connections, pages
    results: dict[tuple[str, str], list[dict[str, float]]] = {case: [] for case in cases}
    ratios: list[dict[tuple[str, str, str], float]] = []
    for repeat in range(repeats):
        shift = repeat % len(cases)
        got: dict[tuple[str, str], dict[str, float]] = {}
        for name, fmt in cases[shift:] + cases[:shift]:
            got[(name, fmt)] = run_case(servers[name], fmt, connections, seconds)
            results[(name, fmt)].append(got[(name, fmt)])
            print(
                f"  repetition {repeat + 1}: {name:14} {fmt} {got[(name, fmt)]['rps']:7.1f} req/s", flush=True
            )
        ratios.append(
            {
                (ours, fmt, base): got[(ours, fmt)]["rps"] / got[(base, fmt)]["rps"]
                for ours in servers
                if ours.startswith("qrsvc")
                for fmt, base in RATIOS
                if (ours, fmt) in got and (base, fmt) in got
            }
        )
    return results, ratios


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--database-url", default=os.environ.get("QRSVC_TEST_DATABASE_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("QRSVC_TEST_REDIS_URL", ""))
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose qrsvc to measure")
    args = parser.parse_args()
    require_wrk()
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {
            "qrsvc sqlite": stack.enter_context(BenchServer(workers=2, root=args.root)),
        }
        if args.database_url and args.redis_url:
            url = stack.enter_context(postgres_schema(args.database_url))
            servers["qrsvc pg+redis"] = stack.enter_context(
                BenchServer(
                    workers=2,
                    root=args.root,
                    QRSVC_DATABASE_URL=url,
                    QRSVC_RATELIMIT_STORAGE_URL=args.redis_url,
                )
            )
        else:
            print("PostgreSQL + Redis: not measured (give --database-url and --redis-url)")
        servers["qrcode"] = stack.enter_context(BareServer("bench.bare.qrcode_app:app", workers=2))
        servers["segno"] = stack.enter_context(BareServer("bench.bare.segno_app:app", workers=2))
        cases = [
            (name, fmt) for name in servers for fmt in ("png", "svg") if (name, fmt) != ("qrcode", "svg")
        ]
        results, ratios = paired_run(servers, cases, args.seconds, args.repeats, args.connections)

    print(
        f"\nPOST /v1/qr/generate, 512 px, EC H, distinct data, c={args.connections}, 2 workers each, "
        f"wrk on the same machine; medians of {args.repeats} interleaved repetitions of {args.seconds} s"
    )
    print(f"{'server':15} {'format':6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for (name, fmt), runs in results.items():
        rps, p50, p99 = (statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms"))
        print(f"{name:15} {fmt:6} {rps:>8.1f} {p50:>8.1f} {p99:>8.1f}")
    print("\nratios taken within each repetition (median, min-max):")
    for key in ratios[0]:
        values = [r[key] for r in ratios]
        ours, fmt, base = key
        goal = GOALS.get((fmt, base))
        verdict = (
            f"  goal >= {goal:.0f}x: {'met' if statistics.median(values) >= goal else 'NOT met'}"
            if goal
            else ""
        )
        print(
            f"  {ours:15} / {base:7} {fmt}: {statistics.median(values):5.2f}x "
            f"({min(values):.2f}-{max(values):.2f}){verdict}"
        )
    for (name, fmt), runs in results.items():
        if name.startswith("qrsvc"):
            p99 = statistics.median(r["p99_ms"] for r in runs)
            print(
                f"  {name} {fmt} p99 {p99:.1f} ms (goal <= {P99_GOAL_MS:.0f} ms: {'met' if p99 <= P99_GOAL_MS else 'NOT met'})"
            )


if __name__ == "__main__":
    main()
