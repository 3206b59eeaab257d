"""`qrsvc client …`: batch jobs against a running server, from the command line. No Flask needed."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from qrsvc.client.client import DEFAULT_BASE_URL, Client
from qrsvc.client.errors import QrsvcError


@click.group("client")
@click.option(
    "--base-url",
    envvar="QRSVC_URL",
    default=DEFAULT_BASE_URL,
    show_default="QRSVC_URL or " + DEFAULT_BASE_URL,
    help="The server.",
)
@click.option("--api-key", envvar="QRSVC_API_KEY", help="API key (default: QRSVC_API_KEY).")
@click.pass_context
def client(ctx: click.Context, base_url: str, api_key: str | None) -> None:
    """Use a qrsvc server: make many codes from a CSV file, show usage."""
    ctx.meta["qrsvc.client"] = Client(base_url, api_key)


def _client(ctx: click.Context) -> Client:
    found: Client = ctx.meta["qrsvc.client"]
    return found


@client.command("batch")
@click.option(
    "--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--column", required=True, help="The column whose text each code encodes.")
@click.option("--filename-column", default=None, help="A column naming each image in the ZIP.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--format", "fmt", default=None, help="png, svg, jpeg, webp or pdf (server default: png).")
@click.option("--size", type=int, default=None)
@click.option("--error-correction", default=None, help="L, M, Q or H.")
@click.option("--foreground", default=None)
@click.option("--background", default=None)
@click.option("--quiet-zone", type=int, default=None)
@click.option(
    "--chunk-size",
    type=click.IntRange(1),
    default=250,
    show_default=True,
    help="Items a request (fewer requests, or a livelier progress bar).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a TTY).")
@click.pass_context
def batch_command(
    ctx: click.Context,
    /,
    csv_path: Path,
    column: str,
    filename_column: str | None,
    output: Path,
    chunk_size: int,
    progress: bool | None,
    **options: Any,
) -> None:
    """Encode one column of a CSV file into a ZIP of images with a manifest.json.

    Items the server refuses (too long, bad colour …) are listed on stderr and in
    the manifest; the others are written. Exit status 1 if any item failed.
    """
    rows = _read_rows(csv_path, column, filename_column)
    defaults = {key: value for key, value in options.items() if value is not None}
    if "fmt" in defaults:
        defaults["format"] = defaults.pop("fmt")
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm import tqdm

    with tqdm(total=len(rows), unit="code", disable=not show, file=sys.stderr) as bar:

        def advance(done: int) -> None:
            bar.update(done - bar.n)

        try:
            manifest = _client(ctx).batch_zip(
                rows, output, chunk_size=chunk_size, progress=advance, **defaults
            )
        except QrsvcError as exc:
            output.unlink(missing_ok=True)
            raise click.ClickException(str(exc)) from None
    for entry in manifest["items"]:
        if not entry["success"]:
            click.echo(f"row {entry['index'] + 2}: {entry['error']}: {entry['message']}", err=True)
    done = manifest["count"] - manifest["failed"]
    click.echo(f"Wrote {output}: {done} codes, {manifest['failed']} failed (see manifest.json).")
    if manifest["failed"]:
        ctx.exit(1)


def _read_rows(path: Path, column: str, filename_column: str | None) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        fields = reader.fieldnames or []
        for wanted in (column, filename_column):
            if wanted is not None and wanted not in fields:
                raise click.BadParameter(
                    f"no column {wanted!r}; the columns are: {', '.join(fields)}", param_hint="--column"
                )
        rows = []
        for row in reader:
            item = {"data": row[column] or ""}
            if filename_column is not None and row[filename_column]:
                item["filename"] = row[filename_column]
            rows.append(item)
    if not rows:
        raise click.ClickException(f"{path} has no rows under its header")
    return rows


@client.command("usage")
@click.pass_context
def usage_command(ctx: click.Context) -> None:
    """The key's plan, rate limit and usage, as JSON."""
    try:
        click.echo(json.dumps(_client(ctx).usage(), indent=2))
    except QrsvcError as exc:
        raise click.ClickException(str(exc)) from None


__all__ = ["client"]
