"""A benchmark server: gunicorn on loopback with a fresh instance, a migrated database and a key.

Used by every script in bench/ so they all measure the real stack (auth, limits, storage on).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: A plan that never limits the benchmark (limits are still checked on every request).
BENCH_PLANS = {
    "bench": {"requests_per_minute": 100_000_000, "codes_per_month": 1_000_000_000},
    "free": {"requests_per_minute": 30, "codes_per_month": 1_000},
}


def qrsvc_cli(env: dict[str, str], *args: str, root: Path = ROOT) -> str:
    """Run the `qrsvc` command of the checkout at `root`; its output, or an error with what it said."""
    done = subprocess.run(
        [sys.executable, "-m", "qrsvc.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"qrsvc {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class BenchServer:
    """`qrsvc serve` with its own instance folder; `key` is a fresh API key on the bench plan."""

    def __init__(self, workers: int = 2, root: Path = ROOT, **env: str) -> None:
        self.root = root  # another checkout's code (a before/after comparison); ROOT by default
        self.instance = Path(tempfile.mkdtemp(prefix="qrsvc-bench-"))
        self.env = {
            **os.environ,
            "QRSVC_INSTANCE_PATH": str(self.instance),
            "QRSVC_PLANS": json.dumps(BENCH_PLANS),
            "QRSVC_LOG_LEVEL": "WARNING",
            **env,
        }
        self._cli("db", "upgrade")
        self.key = self._cli("keys", "create", "--name", "bench", "--plan", "bench").strip().splitlines()[-1]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (self.instance / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qrsvc.cli", "serve", "--port", str(self.port), "--workers", str(workers)],
            cwd=self.root,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait()

    def _cli(self, *args: str) -> str:
        return qrsvc_cli(self.env, *args, root=self.root)

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("benchmark server did not start")

    def pids(self) -> list[int]:
        """The master and its workers, for memory measurements."""
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [self.process.pid, *map(int, children)]

    def close(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.instance, ignore_errors=True)

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BareServer:
    """A bare app of `bench/bare/` (no auth, no storage) under gunicorn's default sync workers."""

    key = "none"  # the Lua scripts send it; a bare app ignores it

    def __init__(self, app: str, workers: int = 2) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in `close`)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                app,
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{app} did not start")

    def close(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(10)
        self.log.close()

    def __enter__(self) -> BareServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_wrk(
    server: BenchServer | BareServer, script: str, connections: int, seconds: int
) -> dict[str, float]:
    """Drive `server` with wrk and a Lua `script` (KEY is set to the server's key); any non-2xx fails."""
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text(f'KEY = "{server.key}"\n' + script)
    try:
        finished = subprocess.run(
            [
                require_wrk(),
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(path),
                server.url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        path.unlink()
    if finished.returncode != 0:
        raise RuntimeError(
            f"wrk failed ({finished.returncode}) on {server.url}:\n{finished.stdout}{finished.stderr}"
        )
    output = finished.stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"errors during the run:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def percentile(name: str) -> float:
        found = re.search(rf"{name}%\s+([\d.]+)(us|ms|s)", output)
        assert found is not None, output
        return float(found.group(1)) * scale[found.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    made = re.search(r"(\d+) requests in", output)
    assert rps is not None, output
    assert made is not None, output
    return {
        "rps": float(rps.group(1)),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "requests": float(made.group(1)),
    }


def require_wrk() -> str:
    """wrk drives HTTP load from C, so the load generator takes little of our two cores."""
    wrk = shutil.which("wrk")
    if wrk is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench needs wrk (apt-get install wrk)")
    return wrk
