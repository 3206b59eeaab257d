"""Redirects of a dynamic code (`GET /r/<CODE>` → 302, one scan recorded) through gunicorn (2 workers).

Three cases in one run: `/healthz` (the baseline: the server and wrk alone), redirects
with scans buffered and written by a thread every 100 ms (the default), and redirects
that write their scan before answering (`QRSVC_SCAN_FLUSH_SECONDS=0`). Each request sends
one of several user agents, as phones do, from one of 1000 addresses (X-Forwarded-For
behind a trusted proxy, so each stays within the per-address redirect limit). After each
redirect run the scans recorded are compared with the requests wrk made. The goal is >= 1000 redirects/s on this machine's
2 cores, wrk included. Run: `make bench BENCH=redirects` or `.venv/bin/python bench/redirects.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request

from server import BenchServer, require_wrk, run_wrk

AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
]

LUA = r"""
local counter = 0
function request()
  counter = counter + 1
  local agent = AGENTS[(counter % #AGENTS) + 1]
  local phone = counter % 1000
  local address = "10.0." .. math.floor(phone / 250) .. "." .. (phone % 250 + 1)
  return wrk.format("GET", PATH, {["User-Agent"] = agent, ["X-Forwarded-For"] = address})
end
"""


def _api(
    server: BenchServer, method: str, path: str, body: dict[str, object] | None = None
) -> dict[str, object]:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, object] = json.load(response)
        return result


def _script(path: str) -> str:
    agents = ", ".join(json.dumps(agent) for agent in AGENTS)
    return f'PATH = "{path}"\nAGENTS = {{{agents}}}\n' + LUA


def measure(server: BenchServer, path: str, connections: int, seconds: int, repeats: int) -> dict[str, float]:
    """Median figures of `repeats` runs; `requests` is every request made, warm-up included."""
    warm = run_wrk(server, _script(path), connections, 1)  # imports, connections, the day's salt
    runs = [run_wrk(server, _script(path), connections, seconds) for _ in range(repeats)]
    figures = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    figures["requests"] = warm["requests"] + sum(r["requests"] for r in runs)
    return figures


def _scans(server: BenchServer, code_id: str) -> int:
    time.sleep(1)  # the last batch of the other worker
    counted = _api(server, "GET", f"/v1/qr/{code_id}")["dynamic"]
    assert isinstance(counted, dict)
    return int(counted["scans"]["total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    require_wrk()
    results: dict[str, dict[str, float]] = {}
    recorded: dict[str, str] = {}
    for name, flush in (("buffered", "0.1"), ("direct", "0")):
        # 1000 phones behind a proxy, each well within the per-address redirect limit.
        with BenchServer(workers=2, QRSVC_SCAN_FLUSH_SECONDS=flush, QRSVC_TRUSTED_PROXIES="1") as server:
            if name == "buffered":
                results["healthz"] = measure(server, "/healthz", args.connections, args.seconds, args.repeats)
            code = _api(
                server,
                "POST",
                "/v1/qr/generate",
                {"data": "https://example.com/", "dynamic": True, "response": "json"},
            )
            dynamic = code["dynamic"]
            assert isinstance(dynamic, dict)
            path = "/R/" + str(dynamic["short_url"]).rsplit("/", 1)[1]
            results[name] = measure(server, path, args.connections, args.seconds, args.repeats)
            scans = _scans(server, str(code["id"]))
            recorded[name] = f"{scans} scans of {results[name]['requests']:.0f} redirects recorded"

    print(
        f"\nGET /r/<CODE> → 302, gunicorn 2 workers, {args.connections} connections, wrk on the same 2 cores"
    )
    print(f"{'case':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  {'':20}")
    for name, r in results.items():
        print(f"{name:10} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}  {recorded.get(name, '')}")
    buffered, baseline = results["buffered"]["rps"], results["healthz"]["rps"]
    print(
        f"\nredirects: {buffered:.0f}/s (goal >= 1000), {buffered / baseline:.2f}x /healthz; "
        f"writing each scan in the request: {results['direct']['rps']:.0f}/s"
    )


if __name__ == "__main__":
    main()
