"""The `qrsvc` command: keys, database, servers and offline rendering."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from qrsvc import config
from qrsvc.client.cli import client as client_commands
from qrsvc.errors import ApiError


def _create_app() -> Flask:
    """The whole service, from the composition root's factory (`app.create`): commands see every
    integration's tables. `QRSVC_APP_MODULE` names another composition root (the client tests name
    a missing one to show that the client commands need no app)."""
    module = importlib.import_module(os.environ.get("QRSVC_APP_MODULE", "app"))
    create: Callable[[], Flask] = module.create
    return create()


keys = AppGroup("keys", help="Create, list and revoke API keys.")


@keys.command("create")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--plan", default=None, help="Plan name (default: QRSVC_DEFAULT_PLAN).")
@click.option("--scope", "scopes", multiple=True, help="Scope to grant; repeat. Default: all (*).")
def keys_create(name: str, plan: str | None, scopes: tuple[str, ...]) -> None:
    """Make a key; it is printed once, alone on the last line, and only its hash is kept."""
    from qrsvc.keys import create_key
    from qrsvc.transactions import unit_of_work

    plans = current_app.config["PLANS"]
    try:
        with unit_of_work():
            key, plain = create_key(name, plan or current_app.config["DEFAULT_PLAN"], scopes, list(plans))
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created key {key.prefix} ({key.name}, plan {key.plan}, scopes {' '.join(key.scopes)}).")
    click.echo("Store it now: it is shown only once.", err=True)
    click.echo(plain)


@keys.command("list")
def keys_list() -> None:
    """Prefix, name, plan, scopes and state of every key (never the secret)."""
    from qrsvc.clock import isoformat
    from qrsvc.keys import list_keys

    for key in list_keys():
        state = f"revoked {isoformat(key.revoked_at)}" if key.revoked_at else "active"
        click.echo(f"{key.prefix}\t{key.name}\t{key.plan}\t{','.join(key.scopes)}\t{state}")


@keys.command("revoke")
@click.argument("prefix")
def keys_revoke(prefix: str) -> None:
    """Revoke the key with PREFIX (as `keys list` shows it)."""
    from qrsvc.keys import revoke_key
    from qrsvc.transactions import unit_of_work

    try:
        with unit_of_work():
            key = revoke_key(prefix)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Revoked key {key.prefix} ({key.name}).")


@keys.command("demo")
def keys_demo() -> None:
    """Create a key named 'demo' on the first run (as `make run` does); later runs only say so."""
    import sqlalchemy as sa

    from qrsvc.extensions import db
    from qrsvc.keys import create_key
    from qrsvc.models import ApiKey
    from qrsvc.transactions import unit_of_work

    existing = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == "demo"))
    if existing is not None:
        click.echo(
            f"Demo key {existing.prefix} exists (shown once when made); `qrsvc keys create` makes another."
        )
        return
    plan = "pro" if "pro" in current_app.config["PLANS"] else current_app.config["DEFAULT_PLAN"]
    with unit_of_work():
        _key, plain = create_key("demo", plan, ["*"], list(current_app.config["PLANS"]))
    click.echo(f"Demo API key (plan {plan}), shown only this once:")
    click.echo(plain)


database = AppGroup("db", help="Database schema.")


@database.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema of the core and every integration."""
    from qrsvc.db import upgrade

    upgrade(current_app._get_current_object(), revision)  # type: ignore[attr-defined]
    click.echo("Database is up to date.")


@click.command("worker")
@click.option(
    "--once", is_flag=True, help="Run every job once and exit (cron, tests); status 1 if one failed."
)
@with_appcontext
def worker(once: bool) -> None:
    """The background process: outbox delivery, clean-ups. SIGTERM/SIGINT stop it after the current job."""
    from qrsvc.jobs import Worker

    loop = Worker(current_app._get_current_object())  # type: ignore[attr-defined]
    names = ", ".join(f"{job.name} every {job.interval:g} s" for job in loop.jobs)
    if once:
        failed = loop.run_once()
        if failed:
            raise click.ClickException(f"failed (see the log): {', '.join(failed)}")
        return
    signal.signal(signal.SIGTERM, loop.stop)
    signal.signal(signal.SIGINT, loop.stop)
    click.echo(f"worker started (pid {os.getpid()}): {names}", err=True)
    loop.run_forever()
    click.echo("worker stopped", err=True)


app_commands = (keys, database, worker)


@click.command("serve")
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="HOST or 127.0.0.1")
@click.option(
    "--port", default=lambda: int(os.environ.get("PORT", "8000")), type=int, show_default="PORT or 8000"
)
@click.option("--workers", default=lambda: int(os.environ.get("QRSVC_WORKERS", "2")), type=int)
@click.option(
    "--threads", default=lambda: config.setting("THREADS"), type=int, show_default="QRSVC_THREADS or 8"
)
@click.option(
    "--timeout", default=lambda: config.setting("TIMEOUT"), type=int, show_default="QRSVC_TIMEOUT or 30"
)
@click.option(
    "--worker-class",
    type=click.Choice(["thread", "sync"]),
    default=lambda: config.setting("WORKER_CLASS"),
    show_default="QRSVC_WORKER_CLASS or thread",
)
def serve(host: str, port: int, workers: int, threads: int, timeout: int, worker_class: str) -> None:
    """Serve with gunicorn (production): threaded workers, so slow clients hold a thread, not a worker.

    `sync` workers are a little faster but a slow client holds a whole worker: use them only
    behind a proxy that buffers requests (nginx). Access logs carry the path only.
    """
    if worker_class == "thread":
        model = [
            "--worker-class",
            "qrsvc.serving.ThreadWorker",
            "--threads",
            str(threads),
            # A worker holds no more connections than it has threads and closes each after its
            # response, as sync workers do: a kept-alive connection stays with one worker, and one
            # worker could hold them all while the other workers, and cores, stay idle.
            "--worker-connections",
            str(threads),
            "--keep-alive",
            "0",
        ]
    else:
        model = ["--worker-class", "sync"]
    arguments = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        *model,
        "--timeout",
        str(timeout),
        "--no-control-socket",  # several servers may share a machine (and tests start many)
        "--access-logfile",
        "-",
        "--logger-class",
        "qrsvc.serving.AccessLogger",
        os.environ.get("QRSVC_WSGI_APP", "app:create()"),  # gunicorn calls the factory in each worker
    ]
    os.execv(sys.executable, arguments)  # noqa: S606 (fixed argv, no shell)


@click.command("generate")
@click.argument("data")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--format", "fmt", default=None, help="png, svg, jpeg, webp or pdf (default: from the file name)."
)
@click.option("--size", default=512, show_default=True, type=int)
@click.option("--error-correction", default="M", show_default=True)
@click.option("--foreground", default="#000000", show_default=True)
@click.option("--background", default="#ffffff", show_default=True)
@click.option("--quiet-zone", default=4, show_default=True, type=int)
@click.option("--version", "min_version", default=None, type=int, help="Minimum symbol version.")
@click.option("--engine", default=lambda: os.environ.get("QRSVC_ENGINE", "zxing"), show_default="zxing")
def generate(
    data: str,
    output: Path,
    fmt: str | None,
    size: int,
    error_correction: str,
    foreground: str,
    background: str,
    quiet_zone: int,
    min_version: int | None,
    engine: str,
) -> None:
    """Render DATA to a file offline: no server, no key, same options and checks as the API."""
    from qrsvc.codes import make_image
    from qrsvc.options import Spec, parse_options

    if fmt is None:
        fmt = output.suffix.lstrip(".").lower().replace("jpg", "jpeg") or "png"
    fields: dict[str, object] = {
        "data": data,
        "format": fmt,
        "size": size,
        "error_correction": error_correction,
        "foreground": foreground,
        "background": background,
        "quiet_zone": quiet_zone,
    }
    if min_version is not None:
        fields["version"] = min_version
    try:
        options, _ = parse_options(fields, Spec())
        image = make_image(options, engine)
    except ApiError as exc:
        raise click.ClickException(f"{exc.field or 'error'}: {exc.message}") from None
    output.write_bytes(image.content)
    click.echo(
        f"Wrote {output} ({options.format}, version {image.symbol.version}, {len(image.content)} bytes)."
    )


cli = FlaskGroup(
    name="qrsvc",
    create_app=_create_app,
    add_default_commands=True,
    add_version_option=False,
    load_dotenv=False,
    help="qrsvc: a self-hosted QR code service.",
)
cli.add_command(serve)
cli.add_command(generate)
cli.add_command(client_commands)


def main() -> None:
    cli.main(prog_name="qrsvc")


if __name__ == "__main__":
    main()
