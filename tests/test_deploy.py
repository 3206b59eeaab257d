"""deploy/ stays consistent with the code: settings it names exist, commands it runs exist.

No network, no Docker, no systemd: the files are read as text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import app
from qrsvc import config, jobs, scans
from qrsvc.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def _known_variables() -> set[str]:
    """Every `Setting` of the core, its modules and the integrations, plus what `qrsvc serve` reads itself."""
    groups = [config.CORE_SETTINGS, jobs.SETTINGS, scans.SETTINGS]
    groups += [integration.SETTINGS for integration in app.INTEGRATIONS]
    known = {setting.variable for group in groups for setting in group}
    cli_source = (ROOT / "qrsvc" / "cli.py").read_text()
    return known | set(re.findall(r'environ\.get\("(QRSVC_\w+)"', cli_source))


def test_every_qrsvc_variable_in_deploy_is_a_setting() -> None:
    named: dict[str, set[str]] = {}
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            for variable in re.findall(r"\bQRSVC_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
                named.setdefault(variable, set()).add(str(path.relative_to(ROOT)))
    assert "QRSVC_DATABASE_URL" in named  # the scan found the files
    unknown = {variable: files for variable, files in named.items() if variable not in _known_variables()}
    assert not unknown


def test_env_example_sets_the_production_settings() -> None:
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for key in ("DATABASE_URL", "RATELIMIT_STORAGE_URL", "PUBLIC_BASE_URL", "METRICS_TOKEN", "INSTANCE_PATH"):
        assert f"QRSVC_{key}" in env
    assert env["QRSVC_DATABASE_URL"].startswith("postgresql")
    assert env["QRSVC_RATELIMIT_STORAGE_URL"].startswith("redis://")
    assert env["QRSVC_LOG_FORMAT"] == "json"
    # nginx's body limit is the app's.
    assert int(env["QRSVC_MAX_BODY_BYTES"]) == config.setting("MAX_BODY_BYTES", {})
    assert "client_max_body_size 4m;" in (DEPLOY / "nginx" / "qrsvc.conf").read_text()


def _qrsvc_commands(text: str) -> list[list[str]]:
    """The subcommand words of every `…/qrsvc word word --option …` in `text`."""
    return [
        match.split()
        for match in re.findall(r"(?:^|[\s/=\"])qrsvc((?: [a-z][a-z-]*)+)", text, flags=re.MULTILINE)
    ]


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_units_run_real_qrsvc_commands(unit: Path, tmp_path: Path) -> None:
    text = unit.read_text()
    assert "EnvironmentFile=/etc/qrsvc/env" in text
    assert "Restart=on-failure" in text
    commands = [
        words
        for line in text.splitlines()
        if line.startswith(("ExecStart=", "ExecStartPre="))
        for words in _qrsvc_commands(line)
    ]
    assert commands
    runner = CliRunner()
    for words in commands:
        result = runner.invoke(cli, [*words, "--help"], env={"QRSVC_INSTANCE_PATH": str(tmp_path)})
        assert result.exit_code == 0, (words, result.output)


def test_web_unit_migrates_and_worker_follows() -> None:
    web = (DEPLOY / "systemd" / "qrsvc-web.service").read_text()
    worker = (DEPLOY / "systemd" / "qrsvc-worker.service").read_text()
    assert re.search(r"^ExecStartPre=\S*qrsvc db upgrade$", web, re.MULTILINE)
    assert re.search(r"^ExecStart=\S*qrsvc serve\b", web, re.MULTILINE)
    assert re.search(r"^ExecStart=\S*qrsvc worker$", worker, re.MULTILINE)
    assert "After=network-online.target qrsvc-web.service" in worker


def test_compose_has_its_services_and_health() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    services = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    names = re.findall(r"^  ([a-z]+):$", services, re.MULTILINE)
    assert names == ["web", "worker", "postgres", "redis"]
    blocks = dict(zip(names, re.split(r"^  [a-z]+:$", services, flags=re.MULTILINE)[1:], strict=True))
    assert "dockerfile: deploy/Dockerfile" in blocks["web"]
    assert "/readyz" in blocks["web"]
    assert "qrsvc db upgrade && exec qrsvc serve" in blocks["web"]
    assert re.search(r"depends_on:\s+web:\s+condition: service_healthy", blocks["worker"])
    assert "image: postgres:16" in blocks["postgres"]
    assert "image: redis:7" in blocks["redis"]
    assert "FROM python:3.11-slim" in (DEPLOY / "Dockerfile").read_text()
