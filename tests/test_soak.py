"""The soak's short variant (bench/soak.py --short) runs here: faults injected, every proof must hold.

It starts its own PostgreSQL cluster, Redis and SMTP server on free loopback ports (never the
shared ones), two `qrsvc serve` instances and two workers, drives 30 s of mixed traffic through
both while it stops the SMTP server, kills one instance's workers and restarts PostgreSQL and
Redis, then proves what it printed. It needs PostgreSQL's server binaries and redis-server
(scripts/system-deps.sh --test installs them); without them it fails, it is never skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROOFS = {
    "single codes stored exactly once",
    "batch codes stored",
    "sampled images decode (zxing-cpp) to their data",
    "tickets stored exactly once",
    "no ticket admitted twice across hosts",
    "orders stored exactly once",
    "each acknowledged order's email delivered exactly once",
    "a 60/minute key got at most 60 in any minute on both hosts together",
    "requests failed only during faults, as JSON 5xx with Retry-After (or dropped by a killed worker), "
    "never a hang",
    "429s are JSON with Retry-After",
    "/readyz said 503 while PostgreSQL was down and 200 after",
    "/metrics (both hosts) counts the 2xx the clients got",
}
FAULTS = ("smtp stopped", "kill -9 host-a workers", "postgresql restart", "redis restart")
ROUTES = (
    "/v1/qr/generate",
    "/v1/qr/batch",
    "/v1/events/<event_id>/tickets",
    "/v1/tickets/scan",
    "/v1/shop/orders",
    "/v1/account/usage",
)


@pytest.mark.timeout(400)
def test_the_short_soak_holds_every_proof() -> None:
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--short", "--timeout", "360"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=390,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    lines = re.findall(r"^  (PASS|FAIL)  (.+?): ", output, re.MULTILINE)
    assert {name for _, name in lines} == PROOFS, output[-6000:]
    assert all(verdict == "PASS" for verdict, _ in lines), output[-6000:]
    faults = re.search(r"^faults: (.*)$", output, re.MULTILINE)
    assert faults is not None and all(f"{name} at " in faults.group(1) for name in FAULTS), output[-6000:]
    # The figures are printed: throughput, errors by kind and a p50/p99 row for every route.
    assert re.search(r"^throughput: [\d.]+ requests/s sent", output, re.MULTILINE)
    assert re.search(r"^errors by kind: ", output, re.MULTILINE)
    for route in ROUTES:
        assert re.search(rf"^{re.escape(route)}\s+[1-9]\d*\s+\d+\s+[\d.]+\s+[\d.]+$", output, re.MULTILINE), (
            route
        )
    assert "all proofs held" in output
