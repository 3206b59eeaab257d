"""The application factory: a table of contents for the core."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from qrsvc import auth, config, db, http, images, jobs, metrics, openapi, scans, usage
from qrsvc.descriptions import core_operations
from qrsvc.extensions import limiter
from qrsvc.http import register_error_handlers
from qrsvc.ratelimit_storage import limiter_storage_uri

#: Jinja templates of the core and of every integration (`templates/<integration>/…`).
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def create_app(
    overrides: Mapping[str, Any] | None = None,
    integrations: Iterable[ModuleType] = (),
) -> Flask:
    """Build the app from configuration; each integration module's `init_app` adds its part."""
    settings = config.load(overrides)
    app = Flask(
        "qrsvc",
        instance_path=settings["INSTANCE_PATH"],
        template_folder=str(TEMPLATES),
        static_folder=None,
    )
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    trust_proxies(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    for integration in integrations:
        integration.init_app(app)
    return app


def trust_proxies(app: Flask) -> None:
    """Behind QRSVC_TRUSTED_PROXIES proxies, the client's address is the X-Forwarded-For value they added.

    ProxyFix takes the value that many hops from the right (the one our own proxy appended)
    and ignores what a client wrote before it; it rewrites `REMOTE_ADDR` in the environ, which
    the limiter, `/metrics`' loopback check and gunicorn's access log all read.
    """
    hops: int = app.config["TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)  # type: ignore[method-assign]


def register_extensions(app: Flask) -> None:
    metrics.init_app(app)  # first: its timer starts before, and its count ends after, every other hook
    http.init_app(app)
    db.init_app(app)
    images.init_app(app)
    usage.init_app(app)
    jobs.init_app(app)
    scans.init_app(app)
    # Identify the caller before flask-limiter's own before_request counts the request.
    app.before_request(auth.identify_request)
    # after_request hooks run in reverse order: this one sees the limiter's headers.
    app.after_request(_retry_after_only_when_refused)
    app.config["RATELIMIT_STORAGE_URI"] = limiter_storage_uri(app.config["RATELIMIT_STORAGE_URL"])
    limiter.init_app(app)


def _retry_after_only_when_refused(response: Response) -> Response:
    """flask-limiter sets Retry-After on every response; it belongs on 429 (and 503) only.

    It also rounds the wait down (0.7 s left becomes `0`, an invitation to retry
    at once and be refused again), so a refusal gets the wait rounded up.
    """
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
        return response
    if response.status_code == 503:  # the error handler's wait, not the limiter's window
        response.headers["Retry-After"] = str(http.UNAVAILABLE_RETRY_AFTER)
        return response
    current = limiter.current_limit
    given = response.headers.get("Retry-After", "")
    if response.status_code == 429 and current is not None and given.isdigit():
        wait = math.ceil(current.window[0] - time.time())  # the exact reset time, not the header's
        response.headers["Retry-After"] = str(max(1, int(given), wait))
    return response


def register_blueprints(app: Flask) -> None:
    from qrsvc.api import bp
    from qrsvc.redirects import bp as redirects

    app.register_blueprint(bp)
    app.register_blueprint(redirects)
    from qrsvc.pages import bp as pages_bp  # the generator page and its keyless preview

    app.register_blueprint(pages_bp)
    openapi.register_operations(app, core_operations())
    from qrsvc.health import bp as health

    app.register_blueprint(health)


def register_commands(app: Flask) -> None:
    from qrsvc.cli import app_commands

    for command in app_commands:
        app.cli.add_command(command)
