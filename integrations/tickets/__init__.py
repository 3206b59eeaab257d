"""Ticketing: events, signed ticket JWTs drawn as stored codes, gate scanning exactly once.

`init_app(app)` registers the blueprints, the QRSVC_TICKETS_* settings, the
migrations and the `qrsvc signing-keys` commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import AppGroup

from qrsvc.toolkit import Setting, add_migrations, apply_settings, metrics_counter, register_operations

if TYPE_CHECKING:
    from flask import Flask


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


SETTINGS = (
    Setting("TICKETS_SIGNING_ALG", "EdDSA", doc="algorithm of new signing keys: EdDSA (Ed25519) or ES256"),
    Setting(
        "TICKETS_ALGORITHMS",
        ("EdDSA", "ES256"),
        _names,
        "comma-separated algorithms accepted when verifying (never HS* or none)",
    ),
    Setting(
        "TICKETS_SIGNING_KEY_FILE",
        None,
        doc="PEM private key (Ed25519 or P-256) to sign with instead of keys in the database",
    ),
    Setting("TICKETS_CLOCK_LEEWAY", 30, int, "seconds of clock skew tolerated on exp/nbf/iat"),
    Setting(
        "TICKETS_OFFLINE_CLOCK_SKEW",
        300,
        int,
        "seconds an offline scan's scanned_at may lie ahead of the server's clock",
    ),
    Setting(
        "TICKETS_EXPIRY_GRACE", 6 * 3600, int, "seconds after an event's end that its tickets stay valid"
    ),
    Setting(
        "TICKETS_VALID_BEFORE_START",
        24 * 3600,
        int,
        "seconds before an event's start that tickets become valid",
    ),
    Setting("TICKETS_QR_EC", "M", doc="error correction of ticket codes: M or Q"),
    Setting("TICKETS_QR_SIZE", 512, int, "pixel size of the stored ticket code image"),
    Setting("TICKETS_BATCH_LIMIT", 1000, int, "most tickets (or offline scans) in one request"),
    Setting("TICKETS_JWKS_MAX_AGE", 300, int, "Cache-Control max-age of /.well-known/jwks.json"),
)

signing_keys = AppGroup("signing-keys", help="Ticket signing keys: list, rotate, retire.")


@signing_keys.command("list")
def keys_list() -> None:
    """Kid, algorithm, created time and state of every signing key (never the private key)."""
    from qrsvc.toolkit import isoformat

    from .tokens import list_keys

    for key in list_keys():
        state = f"retired {isoformat(key.retired_at)}" if key.retired_at else "active"
        where = "database" if key.private_pem else "key file"
        click.echo(f"{key.kid}\t{key.alg}\t{isoformat(key.created_at)}\t{where}\t{state}")


@signing_keys.command("rotate")
@click.option("--alg", default=None, help="EdDSA or ES256 (default: QRSVC_TICKETS_SIGNING_ALG).")
def keys_rotate(alg: str | None) -> None:
    """Make a new current key; older keys stay published and verify until retired."""
    from .tokens import rotate

    try:
        key = rotate(alg)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if current_app.config["TICKETS_SIGNING_KEY_FILE"]:
        click.echo(
            "Note: QRSVC_TICKETS_SIGNING_KEY_FILE is set, so new tickets keep using the file's key.", err=True
        )
    click.echo(f"New signing key ({key.alg}):")
    click.echo(key.kid)


@signing_keys.command("retire")
@click.argument("kid")
def keys_retire(kid: str) -> None:
    """Stop publishing KID; tokens it signed no longer verify."""
    from qrsvc.toolkit import unit_of_work

    from .tokens import retire

    try:
        with unit_of_work():
            key = retire(kid)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Retired signing key {key.kid}.")


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (tables on the metadata)
    from .openapi import OPERATIONS
    from .scanner import bp as scanner
    from .views import bp, wellknown

    apply_settings(app.config, SETTINGS)
    config = app.config
    if isinstance(config["TICKETS_ALGORITHMS"], str):
        config["TICKETS_ALGORITHMS"] = _names(config["TICKETS_ALGORITHMS"])
    unsafe = [alg for alg in config["TICKETS_ALGORITHMS"] if alg not in ("EdDSA", "ES256")]
    if unsafe:
        raise ValueError(f"QRSVC_TICKETS_ALGORITHMS may list only EdDSA and ES256, not {', '.join(unsafe)}")
    if config["TICKETS_SIGNING_ALG"] not in config["TICKETS_ALGORITHMS"]:
        raise ValueError("QRSVC_TICKETS_SIGNING_ALG must be one of QRSVC_TICKETS_ALGORITHMS")
    if config["TICKETS_QR_EC"] not in ("M", "Q"):
        # L is too fragile for a printed, folded ticket; H makes a ~400-character token too dense.
        raise ValueError("QRSVC_TICKETS_QR_EC must be M or Q")
    app.extensions["tickets_scans"] = metrics_counter(
        "qrsvc_ticket_scans",
        "Ticket scans written to the scan log (once committed), by result and mode (online, offline).",
        ("result", "mode"),
        app=app,
    )
    app.register_blueprint(bp)
    app.register_blueprint(wellknown)
    app.register_blueprint(scanner)
    register_operations(app, OPERATIONS)
    app.cli.add_command(signing_keys)
    add_migrations(app, Path(__file__).parent / "migrations" / "versions")


__all__ = ["SETTINGS", "init_app"]
