"""Campaign codes and the mail-merge export end to end, through gunicorn (2 workers), from the client's
request to the last byte of the response.

Goal (issue 10): for a 500-contact campaign whose codes are made, `export.csv` ≤ 1 s and
`export.zip` ≤ 3 s. Measured in one run on this machine:
- POST /v1/crm/campaigns/{id}/codes for 500 contacts (one call, one batch of dynamic codes);
- GET export.csv and export.zip (PNG, then SVG): the first request, then the median of several;
  the two workers take turns, so only the worker that made the codes has them in its render cache;
- the same ZIP from a second server on the same database with the render cache off
  (QRSVC_RENDER_CACHE_BYTES=0): every image drawn again, through the render pool — the worst case;
- the baseline, in the same run: the seed's "500 codes by batch", POST /v1/qr/batch of 500
  dynamic codes (PNG 512 px, EC M, as campaign codes are drawn) answered as a ZIP.

Run: `make bench BENCH=crm` or `.venv/bin/python bench/crm.py [--contacts 500] [--runs 5]`.
"""

from __future__ import annotations

import argparse
import io
import statistics
import threading
import time
import uuid
import zipfile
from collections.abc import Callable

import psutil
import requests
from server import BenchServer

CSV_TARGET = 1.0
ZIP_TARGET = 3.0


def timed(call: Callable[[], requests.Response]) -> tuple[float, requests.Response]:
    started = time.perf_counter()
    answer = call()
    answer.content  # noqa: B018 (read to the last byte)
    elapsed = time.perf_counter() - started
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"{answer.request.method} {answer.url}: {answer.status_code} {answer.text[:300]}")
    return elapsed, answer


class Campaign:
    """`contacts` contacts imported in one CSV request, and the campaign being measured."""

    def __init__(self, server: BenchServer, contacts: int) -> None:
        self.url = server.url
        self.headers = {"Authorization": f"Bearer {server.key}"}
        rows = ["given_name,family_name,email,external_id"] + [
            f"Given{n},Family{n % 50},p{n}@example.com,bench-{n}" for n in range(contacts)
        ]
        imported = requests.post(
            f"{self.url}/v1/crm/contacts/import",
            data="\r\n".join(rows).encode(),
            headers={**self.headers, "Content-Type": "text/csv"},
            timeout=600,
        ).json()
        if imported.get("created") != contacts:
            raise RuntimeError(f"import failed: {imported}")
        self.contacts = contacts
        self.id = ""

    def start(self) -> None:
        """A new campaign for the same contacts: its codes are still to be made."""
        body = {
            "name": "Bench",
            "landing_url": "https://shop.example.com/spring?ref=mail",
            "utm": {"source": "newsletter", "medium": "print", "campaign": "spring"},
        }
        self.id = requests.post(
            f"{self.url}/v1/crm/campaigns", json=body, headers=self.headers, timeout=60
        ).json()["id"]

    def make_codes(self) -> float:
        elapsed, answer = timed(
            lambda: requests.post(
                f"{self.url}/v1/crm/campaigns/{self.id}/codes",
                json={"all": True},
                headers=self.headers,
                timeout=600,
            )
        )
        if answer.json()["created"] != self.contacts:
            raise RuntimeError("codes were not made")
        return elapsed

    def export(self, name: str, base: str | None = None) -> float:
        elapsed, answer = timed(
            lambda: requests.get(
                f"{base or self.url}/v1/crm/campaigns/{self.id}/{name}", headers=self.headers, timeout=600
            )
        )
        if name.startswith("export.csv"):
            if answer.content.count(b"\r\n") < self.contacts + 1:
                raise RuntimeError("the CSV lacks rows")
        elif len(zipfile.ZipFile(io.BytesIO(answer.content)).namelist()) != self.contacts + 1:
            raise RuntimeError("the ZIP lacks images")
        return elapsed


def baseline_batch(server: BenchServer, count: int) -> float:
    """The seed's "500 codes by batch": new dynamic codes, drawn and answered as a ZIP."""
    run = uuid.uuid4().hex[:10]
    body = {
        "items": [{"data": f"https://shop.example.com/spring?qrc={run}{i:05d}"} for i in range(count)],
        "dynamic": True,
        "format": "png",
        "size": 512,
        "error_correction": "M",
        "response": "zip",
    }
    headers = {"Authorization": f"Bearer {server.key}"}
    elapsed, _answer = timed(
        lambda: requests.post(f"{server.url}/v1/qr/batch", json=body, headers=headers, timeout=600)
    )
    return elapsed


def warm_up(server: BenchServer) -> None:
    """Imports, SQLite pages and each worker's render processes: two batches at once, twice."""
    for _ in range(2):
        threads = [threading.Thread(target=baseline_batch, args=(server, 100)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def series(label: str, first: float, rest: list[float], target: float | None = None) -> float:
    median = statistics.median(rest)
    verdict = ""
    if target is not None:
        verdict = f"  target ≤ {target:g} s: {'meets' if max(first, median) <= target else 'MISSES'}"
    print(
        f"  {label:<34}: first {first:.3f} s, then median {median:.3f} s "
        f"(min {min(rest):.3f}, max {max(rest):.3f}){verdict}"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    count, runs = args.contacts, args.runs
    print(f"cores: {psutil.cpu_count()}, load average: {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}")

    with BenchServer(workers=2) as server:
        warm_up(server)
        campaign = Campaign(server, count)
        print(f"\n{count} contacts, codes PNG 512 px EC M; wall time, request to last byte")
        made, baselines = [], []
        for _ in range(max(1, runs // 2)):  # in turns, so both meet the same load
            campaign.start()
            made.append(campaign.make_codes())
            baselines.append(baseline_batch(server, count))
        print(
            f"  {'POST …/codes (one call)':<34}: median {statistics.median(made):.3f} s of {len(made)} campaigns"
        )
        print(f"  {'baseline POST /v1/qr/batch (zip)':<34}: median {statistics.median(baselines):.3f} s")

        for name, target in (("export.csv", CSV_TARGET), ("export.zip", ZIP_TARGET)):
            first = campaign.export(name)
            series(f"GET {name}", first, [campaign.export(name) for _ in range(runs)], target)
        first = campaign.export("export.zip?format=svg")
        rest = [campaign.export("export.zip?format=svg") for _ in range(runs)]
        series("GET export.zip?format=svg", first, rest, ZIP_TARGET)

        database = f"sqlite:///{server.instance / 'qrsvc.sqlite3'}"
        with BenchServer(workers=2, QRSVC_DATABASE_URL=database, QRSVC_RENDER_CACHE_BYTES="0") as cold:
            first = campaign.export("export.zip", base=cold.url)
            rest = [campaign.export("export.zip", base=cold.url) for _ in range(runs)]
            series("GET export.zip, no render cache", first, rest, ZIP_TARGET)


if __name__ == "__main__":
    main()
