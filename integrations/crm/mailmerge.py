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

__all__ = ["csv_bytes", "neutralise", "zip_bytes"]

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
    """Images are already compressed: they are stored, only the CSV is deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files:
            method = zipfile.ZIP_DEFLATED if name.endswith(".csv") else zipfile.ZIP_STORED
            archive.writestr(name, content, compress_type=method)
    return out.getvalue()
