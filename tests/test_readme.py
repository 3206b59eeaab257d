"""The README runs as written: every shell block, in order, against a fresh `qrsvc serve`.

The blocks build on each other (a key, then products, then labels that print them), so
they run as one bash script with `set -euo pipefail`: a failing command, or a variable no
block set, stops it. `curl` is run with `--fail-with-body`, so an HTTP error is a failure
too. Every file a block saves is checked against its extension (magic bytes; PNG and SVG
codes are decoded). A block that cannot run here says why in an HTML comment just before
it: `<!-- not run: starts the server -->`.
"""

from __future__ import annotations

import email
import io
import json
import os
import re
import shlex
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli, decode, postgres_schema

README = ROOT / "README.md"
README_URL = "http://127.0.0.1:8000"
_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[a-z]*)[ ]*\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S
)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>[^>]+?)\s*-->\s*\Z")
SHELL = {"sh", "bash", "console"}
#: Commands a fresh Debian lacks, or that are macOS only.
FOREIGN_COMMANDS = re.compile(r"(?:^|[;&|(]|\$\()\s*(open|uuidgen|pbcopy|pbpaste|jq|gdate|brew)\b")
#: Names the README no longer uses: one variable for the key, no options that do not exist.
FORBIDDEN = ("$KEY", "$QR_API_KEY", "--allow-low-contrast", "DESIGN §")


@dataclass(frozen=True)
class Block:
    index: int
    line: int
    body: str
    not_run: str | None


def shell_blocks(text: str) -> list[Block]:
    """Every ```sh / ```bash / ```console block of `text`, with its "not run" reason if marked."""
    blocks = []
    for match in _FENCE.finditer(text):
        if match["lang"] not in SHELL:
            continue
        indent = len(match["indent"])
        body = "\n".join(line[indent:] for line in match["body"].splitlines())
        if match["lang"] == "console":
            body = "\n".join(line[2:] for line in body.splitlines() if line.startswith("$ "))
        marker = _NOT_RUN.search(text[: match.start()])
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(len(blocks), line, body, marker["why"] if marker else None))
    return blocks


def script(blocks: list[Block], url: str, snapshots: Path) -> str:
    """One bash script: each block, then a snapshot of the files it saved."""
    lines = [
        "set -euo pipefail",
        'curl() { command curl --fail-with-body --silent --show-error "$@"; }',
        "_sums() { find . -maxdepth 1 -type f ! -name '.readme-*' -exec md5sum {} + | sort; }",
        "_sums > .readme-sums",
        "_done() {  # copy the files this block created or changed (by content: mtimes are coarse)",
        f'  mkdir -p {shlex.quote(str(snapshots))}/"$1"',
        "  _sums > .readme-sums-new",
        "  comm -13 .readme-sums .readme-sums-new | while read -r _sum _file; do",
        f'    cp -p -- "$_file" {shlex.quote(str(snapshots))}/"$1"/',
        "  done",
        "  mv .readme-sums-new .readme-sums",
        '  echo "::readme-done $1" >&2',
        "}",
    ]
    for block in blocks:
        if block.not_run:
            continue
        lines.append(f'echo "::readme-block {block.index} (README.md line {block.line})" >&2')
        lines.append(block.body.replace(README_URL, url))
        lines.append(f"_done {block.index}")
    return "\n".join(lines) + "\n"


def _check_png(content: bytes) -> None:
    assert content.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    assert decode(content), "no QR code in this PNG"


def _check_svg(content: bytes) -> None:
    assert b"<svg" in content[:500], "not an SVG"
    assert decode(content, "svg"), "no QR code in this SVG"


def _check_pdf(content: bytes) -> None:
    import pypdfium2

    assert content.startswith(b"%PDF-"), "not a PDF"
    assert len(pypdfium2.PdfDocument(content)) >= 1


def _check_zip(content: bytes) -> None:
    assert content.startswith(b"PK\x03\x04"), "not a ZIP"
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        for name in archive.namelist():
            if name.endswith(".png"):
                _check_png(archive.read(name))


def _check_eml(content: bytes) -> None:
    message = email.message_from_bytes(content)
    assert message["Message-ID"] and message.is_multipart(), "not a MIME message"


def _check_vcf(content: bytes) -> None:
    assert content.startswith(b"BEGIN:VCARD"), "not a vCard"


def _check_json(content: bytes) -> None:
    assert isinstance(json.loads(content), dict), "not a JSON object"


def _check_html(content: bytes) -> None:
    assert b"<html" in content[:500].lower(), "not an HTML page"


def _check_csv(content: bytes) -> None:
    assert b"," in content.decode("utf-8-sig").splitlines()[0].encode(), "not a CSV"


CHECKS: dict[str, Callable[[bytes], None]] = {
    ".png": _check_png,
    ".svg": _check_svg,
    ".pdf": _check_pdf,
    ".zip": _check_zip,
    ".jpeg": lambda content: _startswith(content, b"\xff\xd8\xff"),
    ".jpg": lambda content: _startswith(content, b"\xff\xd8\xff"),
    ".webp": lambda content: _startswith(content, b"RIFF") and _startswith(content[8:], b"WEBP"),
    ".eml": _check_eml,
    ".vcf": _check_vcf,
    ".csv": _check_csv,
    ".json": _check_json,
    ".html": _check_html,
}


def _startswith(content: bytes, magic: bytes) -> bool:
    assert content.startswith(magic), f"does not start with {magic!r}"
    return True


def check_file(path: Path) -> None:
    """A saved file is what its extension says, and never an API error saved under a file name."""
    content = path.read_bytes()
    assert content, "empty"
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    assert not (isinstance(body, dict) and body.get("success") is False), f"an error response: {body}"
    check = CHECKS.get(path.suffix.lower())
    assert check is not None, f"a file the test does not know how to check: {path.name}"
    check(content)


def test_shell_blocks_are_found_and_few_are_not_run() -> None:
    blocks = shell_blocks(README.read_text())
    assert len(blocks) >= 20
    not_run = [block for block in blocks if block.not_run]
    assert len(not_run) <= 6, [(block.line, block.not_run) for block in not_run]


def test_shell_blocks_use_debian_tools_and_one_key_variable() -> None:
    for block in shell_blocks(README.read_text()):
        for number, line in enumerate(block.body.splitlines(), start=block.line + 1):
            command = re.sub(r"(^|\s)#.*", "", line)  # comments may say anything
            assert not FOREIGN_COMMANDS.search(command), f"README.md line {number}: {line}"
            for word in FORBIDDEN:
                assert word not in command, f"README.md line {number}: {word!r}"
    assert "DESIGN" not in README.read_text()


def test_foreign_commands_are_found_but_not_in_comments() -> None:
    assert FOREIGN_COMMANDS.search('open "http://x"')
    assert FOREIGN_COMMANDS.search('curl -H "X-Id: $(uuidgen)" x')
    assert FOREIGN_COMMANDS.search("curl x | jq -r .id")
    assert not FOREIGN_COMMANDS.search("json_field id < code.json")


def test_not_run_marker_applies_to_the_next_block_only() -> None:
    text = "<!-- not run: a server -->\n```sh\nmake run\n```\n\n```sh\necho hi\n```\n"
    assert [block.not_run for block in shell_blocks(text)] == ["a server", None]


def test_a_saved_error_response_is_caught(tmp_path: Path) -> None:
    saved = tmp_path / "labels.pdf"
    saved.write_text('{"success": false, "error": "unknown_sku", "message": "no product TEE-M"}')
    with pytest.raises(AssertionError, match="an error response"):
        check_file(saved)


@pytest.fixture(params=["sqlite", "postgresql"])
def readme_env(request: pytest.FixtureRequest, tmp_path: Path):
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
    if request.param == "sqlite":
        yield env
        return
    with postgres_schema("qrsvc_readme") as url:
        yield {**env, "QRSVC_DATABASE_URL": url}


def test_readme_runs_as_written(readme_env: dict[str, str], tmp_path: Path, serve) -> None:
    assert cli("db", "upgrade", env=readme_env).returncode == 0
    server = serve(readme_env)
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")  # the README is pasted in the repository's folder
    snapshots = tmp_path / "saved"
    blocks = shell_blocks(README.read_text())
    (tmp_path / "readme.sh").write_text(script(blocks, server.url, snapshots))
    env = {key: value for key, value in os.environ.items() if not key.startswith("QRSVC_")}
    result = subprocess.run(
        ["bash", str(tmp_path / "readme.sh")],
        cwd=work,
        env={**env, **readme_env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    (tmp_path / "readme.out").write_text(result.stdout + result.stderr)
    ran = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("::readme-done ")]
    started = [line for line in result.stderr.splitlines() if line.startswith("::readme-block ")]
    assert result.returncode == 0, (
        f"{started[-1] if started else 'before the first block'} failed:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{server.log.read_text()[-2000:]}"
    )
    assert ran == [str(block.index) for block in blocks if not block.not_run]
    saved = sorted(snapshots.glob("*/*"))
    assert saved, "the README saves no file"
    for path in saved:
        block = blocks[int(path.parent.name)]
        try:
            check_file(path)
        except AssertionError as error:
            raise AssertionError(f"README.md line {block.line} saved {path.name}: {error}") from None
