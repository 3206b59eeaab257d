"""Mail-merge files a spreadsheet opens safely: a CSV for Excel, and a ZIP of it with the images.

Excel and LibreOffice run a cell that starts with `=`, `+`, `-` or `@` as a formula
(OWASP "CSV injection"), so such cells get a leading apostrophe; the BOM and CRLF are
what Excel needs to read UTF-8 and line ends on every platform.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from typing import IO

__all__ = ["csv_bytes", "neutralise", "write_zip", "zip_bytes"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str:
    """The cell as text, with a `'` in front when a spreadsheet would take it for a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM, CRLF line ends, every cell neutralised and quoted where needed."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(name) for name in header])
    writer.writerows([neutralise(cell) for cell in row] for row in rows)
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def zip_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    """The archive in memory (see `write_zip`)."""
    out = io.BytesIO()
    write_zip(out, files)
    return out.getvalue()


def write_zip(out: IO[bytes], files: Iterable[tuple[str, bytes]]) -> None:
    """Write each file as it comes (one in memory at a time): text (CSV, SVG) is deflated, and
    PNGs, compressed already, are stored."""
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files:
            method = zipfile.ZIP_DEFLATED if name.endswith(_TEXT_EXTENSIONS) else zipfile.ZIP_STORED
            archive.writestr(name, content, compress_type=method)


_TEXT_EXTENSIONS = (".csv", ".svg")
