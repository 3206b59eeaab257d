"""Reading a contacts CSV as a CRM or a spreadsheet exports it: BOM or not, comma or semicolon.

Rows come out as nested dicts (`address.city` → `{"address": {"city": …}}`) for the same
field parser the JSON API uses, so a CSV row and a JSON body are held to identical rules.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["CsvError", "Row", "read_rows"]


class CsvError(ValueError):
    """The file as a whole cannot be read (no header, unknown column, not UTF-8)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based, the header being row 1, as a spreadsheet numbers them
    values: dict[str, object]
    extra_cells: int = 0  # cells beyond the header's columns


def _delimiter(header_line: str) -> str:
    """Excel in many European locales writes `;`; the header line tells which one this file uses."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _nest(header: Sequence[str], cells: Sequence[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    groups: dict[str, dict[str, str]] = {}
    for name, cell in zip(header, cells, strict=False):
        if cell == "":
            continue  # an empty cell is an absent field, not an empty string
        group, dot, leaf = name.partition(".")
        if dot:
            groups.setdefault(group, {})[leaf] = cell
        else:
            values[name] = cell
    values.update(groups)
    return values


def read_rows(body: bytes, columns: Sequence[str], max_rows: int) -> Iterator[Row]:
    """Rows of `body` keyed by its header, each column being one of `columns` (dotted for nested).

    Raises `CsvError` for the file as a whole and `OverflowError` past `max_rows` data rows;
    a row with the wrong number of cells is yielded as it is, for the parser to name.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvError(f"the file is not UTF-8 (byte {error.start})") from None
    header_line = text.split("\n", 1)[0]
    if not header_line.strip():
        raise CsvError("the file has no header row")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(header_line), strict=True)
    try:
        header = [name.strip() for name in next(reader)]
        allowed = set(columns)
        for name in header:
            if name not in allowed:
                raise CsvError(f"unknown column {name!r}; columns are: {', '.join(columns)}", name)
        if len(set(header)) != len(header):
            raise CsvError("a column appears twice in the header")
        count = 0
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, including the one after a final newline
            count += 1
            if count > max_rows:
                raise OverflowError(max_rows)
            yield Row(number, _nest(header, cells), max(0, len(cells) - len(header)))
    except csv.Error as error:
        raise CsvError(f"line {reader.line_num}: {error}") from None
