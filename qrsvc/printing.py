"""Printing codes on sheets of labels or cards: exact sheet geometry, whole printer dots, bounded work.

Taken from the shop's labels so that every integration that prints (shop labels, CRM
business cards) draws codes the same way. No WeasyPrint and no Flask here: this module
says where things go and draws the PNGs; the documents are the integrations' own.

- **Sheets.** A `SheetLayout` is the manufacturer's template (page size, grid, cell size,
  margins, pitch); cells are numbered in reading order and positioned absolutely.
- **Whole printer dots.** A module is an integer number of dots at the printer's
  resolution, at least `MIN_MODULE_MM`, the largest that fits the code's area together
  with its `QUIET_ZONE`. The code is drawn as a PNG of exactly `modules × dots` pixels
  and its top-left corner is snapped to the page's dot grid, so every module edge falls
  on a dot edge.
- **Bounded work.** `PrintCost` (pages, items, printer dots of the distinct codes) is
  known from the request before anything is drawn; `check_cost` refuses it with a 413
  naming the setting that bounds it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from PIL import Image

from qrsvc.errors import ApiError
from qrsvc.qr import DataTooLongError, Style, encode, render

__all__ = [
    "MIN_MODULE_MM",
    "MM_PER_INCH",
    "QUIET_ZONE",
    "inches",
    "Box",
    "CodeTooSmallError",
    "DrawnCode",
    "PlacedCode",
    "PrintCost",
    "PrintLimits",
    "SheetLayout",
    "check_cost",
    "check_items",
    "code_pixels",
    "draw_code",
    "find_layout",
    "module_dots",
    "place_code",
    "sheets",
]

MM_PER_INCH = 25.4


def inches(value: float) -> float:
    """Millimetres from inches: sheet catalogues are published in inches, drawn in millimetres."""
    return value * MM_PER_INCH


#: Smallest module that phone cameras and handheld scanners read reliably off paper.
MIN_MODULE_MM = 0.33

#: Modules of white around every printed code (ISO/IEC 18004 asks for 4).
QUIET_ZONE = 4


@dataclass(frozen=True, slots=True)
class SheetLayout:
    """A sheet of labels or cards (or a roll) as its manufacturer's template describes it; lengths in mm.

    Cells are numbered from 0 in reading order: left to right, then top to bottom.
    `dpi` is the printer resolution codes are drawn for unless a request gives its own.
    """

    name: str
    description: str
    page_width: float
    page_height: float
    columns: int
    rows: int
    cell_width: float
    cell_height: float
    left: float
    top: float
    pitch_x: float
    pitch_y: float
    dpi: int

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    def origin(self, position: int) -> tuple[float, float]:
        """Top-left corner (mm from the page's top-left) of cell `position` (0-based, on its sheet)."""
        row, column = divmod(position, self.columns)
        return self.left + column * self.pitch_x, self.top + row * self.pitch_y


def find_layout(layouts: Mapping[str, SheetLayout], name: object) -> SheetLayout:
    """The layout called `name`; 400 `invalid_parameter` (field `layout`) naming the choices."""
    layout = layouts.get(name) if isinstance(name, str) else None
    if layout is None:
        raise ApiError(
            400,
            "invalid_parameter",
            f"Unknown layout {name!r}; use one of: {', '.join(layouts)}.",
            field="layout",
        )
    return layout


def sheets(count: int, start: int, per_sheet: int) -> Iterator[list[int]]:
    """The positions (0-based, on its sheet) of `count` cells from position `start`, sheet by sheet."""
    positions: list[int] = []
    for position in range(start, start + count):
        positions.append(position % per_sheet)
        if position % per_sheet == per_sheet - 1:
            yield positions
            positions = []
    if positions:
        yield positions


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle in mm from the top-left corner of its cell."""

    x: float
    y: float
    width: float
    height: float


class CodeTooSmallError(ApiError):
    """422 `code_too_small`: the code's modules would be under `MIN_MODULE_MM` in its area."""

    def __init__(self, symbol_width: int, area_mm: float, dpi: int, smallest: int) -> None:
        super().__init__(
            422,
            "code_too_small",
            f"A {symbol_width}×{symbol_width} module code does not fit a {area_mm:.1f} mm square at "
            f"{MIN_MODULE_MM} mm or more a module ({smallest} dots at {dpi} dpi) with its "
            f"{QUIET_ZONE}-module quiet zone: shorten the data, lower the error correction, "
            "or use a larger label.",
        )


def module_dots(symbol_width: int, area_mm: float, dpi: int) -> int:
    """Largest whole number of printer dots per module that fits `area_mm` with the quiet zone.

    Raises `CodeTooSmallError` (422) when that is below `MIN_MODULE_MM`.
    """
    modules = symbol_width + 2 * QUIET_ZONE
    dots = math.floor(area_mm / MM_PER_INCH * dpi + 1e-9) // modules
    smallest = math.ceil(MIN_MODULE_MM / MM_PER_INCH * dpi - 1e-9)
    if dots < smallest:
        raise CodeTooSmallError(symbol_width, area_mm, dpi, smallest)
    return dots


def code_pixels(area_mm: float, dpi: int) -> int:
    """Upper bound of a code's pixels in a square of `area_mm`: its side is whole dots inside the area."""
    side = math.floor(area_mm / MM_PER_INCH * dpi + 1e-9)
    return side * side


@dataclass(frozen=True, slots=True)
class DrawnCode:
    """One drawn QR code: a `pixels`-square greyscale PNG whose modules are `dots` pixels each."""

    png: bytes
    pixels: int
    dots: int
    version: int


def draw_code(data: str, error_correction: str, area_mm: float, dpi: int, engine: str) -> DrawnCode:
    """Encode `data` and draw it at the largest whole-dot module size that fits `area_mm`.

    Raises ApiError 422 `data_too_long` (field `qr_data`) or `CodeTooSmallError`.
    """
    try:
        symbol = encode(data, error_correction, engine=engine)
    except DataTooLongError as exc:
        raise ApiError(422, "data_too_long", f"The QR data is too long: {exc}.", field="qr_data") from exc
    dots = module_dots(symbol.width, area_mm, dpi)
    pixels = dots * (symbol.width + 2 * QUIET_ZONE)
    png = _greyscale(render(symbol, "png", Style(size=pixels, quiet_zone=QUIET_ZONE)))
    return DrawnCode(png, pixels, dots, symbol.version)


def _greyscale(png: bytes) -> bytes:
    """The core's 1-bit palette PNG as 8-bit greyscale, which WeasyPrint embeds without converting.

    WeasyPrint turns palette images into RGB and re-encodes them twice; a greyscale
    PNG is embedded as a DeviceGray image with one re-encode, three times smaller.
    """
    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
    out = io.BytesIO()
    grey.save(out, "PNG", compress_level=1)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class PlacedCode:
    """Where a code goes on the page: position and size in inches, on the printer's dot grid."""

    left: float
    top: float
    size: float


def place_code(code: DrawnCode, area: Box, cell_x: float, cell_y: float, dpi: int) -> PlacedCode:
    """Centre `code` in `area` of the cell at (cell_x, cell_y) mm, on whole printer dots."""
    side_mm = code.pixels / dpi * MM_PER_INCH
    x = cell_x + area.x + (area.width - side_mm) / 2
    y = cell_y + area.y + (area.height - side_mm) / 2
    return PlacedCode(
        round(x / MM_PER_INCH * dpi) / dpi,
        round(y / MM_PER_INCH * dpi) / dpi,
        code.pixels / dpi,
    )


@dataclass(frozen=True, slots=True)
class PrintLimits:
    """Most work one PDF may take; above any of them the request is a 413 naming the setting.

    `noun` names what is printed (`labels`, `cards`: the 413 is `too_many_<noun>`);
    `setting_prefix` + `NOUN` / `PAGES` / `MEGAPIXELS` are the settings that hold the bounds;
    `distinct` names what the different codes stand for (default: `noun`), e.g. `products`.
    """

    noun: str
    setting_prefix: str
    items: int
    pages: int
    megapixels: float
    distinct: str = ""


@dataclass(frozen=True, slots=True)
class PrintCost:
    """What a PDF will take: pages, items, and at most how many printer dots its distinct codes have."""

    pages: int
    items: int
    pixels: int
    detail: str


def check_cost(cost: PrintCost, limits: PrintLimits) -> None:
    """413 `too_many_<noun>`, `too_many_pages` or `too_many_pixels` naming the setting that bounds it."""
    prefix = limits.setting_prefix
    check_items(cost.items, limits)
    if cost.pages > limits.pages:
        raise ApiError(
            413,
            "too_many_pages",
            f"{cost.detail} take {cost.pages} pages; at most {limits.pages} pages in one PDF "
            f"({prefix}PAGES): send fewer {limits.noun} per request.",
        )
    megapixels = cost.pixels / 1e6
    if megapixels > limits.megapixels:
        raise ApiError(
            413,
            "too_many_pixels",
            f"{cost.detail} take up to {megapixels:.1f} megapixels of printer dots; at most "
            f"{limits.megapixels:g} in one PDF ({prefix}MEGAPIXELS): lower dpi or send "
            f"fewer different {limits.distinct or limits.noun} per request.",
        )


def check_items(count: int, limits: PrintLimits) -> None:
    """413 `too_many_<noun>` past `limits.items`: callers with copies check the total before building them."""
    if count > limits.items:
        raise ApiError(
            413,
            f"too_many_{limits.noun}",
            f"{count} {limits.noun} asked for; at most {limits.items} in one PDF "
            f"({limits.setting_prefix}{limits.noun.upper()}).",
        )
