"""Every setting, its default and its `QRSVC_*` environment variable, in one place."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qrsvc import ratelimit_storage


@dataclass(frozen=True, slots=True)
class Plan:
    """What a key may do: requests a minute (sliding window) and codes a calendar month.

    `window_seconds` shortens or lengthens the window: the plan then allows
    `requests_per_minute` requests per `window_seconds` (tests use a 2-second window).
    """

    name: str
    requests_per_minute: int
    codes_per_month: int
    window_seconds: int = 60

    @property
    def rate_limit(self) -> str:
        """The limit in flask-limiter's notation: `30/minute`, or `3 per 2 seconds`."""
        if self.window_seconds == 60:
            return f"{self.requests_per_minute}/minute"
        return f"{self.requests_per_minute} per {self.window_seconds} seconds"


DEFAULT_PLANS = {
    "free": {"requests_per_minute": 30, "codes_per_month": 1_000},
    "pro": {"requests_per_minute": 500, "codes_per_month": 100_000},
    "business": {"requests_per_minute": 5_000, "codes_per_month": 5_000_000},
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One configuration key, read from `QRSVC_<key>`; the README's table lists them all."""

    key: str
    default: Any
    parse: Callable[[str], Any] = str
    doc: str = ""

    @property
    def variable(self) -> str:
        return f"QRSVC_{self.key}"

    def read(self, environ: Mapping[str, str]) -> Any:
        if self.variable not in environ:
            return self.default
        try:
            return self.parse(environ[self.variable])
        except ValueError as exc:
            raise ConfigError(f"{self.variable}={environ[self.variable]!r}: {exc}") from None


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable (`qrsvc` prints it as one line)."""


def apply_settings(
    config: dict[str, Any], settings: Iterable[Setting], environ: Mapping[str, str] | None = None
) -> None:
    """Fill `config` from the environment where a key is not already set (integrations use this)."""
    environ = os.environ if environ is None else environ
    for setting in settings:
        if setting.key not in config:
            config[setting.key] = setting.read(environ)


CORE_SETTINGS = (
    Setting(
        "INSTANCE_PATH",
        None,
        doc="folder for the SQLite file and local state; default $XDG_DATA_HOME/qrsvc (~/.local/share/qrsvc)",
    ),
    Setting("DATABASE_URL", None, doc="SQLAlchemy URL; default SQLite in the instance folder"),
    Setting(
        "SQLITE_SYNCHRONOUS",
        "NORMAL",
        str.upper,
        "SQLite database (WAL): NORMAL keeps every commit through a crash of the process; "
        "FULL also through a power loss, at an fsync a commit",
    ),
    Setting(
        "RATELIMIT_STORAGE_URL",
        None,
        doc="flask-limiter storage, e.g. redis://host:6379; default a SQLite file in the instance folder",
    ),
    Setting("PUBLIC_BASE_URL", None, doc="origin used in image_url and links; default: the request's host"),
    Setting("ENGINE", "zxing", doc="QR encoder: zxing (fast) or qrcode (pure-Python reference)"),
    Setting(
        "PLANS",
        DEFAULT_PLANS,
        json.loads,
        "JSON: plan → requests_per_minute, codes_per_month (and optional window_seconds, default 60)",
    ),
    Setting("DEFAULT_PLAN", "free", doc="plan given to keys created without --plan"),
    Setting(
        "KEY_CACHE_SECONDS",
        1.0,
        float,
        "seconds (0 to 1) a worker trusts an API key it looked up; a revocation made elsewhere "
        "takes effect within it (0: look up on every request)",
    ),
    Setting("PUBLIC_RATE_LIMIT", "600/minute", doc="per-IP limit for requests without a valid key"),
    Setting(
        "REDIRECT_RATE_LIMIT",
        "600/minute",
        doc="per-address limit on `/r/<code>` redirects (known or not); more: a small 429 page",
    ),
    Setting(
        "TRUSTED_PROXIES",
        0,
        int,
        "proxies in front (nginx: 1) whose X-Forwarded-For is believed for the client's address "
        "(limits, logs, /metrics' loopback check); 0: the header is ignored",
    ),
    Setting("MAX_BODY_BYTES", 4 * 1024 * 1024, int, "larger request bodies get 413"),
    Setting("MIN_SIZE", 64, int, "smallest image size accepted"),
    Setting("MAX_SIZE", 4096, int, "largest image size accepted"),
    Setting("PAGE_SIZE_MAX", 100, int, "most records one page of a list returns"),
    Setting("LOG_LEVEL", "INFO", doc="logging level"),
    Setting("LOG_FORMAT", "plain", doc="plain (one line of text a record) or json (one JSON object a line)"),
    Setting(
        "METRICS_TOKEN",
        None,
        doc="`/metrics` answers only `Authorization: Bearer <token>`; unset: only loopback callers",
    ),
    Setting("THREADS", 8, int, "reader threads of a `qrsvc serve` worker, for chunked and large bodies"),
    Setting(
        "WORKER_CLASS",
        "thread",
        doc="`qrsvc serve` workers: thread (survives slow clients) or sync (only behind a buffering proxy)",
    ),
    Setting(
        "TIMEOUT",
        30,
        int,
        "`qrsvc serve`: seconds a read or write may stall, and a request may run before its worker is killed",
    ),
    Setting("BATCH_MAX_ITEMS", 1000, int, "most items one POST /v1/qr/batch may hold (more: 413)"),
    Setting(
        "BATCH_MAX_PIXELS",
        1000 * 1024 * 1024,
        int,
        "most pixels (sum of size squared) one batch may ask for (more: 413); bounds its CPU and memory",
    ),
    Setting(
        "BATCH_MAX_INLINE_BYTES",
        64 * 1024 * 1024,
        int,
        "most bytes of base64 images one JSON batch response may carry "
        '(more: 413 response_too_large; use "response": "url" or "zip")',
    ),
    Setting(
        "RENDER_PROCESSES",
        None,
        int,
        "processes a web worker renders large batches with (default: the machine's cores; 1: none)",
    ),
    Setting("RENDER_POOL_MIN_ITEMS", 64, int, "smallest batch worth sending to the render processes"),
    Setting("RENDER_CACHE_BYTES", 32 * 1024 * 1024, int, "per-process cache of rendered images; 0: none"),
)


def setting(key: str, environ: Mapping[str, str] | None = None) -> Any:
    """One core setting's value from the environment, before any app exists (`qrsvc serve` uses this)."""
    (found,) = (s for s in CORE_SETTINGS if s.key == key)
    return found.read(os.environ if environ is None else environ)


def default_instance_path(environ: Mapping[str, str]) -> Path:
    """`$XDG_DATA_HOME/qrsvc`, or `~/.local/share/qrsvc` when it is unset or empty (XDG base directories).

    Never relative to the current directory: `qrsvc` run from anywhere, `make run` and an
    installed package all find the same keys and codes.
    """
    data_home = environ.get("XDG_DATA_HOME", "")
    if data_home and Path(data_home).is_absolute():  # the spec says to ignore a relative path
        return Path(data_home) / "qrsvc"
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "share" / "qrsvc"


def load(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Defaults, then the environment, then `overrides` (tests pass their own)."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = dict(overrides or {})
    apply_settings(config, CORE_SETTINGS, environ)
    instance = Path(config["INSTANCE_PATH"] or default_instance_path(environ)).resolve()
    config["INSTANCE_PATH"] = str(instance)
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{instance / 'qrsvc.sqlite3'}"
    if not config["RATELIMIT_STORAGE_URL"]:
        # One window per key for every worker of this instance; `memory://` would be one per worker.
        config["RATELIMIT_STORAGE_URL"] = ratelimit_storage.storage_url(instance / "ratelimits.sqlite3")
    if config["LOG_FORMAT"] not in ("plain", "json"):
        raise ConfigError(f"QRSVC_LOG_FORMAT must be 'plain' or 'json', not {config['LOG_FORMAT']!r}")
    if config["SQLITE_SYNCHRONOUS"] not in ("NORMAL", "FULL"):
        raise ConfigError(
            f"QRSVC_SQLITE_SYNCHRONOUS must be 'NORMAL' or 'FULL', not {config['SQLITE_SYNCHRONOUS']!r}"
        )
    if config["ENGINE"] not in ("zxing", "qrcode"):
        raise ConfigError(f"QRSVC_ENGINE must be 'zxing' or 'qrcode', not {config['ENGINE']!r}")
    config["PLANS"] = {
        name: p
        if isinstance(p, Plan)
        else Plan(
            name,
            int(p["requests_per_minute"]),
            int(p["codes_per_month"]),
            int(p.get("window_seconds", 60)),
        )
        for name, p in config["PLANS"].items()
    }
    if config["TRUSTED_PROXIES"] < 0:
        raise ConfigError(f"QRSVC_TRUSTED_PROXIES must be 0 or more, not {config['TRUSTED_PROXIES']}")
    if not 0 <= config["KEY_CACHE_SECONDS"] <= 1:
        raise ConfigError(
            "QRSVC_KEY_CACHE_SECONDS must be from 0 to 1 (a revoked key is refused within it), "
            f"not {config['KEY_CACHE_SECONDS']}"
        )
    if config["RENDER_PROCESSES"] is None:
        config["RENDER_PROCESSES"] = os.cpu_count() or 1
    if config["DEFAULT_PLAN"] not in config["PLANS"]:
        raise ConfigError(f"QRSVC_DEFAULT_PLAN {config['DEFAULT_PLAN']!r} is not in QRSVC_PLANS")
    return config
