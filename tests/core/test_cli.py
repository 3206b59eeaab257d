"""The `qrsvc` command as a user runs it: keys, db upgrade, offline generate."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli, decode


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
