"""Prometheus metrics: one registry per app, its request hooks and the protected `/metrics` view.

Under `qrsvc serve` every gunicorn worker is its own process; `PROMETHEUS_MULTIPROC_DIR`
(set up by `qrsvc serve` in the instance folder) makes prometheus_client keep each
worker's values in a file there, and a scrape, answered by any worker, adds them all up.
Without it (tests, `flask run`) the values live in the process.

Requests are labelled by URL rule (`/v1/qr/<code_id>`), never by the raw path: a path
holds ids and whatever a client sends, which would make a new series per request.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

from flask import Flask, Response, current_app, g, has_app_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from werkzeug.exceptions import NotFound

#: Environment variable prometheus_client reads, at import, to pick multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LOOPBACK = frozenset({"127.0.0.1", "::1"})
_UNMATCHED = "unmatched"


class Metrics:
    """The service's counters and histograms, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "qrsvc_http_requests",
            "HTTP requests answered, by URL rule, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "qrsvc_http_request_duration_seconds",
            "Time from the first request hook to the response, by URL rule, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.refusals = Counter(
            "qrsvc_rate_limit_refusals",
            "Requests refused by a rate limit (429), by URL rule.",
            ["route"],
            registry=self.registry,
        )
        self.rendered = Counter(
            "qrsvc_codes_rendered",
            "QR code images produced (rendered or from the render cache), by format.",
            ["format"],
            registry=self.registry,
        )
        self.batch_items = Histogram(
            "qrsvc_batch_items",
            "Items in each accepted POST /v1/qr/batch.",
            registry=self.registry,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
        )
        self.cache_hits = Counter(
            "qrsvc_render_cache_hits",
            "Images taken from the per-process render cache.",
            registry=self.registry,
        )

    def counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        """A further counter in this registry (integrations ask through the toolkit)."""
        return Counter(name, documentation, list(labels), registry=self.registry)

    def exposition(self) -> bytes:
        """The text a scrape gets: every worker's values when in multiprocess mode."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def init_app(app: Flask) -> None:
    """Register first, so the timer starts before any other hook and the count sees the final status."""
    app.extensions["qrsvc_metrics"] = Metrics()
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", _metrics_view)


def _metrics() -> Metrics | None:
    if not has_app_context():
        return None
    found: Metrics | None = current_app.extensions.get("qrsvc_metrics")
    return found


def counter(
    name: str, documentation: str, labels: tuple[str, ...] = (), *, app: Flask | None = None
) -> Counter:
    """A counter of `app`'s registry (default: the current app's), made by an integration's `init_app`."""
    found: Metrics = (app or current_app).extensions["qrsvc_metrics"]
    return found.counter(name, documentation, labels)


def count_rendered(fmt: str) -> None:
    """One image produced in `fmt` (outside an app, e.g. `qrsvc generate`, nothing is counted)."""
    metrics = _metrics()
    if metrics is not None:
        metrics.rendered.labels(fmt).inc()


def count_cache_hits(hits: int) -> None:
    """Images a batch or request took from the render cache."""
    metrics = _metrics()
    if metrics is not None and hits:
        metrics.cache_hits.inc(hits)


def observe_batch(items: int) -> None:
    """The size of a batch about to be generated."""
    metrics = _metrics()
    if metrics is not None:
        metrics.batch_items.observe(items)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    metrics: Metrics = current_app.extensions["qrsvc_metrics"]
    rule = request.url_rule
    route = rule.rule if rule is not None else _UNMATCHED
    status = str(response.status_code)
    metrics.requests.labels(route, request.method, status).inc()
    started: float | None = g.get("metrics_started")
    if started is not None:
        metrics.duration.labels(route, request.method, status).observe(time.perf_counter() - started)
    if response.status_code == 429:
        metrics.refusals.labels(route).inc()
    return response


def _allowed() -> bool:
    """With a token set, only `Authorization: Bearer <token>`; without one, only loopback callers."""
    token: str | None = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    return request.remote_addr in _LOOPBACK


def _metrics_view() -> Any:
    if not _allowed():
        raise NotFound()  # the same answer as any unknown URL
    metrics: Metrics = current_app.extensions["qrsvc_metrics"]
    return Response(metrics.exposition(), mimetype=None, content_type=CONTENT_TYPE_LATEST)


__all__ = [
    "MULTIPROC_ENV",
    "Metrics",
    "count_cache_hits",
    "count_rendered",
    "counter",
    "init_app",
    "observe_batch",
]
