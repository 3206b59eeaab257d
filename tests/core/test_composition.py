"""The composition root (`app.py`) has no import-time side effects; the app is built by its factory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, logging, sys
before = len(logging.getLogger().handlers)
import app
print(json.dumps({
    "handlers": len(logging.getLogger().handlers) - before,
    "built": "app" in vars(app),
    "flask_apps": [name for name, value in vars(app).items() if type(value).__name__ == "Flask"],
}))
"""


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter, its XDG data folder (the default instance folder's parent) in `cwd`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("QRSVC_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(cwd / "data")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_importing_app_creates_no_instance_folder_no_app_and_no_log_handlers(tmp_path: Path) -> None:
    done = run(PROBE, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"handlers": 0, "built": False, "flask_apps": []}
    assert list(tmp_path.iterdir()) == []  # no ./instance, no database, no rate-limit file


def test_app_app_is_still_there_for_gunicorn_built_on_first_use(tmp_path: Path) -> None:
    code = "import app; application = app.app; print(application.name, application is app.app)"
    done = run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["qrsvc", "True"]
    assert (tmp_path / "data" / "qrsvc").is_dir()  # the app, once built, has its instance folder
    assert not (tmp_path / "instance").exists()  # not one in the current directory
