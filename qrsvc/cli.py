"""The `qrsvc` command: keys, database, servers and offline rendering.

Every error is one line on stderr: status 2 for a usage error (an unknown option, a bad
value), 1 for anything else; `QRSVC_TRACEBACK=1` shows the traceback of an unexpected one.
Commands that use the database refuse, in one line, to run on one `qrsvc db upgrade` has
not brought up to date; nothing migrates behind your back.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo, run_command, with_appcontext

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


def _app() -> Flask:
    """The app of this invocation, made once (Flask's `ScriptInfo` keeps it)."""
    app: Flask = click.get_current_context().ensure_object(ScriptInfo).load_app()
    return app


class NotMigratedError(click.ClickException):
    """The database lacks tables or columns the code expects."""


def require_schema() -> None:
    """Stop, in one line, when the database is not migrated (or not there at all)."""
    from qrsvc.db import database_label, unapplied_heads

    app = _app()
    if unapplied_heads(app):
        raise NotMigratedError(
            f"the database {database_label(app)} is not migrated: run `qrsvc db upgrade` first"
        )


def _checked(command: click.Command) -> click.Command:
    """A copy of `command` (and of its subcommands) that first checks the schema; the original stays."""
    if isinstance(command, click.Group):
        group = copy.copy(command)
        group.commands = {name: _checked(sub) for name, sub in command.commands.items()}
        return group
    checked = copy.copy(command)
    callback = command.callback
    if callback is not None:

        @functools.wraps(callback)
        def run(*args: Any, **kwargs: Any) -> Any:
            require_schema()
            return callback(*args, **kwargs)

        checked.callback = run
    return checked


def _bad_value(exc: ApiError, hints: dict[str, str] | None = None) -> click.BadParameter:
    """An ApiError about one field, as a usage error naming the option it came from."""
    field = exc.field or "value"
    hint = (hints or {}).get(field, f"'--{field.replace('_', '-')}'")
    return click.BadParameter(exc.message, param_hint=hint)


keys = AppGroup("keys", help="Create, list and revoke API keys.")


@keys.command("create")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--plan", default=None, help="Plan name (default: QRSVC_DEFAULT_PLAN).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Scope to grant; repeat. Default: all (*). An unknown scope is refused with the valid ones.",
)
def keys_create(name: str, plan: str | None, scopes: tuple[str, ...]) -> None:
    """Make a key; it is printed once, alone on the last line, and only its hash is kept."""
    from qrsvc.auth import known_scopes
    from qrsvc.keys import create_key
    from qrsvc.transactions import unit_of_work

    plans = list(current_app.config["PLANS"])
    plan = plan or current_app.config["DEFAULT_PLAN"]
    if plan not in plans:
        raise click.BadParameter(f"unknown plan {plan!r}; plans: {', '.join(plans)}", param_hint="'--plan'")
    valid = known_scopes(current_app._get_current_object())  # type: ignore[attr-defined]
    unknown = [scope for scope in scopes if scope not in valid]
    if unknown:
        raise click.BadParameter(
            f"unknown scope {unknown[0]!r}; scopes: {', '.join(valid)}", param_hint="'--scope'"
        )
    try:
        with unit_of_work():
            key, plain = create_key(name, plan, scopes, plans)
    except ApiError as exc:
        raise _bad_value(exc) from None
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
    """Create or migrate the schema of the core and every integration; says so in one line."""
    from qrsvc.db import database_label, unapplied_heads, upgrade

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    from qrsvc.db import MigrationError

    behind = unapplied_heads(app)
    try:
        upgrade(app, revision)
    except MigrationError as exc:
        raise click.ClickException(f"db upgrade: {exc}") from None
    done = "migrated" if behind else "already"
    click.echo(f"Database {database_label(app)} is up to date ({done}).")


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
    # Through logging, so that QRSVC_LOG_FORMAT=json makes these JSON lines too.
    log = logging.getLogger("qrsvc.worker")
    log.info("worker started (pid %d): %s", os.getpid(), names, extra={"fields": {"outcome": "started"}})
    loop.run_forever()
    log.info("worker stopped", extra={"fields": {"outcome": "stopped"}})


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
    """Serve with gunicorn (production): slow clients hold a reader thread, never a worker.

    `sync` workers are no faster and a slow client holds a whole worker: use them only
    behind a proxy that buffers requests (nginx). Access logs carry the path only.
    """
    require_schema()
    _prepare_metrics(port)
    if worker_class == "thread":
        model = [
            "--worker-class",
            "qrsvc.serving.ThreadWorker",
            "--threads",
            str(threads),
        ]
    else:
        model = ["--worker-class", "qrsvc.serving.SyncWorker"]
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
        "--config",
        "python:qrsvc.gunicorn_config",
        os.environ.get("QRSVC_WSGI_APP", "app:create()"),  # gunicorn calls the factory in each worker
    ]
    os.execv(sys.executable, arguments)  # noqa: S606 (fixed argv, no shell)


def _prepare_metrics(port: int) -> None:
    """Give the workers a multiprocess metrics folder, emptied of a previous run's values.

    `$PROMETHEUS_MULTIPROC_DIR` when set, else `metrics/<port>` in the instance folder:
    each server on a machine gets its own, so two of them never add up each other's counts.
    A `qrsvc worker` given the same folder adds its outbox counts to the scrapes; the files of
    processes still running (such a worker) are kept, those of processes gone are removed.
    """
    from qrsvc.metrics import MULTIPROC_ENV

    given = os.environ.get(MULTIPROC_ENV)
    folder = Path(given) if given else Path(_app().instance_path) / "metrics" / str(port)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        if not _running(stale.stem.rsplit("_", 1)[-1]):
            stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)


def _running(pid: str) -> bool:
    """Whether the process a metrics file is named after (`counter_<pid>.db`) still runs."""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


@click.command("generate")
@click.argument("data")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    required=True,
    help="The file to write; `-` writes the image to standard output.",
)
@click.option(
    "--format", "fmt", default=None, help="png, svg, jpeg, webp or pdf (default: from the file name)."
)
@click.option("--size", default=512, show_default=True, type=int)
@click.option("--error-correction", default="M", show_default=True)
@click.option("--foreground", default="#000000", show_default=True)
@click.option("--background", default="#ffffff", show_default=True)
@click.option("--quiet-zone", default=4, show_default=True, type=int)
@click.option("--version", "min_version", default=None, type=int, help="Minimum symbol version.")
@click.option(
    "--engine",
    type=click.Choice(["zxing", "qrcode"]),
    default=lambda: os.environ.get("QRSVC_ENGINE", "zxing"),
    show_default="QRSVC_ENGINE or zxing",
)
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

    to_stdout = str(output) == "-"
    if fmt is None:
        fmt = "png" if to_stdout else output.suffix.lstrip(".").lower().replace("jpg", "jpeg") or "png"
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
        raise _bad_value(exc, {"data": "DATA", "version": "'--version'"}) from None
    summary = f"({options.format}, version {image.symbol.version}, {len(image.content)} bytes)"
    if to_stdout:
        sys.stdout.buffer.write(image.content)
        sys.stdout.buffer.flush()
        click.echo(f"Wrote the image to standard output {summary}.", err=True)
        return
    try:
        output.write_bytes(image.content)
    except OSError as exc:
        raise click.FileError(str(output), exc.strerror) from None
    click.echo(f"Wrote {output} {summary}.")


class Qrsvc(click.Group):
    """The `qrsvc` group: our commands and the integrations' (from `app.cli`), nothing of Flask's own.

    Flask's `FlaskGroup` would add `--app`, `--env-file`, `routes`, `shell` and flask-limiter's
    `limiter`; this group keeps Flask's `ScriptInfo` so `AppGroup` commands find the app.
    """

    #: Commands extensions add to `app.cli` that are not part of qrsvc.
    HIDDEN = frozenset({"limiter", "routes", "shell"})
    #: App commands that work on a database that is not migrated yet.
    NO_SCHEMA = frozenset({"db"})

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        os.environ["FLASK_RUN_FROM_CLI"] = "true"  # as FlaskGroup: `app.run()` does nothing under `run`
        extra.setdefault("obj", ScriptInfo(create_app=_create_app, load_dotenv_defaults=False))
        return super().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx)) | set(_app().cli.list_commands(ctx))
        return sorted(names - self.HIDDEN)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.HIDDEN:
            return None
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        app = _app()
        ctx.with_resource(app.app_context())
        command = app.cli.get_command(ctx, name)
        if command is None or name in self.NO_SCHEMA:
            return command
        return _checked(command)


cli = Qrsvc(name="qrsvc", help="qrsvc: a self-hosted QR code service.")
cli = click.version_option(
    importlib.metadata.version("qrsvc"), "--version", prog_name="qrsvc", message="%(prog)s %(version)s"
)(cli)
cli.add_command(serve)
cli.add_command(_checked(run_command))
cli.add_command(generate)
cli.add_command(client_commands)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _metrics_folder() -> None:
    """Make $PROMETHEUS_MULTIPROC_DIR if it is set: the app writes its metrics files there from the start."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)


def main(args: Sequence[str] | None = None) -> None:
    """Run `qrsvc`; whatever fails is said in one line on stderr, with status 2 (usage) or 1."""
    from sqlalchemy.exc import DBAPIError

    try:
        _metrics_folder()
        status = cli.main(args=args, prog_name="qrsvc", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        status = 0
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "qrsvc"
        click.echo(f"{where}: {_one_line(exc.format_message())} (see '{where} --help')", err=True)
        status = 2
    except click.ClickException as exc:
        click.echo(f"qrsvc: {_one_line(exc.format_message())}", err=True)
        status = exc.exit_code
    except click.Abort:
        click.echo("qrsvc: interrupted", err=True)
        status = 1
    except config.ConfigError as exc:
        click.echo(f"qrsvc: configuration: {_one_line(str(exc))}", err=True)
        status = 1
    except DBAPIError as exc:
        if os.environ.get("QRSVC_TRACEBACK"):
            raise
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        click.echo(f"qrsvc: database error: {first} (is the database migrated and reachable?)", err=True)
        status = 1
    except OSError as exc:
        if os.environ.get("QRSVC_TRACEBACK"):
            raise
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"qrsvc: {exc.strerror or exc}{where}", err=True)
        status = 1
    except Exception as exc:
        if os.environ.get("QRSVC_TRACEBACK"):
            raise
        message = _one_line(f"{type(exc).__name__}: {exc}")
        click.echo(f"qrsvc: unexpected error: {message} (QRSVC_TRACEBACK=1 shows where)", err=True)
        status = 1
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
