"""The `qrsvc` command as a user runs it: keys, db upgrade, offline generate."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli, decode, postgres_schema


def test_db_upgrade_then_keys_create_list_revoke(tmp_path: Path) -> None:
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path)}
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "qrsvc.sqlite3").exists()
    assert cli("db", "upgrade", env=env).returncode == 0  # idempotent

    created = cli("keys", "create", "--name", "ci", "--plan", "pro", "--scope", "qr:read", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("qrs_")
    prefix = key.split("_")[1]

    listed = cli("keys", "list", env=env)
    assert prefix in listed.stdout
    assert "ci" in listed.stdout and "qr:read" in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout + listed.stderr
    assert key.split("_", 2)[2] not in (tmp_path / "qrsvc.sqlite3").read_bytes().decode("latin-1")

    revoked = cli("keys", "revoke", prefix, env=env)
    assert revoked.returncode == 0
    assert "revoked" in cli("keys", "list", env=env).stdout

    assert cli("keys", "revoke", "nosuchkey0", env=env).returncode != 0
    bad_plan = cli("keys", "create", "--name", "x", "--plan", "platinum", env=env)
    assert bad_plan.returncode != 0
    assert "unknown plan" in bad_plan.stderr


def test_demo_key_is_made_once(tmp_path: Path) -> None:
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path)}
    assert cli("db", "upgrade", env=env).returncode == 0
    first = cli("keys", "demo", env=env)
    assert first.stdout.strip().splitlines()[-1].startswith("qrs_")
    second = cli("keys", "demo", env=env)
    assert "qrs_" not in second.stdout
    assert "exists" in second.stdout


@pytest.mark.parametrize("fmt", ["png", "svg", "jpeg", "webp", "pdf"])
def test_generate_renders_offline(tmp_path: Path, fmt: str) -> None:
    output = tmp_path / f"code.{fmt}"
    result = cli(
        "generate",
        "https://example.com/offline ✓",
        "-o",
        str(output),
        "--size",
        "300",
        "--error-correction",
        "H",
        env={"QRSVC_INSTANCE_PATH": str(tmp_path / "none")},
    )
    assert result.returncode == 0, result.stderr
    assert decode(output.read_bytes(), fmt) == ["https://example.com/offline ✓"]
    assert not (tmp_path / "none").exists()  # no database needed


def test_generate_reports_bad_options(tmp_path: Path) -> None:
    result = cli("generate", "x" * 3000, "-o", str(tmp_path / "x.png"), "--error-correction", "H", env={})
    assert result.returncode != 0
    assert "at most 1273 bytes" in result.stderr


# --- A CLI without tracebacks (issue 11, item 7) -------------------------------------------------

QRSVC = Path(sys.executable).with_name("qrsvc")  # the console script, as installed


def qrsvc(*args: str, cwd: Path, env: dict[str, str], text: bool = True) -> subprocess.CompletedProcess[Any]:
    """The installed `qrsvc` run from `cwd`, with `env` over a environment without QRSVC_INSTANCE_PATH."""
    base = {k: v for k, v in os.environ.items() if k != "QRSVC_INSTANCE_PATH"}
    return subprocess.run(
        [str(QRSVC), *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=text,
        timeout=120,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The result failed with `status` and said why in one line on stderr, and nothing on stdout."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def migrated(tmp_path: Path) -> dict[str, str]:
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
    assert qrsvc("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    return env


def test_the_instance_folder_does_not_depend_on_the_current_directory(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path / "home")}
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    assert qrsvc("db", "upgrade", cwd=here, env=env).returncode == 0
    created = qrsvc("keys", "create", "--name", "elsewhere", cwd=there, env=env)
    assert created.returncode == 0, created.stderr
    assert "elsewhere" in qrsvc("keys", "list", cwd=ROOT, env=env).stdout
    assert (tmp_path / "data" / "qrsvc" / "qrsvc.sqlite3").is_file()
    assert not (here / "instance").exists() and not (there / "instance").exists()
    # Without XDG_DATA_HOME: ~/.local/share/qrsvc, as the XDG base directory spec says.
    home = {"HOME": str(tmp_path / "home")}
    base = {k: v for k, v in env.items() if k != "XDG_DATA_HOME"}
    assert qrsvc("db", "upgrade", cwd=here, env={**base, **home, "XDG_DATA_HOME": ""}).returncode == 0
    assert (tmp_path / "home" / ".local" / "share" / "qrsvc" / "qrsvc.sqlite3").is_file()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    "command",
    [("keys", "list"), ("keys", "demo"), ("keys", "revoke", "abc"), ("worker", "--once"), ("serve",)],
)
def test_a_database_that_is_not_migrated_says_to_run_db_upgrade(
    tmp_path: Path, backend: str, command: tuple[str, ...]
) -> None:
    with contextlib.ExitStack() as stack:
        env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
        if backend == "postgresql":
            env["QRSVC_DATABASE_URL"] = stack.enter_context(postgres_schema("qrsvc_cli"))
        line = one_line_error(qrsvc(*command, cwd=tmp_path, env=env), 1)
    assert "not migrated" in line and "qrsvc db upgrade" in line
    assert not (tmp_path / "instance" / "qrsvc.sqlite3").exists()  # no empty database left behind


def test_db_upgrade_prints_one_line(tmp_path: Path) -> None:
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
    for _ in range(2):
        result = qrsvc("db", "upgrade", cwd=tmp_path, env=env)
        assert result.returncode == 0
        output = (result.stdout + result.stderr).strip().splitlines()
        assert len(output) == 1, output
        assert "up to date" in output[0] and str(tmp_path / "instance" / "qrsvc.sqlite3") in output[0]


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (("generate", "x", "-o", "/missing/x.png"), 1, "/missing/x.png"),
        (("generate", "x", "-o", "{tmp}/x.png", "--engine", "foo"), 2, "--engine"),
        (("generate", "x", "-o", "{tmp}/x.png", "--foreground", "nocolour"), 2, "--foreground"),
        (("generate", "x", "-o", "{tmp}/x.png", "--background", "#12"), 2, "--background"),
        (("generate", "x", "-o", "{tmp}/x.png", "--size", "big"), 2, "--size"),
        (("generate", "x", "-o", "{tmp}/x.png", "--size", "5"), 2, "--size"),
        (("generate", "x", "-o", "{tmp}/x.gif"), 2, "--format"),
        (("generate", "x" * 3000, "-o", "{tmp}/x.png", "--error-correction", "H"), 2, "at most 1273 bytes"),
        (("generate", "x"), 2, "-o"),
        (("nosuchcommand",), 2, "nosuchcommand"),
        (("keys", "create", "--name", "x", "--plan", "platinum"), 2, "unknown plan 'platinum'"),
        (("keys", "revoke", "nosuchkey0"), 1, "nosuchkey0"),
    ],
)
def test_every_error_is_one_line_with_status_1_or_2(
    tmp_path: Path, migrated: dict[str, str], args: tuple[str, ...], status: int, says: str
) -> None:
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    line = one_line_error(qrsvc(*args, cwd=tmp_path, env=migrated), status)
    assert says in line


def test_unknown_scopes_are_refused_with_the_valid_ones(tmp_path: Path, migrated: dict[str, str]) -> None:
    refused = qrsvc("keys", "create", "--name", "x", "--scope", "bogus", cwd=tmp_path, env=migrated)
    line = one_line_error(refused, 2)
    assert "bogus" in line
    for scope in ("*", "qr:read", "qr:write", "tickets", "tickets:scan", "shop:read", "shop:write", "crm"):
        assert f" {scope}" in line or f"{scope}," in line, scope
    assert "bogus" not in qrsvc("keys", "list", cwd=tmp_path, env=migrated).stdout
    accepted = qrsvc(
        "keys",
        "create",
        "--name",
        "gate",
        "--scope",
        "tickets:scan",
        "--scope",
        "crm",
        cwd=tmp_path,
        env=migrated,
    )
    assert accepted.returncode == 0, accepted.stderr


def test_version(tmp_path: Path) -> None:
    result = qrsvc("--version", cwd=tmp_path, env={})
    assert result.returncode == 0
    assert result.stdout.strip() == f"qrsvc {importlib.metadata.version('qrsvc')}"


def test_help_shows_our_commands_only(tmp_path: Path, migrated: dict[str, str]) -> None:
    result = qrsvc("--help", cwd=tmp_path, env=migrated)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for ours in ("keys", "db", "generate", "serve", "run", "worker", "client", "outbox", "signing-keys"):
        assert f"\n  {ours} " in text, ours
    for flask in ("--app", "-A,", "--env-file", "-e,", "routes", "shell", "limiter"):
        assert flask not in text, flask
    assert "--version" in text


def test_generate_to_stdout(tmp_path: Path) -> None:
    result = qrsvc("generate", "https://example.com/stdout", "-o", "-", cwd=tmp_path, env={}, text=False)
    assert result.returncode == 0, result.stderr
    assert decode(result.stdout, "png") == ["https://example.com/stdout"]
    assert not (tmp_path / "-").exists()
    svg = qrsvc("generate", "svg", "-o", "-", "--format", "svg", cwd=tmp_path, env={}, text=False)
    assert decode(svg.stdout, "svg") == ["svg"]


@pytest.mark.parametrize("command", [("keys", "list"), ("db", "upgrade")])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    env = {"QRSVC_DATABASE_URL": "postgresql+psycopg://nobody:secret@127.0.0.1:9/none"}
    line = one_line_error(qrsvc(*command, cwd=tmp_path, env=env), 1)
    assert "database" in line and "secret" not in line


def test_a_bad_configuration_or_revision_is_one_line(tmp_path: Path, migrated: dict[str, str]) -> None:
    line = one_line_error(qrsvc("keys", "list", cwd=tmp_path, env={**migrated, "QRSVC_PLANS": "{"}), 1)
    assert "QRSVC_PLANS" in line
    line = one_line_error(qrsvc("db", "upgrade", "--revision", "nosuch", cwd=tmp_path, env=migrated), 1)
    assert "nosuch" in line
