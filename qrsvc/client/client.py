"""`Client`: the qrsvc API from Python, with retries, backoff and batch splitting done for you.

Retries: 429 and 5xx responses (and connection failures) are retried with
exponential backoff — 1 s, 2 s, 4 s … capped at `max_backoff` — or after the
server's `Retry-After` when that is longer. Other 4xx responses are never retried.
Once `max_retries` retries are spent the last failure is raised as a
`QrsvcError` subclass. Every batch is sent with its own `Idempotency-Key`, so a
retried batch never makes its codes twice.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from qrsvc.client.errors import (
    PayloadTooLargeError,
    QrsvcError,
    TransportError,
    error_class,
    parse_retry_after,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
#: The server's default item limit; a server with another one says so in a 413, and we adapt.
DEFAULT_BATCH_MAX_ITEMS = 1000
_LIMIT_IN_MESSAGE = re.compile(r"at most (\d+) items")

Item = str | Mapping[str, Any]


@dataclass
class BatchResult:
    """Results of a whole batch, in input order, however many requests it took."""

    count: int = 0
    failed: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)

    def image(self, index: int) -> bytes:
        """The image bytes of item `index` (JSON form only)."""
        return base64.b64decode(self.items[index]["image_base64"])


class Client:
    """A qrsvc server at `base_url` (default `QRSVC_URL`), with `api_key` (default `QRSVC_API_KEY`).

    `sleep` waits between retries (tests pass their own); `session` may be a
    prepared `requests.Session` (proxies, hooks).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_retry_after: float = 300.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = (base_url or os.environ.get("QRSVC_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("QRSVC_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.batch_max_items = DEFAULT_BATCH_MAX_ITEMS
        self.session = session or requests.Session()
        self._sleep = sleep

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # -- the API -----------------------------------------------------------------------

    def generate(self, data: str, *, metadata: bool = False, **options: Any) -> Any:
        """One code: its image bytes, or with `metadata=True` the JSON (id, image_url, base64 …)."""
        body = {"data": data, **options, "response": "json" if metadata else "image"}
        response = self.request("POST", "/v1/qr/generate", json=body, headers={"Accept": "*/*"})
        return response.json() if metadata else response.content

    def get(self, code_id: str) -> dict[str, Any]:
        """A stored code's metadata."""
        result: dict[str, Any] = self.request("GET", f"/v1/qr/{code_id}").json()
        return result

    def image(self, code_id: str, fmt: str = "png", **changes: Any) -> bytes:
        """A stored code's public image, in any format, with display changes (size, colours)."""
        return self.request(
            "GET", f"/v1/qr/{code_id}.{fmt}", params=changes, headers={"Accept": "*/*"}
        ).content

    def usage(self) -> dict[str, Any]:
        """The key's plan, rate limit and usage counters."""
        result: dict[str, Any] = self.request("GET", "/v1/account/usage").json()
        return result

    def batch(
        self,
        items: Sequence[Item],
        *,
        response: str = "json",
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        **defaults: Any,
    ) -> BatchResult:
        """Many codes: `items` are data strings or dicts (`data`, `filename`, any option).

        Lists longer than the server's limit are sent as several batches and the
        results stitched back in input order, with `index` counted over the whole
        list. `progress(n)` is called with the number of items finished so far.
        """
        result = BatchResult()
        for start, chunk_items, raw in self._send_chunks(items, response, chunk_size, defaults):
            body = json.loads(raw)
            for item in body["items"]:
                item["index"] += start
            result.items.extend(body["items"])
            result.count += body["count"]
            result.failed += body["failed"]
            if progress is not None:
                progress(start + len(chunk_items))
        return result

    def batch_zip(
        self,
        items: Sequence[Item],
        out: str | Path | IO[bytes],
        *,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        **defaults: Any,
    ) -> dict[str, Any]:
        """Many codes into one ZIP at `out` (however many batches it takes); returns its manifest.

        Items without a `filename` are named `qr-<index>` by their place in the
        whole list; a name used twice gets `-2`, `-3` … as the server does.
        """
        named = [
            item if "filename" in item else {**item, "filename": f"qr-{index:04d}"}
            for index, item in enumerate(_as_dicts(items))
        ]
        manifest: dict[str, Any] = {"count": 0, "failed": 0, "items": []}
        used: set[str] = set()
        with zipfile.ZipFile(out, "w") as archive:
            for start, chunk_items, raw in self._send_chunks(named, "zip", chunk_size, defaults):
                with zipfile.ZipFile(io.BytesIO(raw)) as part:
                    part_manifest = json.loads(part.read("manifest.json"))
                    for entry in part_manifest["items"]:
                        entry["index"] += start
                        if entry.get("filename"):
                            content = part.read(entry["filename"])
                            entry["filename"] = _unique(entry["filename"], used)
                            archive.writestr(entry["filename"], content)
                        manifest["items"].append(entry)
                manifest["count"] += part_manifest["count"]
                manifest["failed"] += part_manifest["failed"]
                if progress is not None:
                    progress(start + len(chunk_items))
            archive.writestr("manifest.json", json.dumps(manifest, indent=1))
        return manifest

    # -- plumbing ----------------------------------------------------------------------

    def _send_chunks(
        self,
        items: Sequence[Item],
        response: str,
        chunk_size: int | None,
        defaults: Mapping[str, Any],
    ) -> Iterator[tuple[int, list[dict[str, Any]], bytes]]:
        """(offset, items, body) of each batch request, split to fit the server's limits."""
        all_items = _as_dicts(items)
        start = 0
        while start < len(all_items):
            size = min(chunk_size or self.batch_max_items, self.batch_max_items)
            chunk = all_items[start : start + size]
            try:
                raw = self.request(
                    "POST",
                    "/v1/qr/batch",
                    json={**defaults, "items": chunk, "response": response},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                ).content
            except PayloadTooLargeError as exc:
                smaller = _smaller_batch(exc, len(chunk))
                if smaller is None:
                    raise
                self.batch_max_items = smaller
                continue
            yield start, chunk, raw
            start += len(chunk)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send with retries; the response of a success, else the `QrsvcError` of the last failure."""
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method, self.base_url + path, headers=headers, timeout=self.timeout, **kwargs
                )
            except requests.RequestException as exc:
                failure: QrsvcError = TransportError(
                    f"{method} {path}: {exc.__class__.__name__}: {exc}", error="transport_error"
                )
                delay = self._backoff(attempt)
            else:
                if response.status_code < 400:
                    return response
                failure = _error_from(response)
                if not (response.status_code == 429 or response.status_code >= 500):
                    failure.attempts = attempt
                    raise failure
                if failure.error == "quota_exceeded":  # not transient: it renews next month
                    raise failure
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self.max_retry_after:
                    raise failure
                # At least what the server asks, and never less than the backoff: a server that
                # says "0" must not be hammered.
                delay = max(retry_after or 0.0, self._backoff(attempt))
            if attempt > self.max_retries:
                failure.attempts = attempt
                failure.message = f"gave up after {attempt} attempts: {failure.message}"
                raise failure
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


def _as_dicts(items: Sequence[Item]) -> list[dict[str, Any]]:
    return [{"data": item} if isinstance(item, str) else dict(item) for item in items]


def _error_from(response: requests.Response) -> QrsvcError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or f"HTTP {response.status_code} {response.reason or ''}".strip()
    return error_class(response.status_code)(
        message,
        status=response.status_code,
        error=body.get("error") or "http_error",
        field=body.get("field"),
        headers=response.headers,
    )


def _smaller_batch(error: PayloadTooLargeError, sent: int) -> int | None:
    """The item count to try after a 413: the limit the server states, or half for a too-large body."""
    stated = error.headers.get("X-Batch-Max-Items")
    match = _LIMIT_IN_MESSAGE.search(error.message)
    limit = int(stated) if stated and stated.isdigit() else int(match.group(1)) if match else None
    if limit is None and error.error == "payload_too_large":
        limit = sent // 2
    return limit if limit is not None and 0 < limit < sent else None


def _unique(name: str, used: set[str]) -> str:
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    candidate, number = name, 2
    while candidate.casefold() in used:
        candidate = f"{stem}-{number}{dot}{extension}"
        number += 1
    used.add(candidate.casefold())
    return candidate


__all__ = ["DEFAULT_BASE_URL", "DEFAULT_BATCH_MAX_ITEMS", "BatchResult", "Client"]
