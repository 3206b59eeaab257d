"""Whole printer dots: QR codes drawn so that every module edge falls on a dot edge of the printer.

A module is an integer number of dots at the printer's resolution (`dpi`), at least
`MIN_MODULE_MM`, chosen as the largest that fits the label's QR area together with
its 4-module quiet zone. The code is drawn as a PNG of exactly `modules × dots`
pixels, placed at `pixels / dpi` inches with smoothing off, and its top-left corner
is snapped to the page's dot grid.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image

from integrations.shop.labels.layouts import MM_PER_INCH, Box
from qrsvc.toolkit import ApiError, DataTooLongError, Style, encode, render

__all__ = [
    "MIN_MODULE_MM",
    "QUIET_ZONE",
    "DrawnCode",
    "PlacedCode",
    "code_pixels",
    "draw_code",
    "module_dots",
    "place_code",
]

#: Smallest module that phone cameras and handheld scanners read reliably off paper.
MIN_MODULE_MM = 0.33

#: Modules of white around every printed code (ISO/IEC 18004 asks for 4).
QUIET_ZONE = 4


@dataclass(frozen=True, slots=True)
class DrawnCode:
    """One drawn QR code: a `pixels`-square PNG whose modules are `dots` pixels each."""

    png: bytes
    pixels: int
    dots: int


@dataclass(frozen=True, slots=True)
class PlacedCode:
    """Where a code goes on the page: position and size in inches, on the printer's dot grid."""

    left: float
    top: float
    size: float


def module_dots(symbol_width: int, area_mm: float, dpi: int) -> int:
    """Largest whole number of printer dots per module that fits `area_mm` with the quiet zone.

    Raises ApiError 422 `code_too_small` when that is below `MIN_MODULE_MM`.
    """
    modules = symbol_width + 2 * QUIET_ZONE
    dots = math.floor(area_mm / MM_PER_INCH * dpi + 1e-9) // modules
    smallest = math.ceil(MIN_MODULE_MM / MM_PER_INCH * dpi - 1e-9)
    if dots < smallest:
        raise ApiError(
            422,
            "code_too_small",
            f"A {symbol_width}×{symbol_width} module code does not fit a {area_mm:.1f} mm square at "
            f"{MIN_MODULE_MM} mm or more a module ({smallest} dots at {dpi} dpi) with its "
            f"{QUIET_ZONE}-module quiet zone: shorten the data, lower the error correction, "
            "or use a larger label.",
        )
    return dots


def code_pixels(area_mm: float, dpi: int) -> int:
    """Upper bound of a code's pixels in a square of `area_mm`: its side is whole dots inside the area."""
    side = math.floor(area_mm / MM_PER_INCH * dpi + 1e-9)
    return side * side


def draw_code(data: str, error_correction: str, area_mm: float, dpi: int, engine: str) -> DrawnCode:
    """Encode `data` and draw it at the largest whole-dot module size that fits `area_mm`."""
    try:
        symbol = encode(data, error_correction, engine=engine)
    except DataTooLongError as exc:
        raise ApiError(422, "data_too_long", f"The QR data is too long: {exc}.", field="qr_data") from exc
    dots = module_dots(symbol.width, area_mm, dpi)
    pixels = dots * (symbol.width + 2 * QUIET_ZONE)
    png = _greyscale(render(symbol, "png", Style(size=pixels, quiet_zone=QUIET_ZONE)))
    return DrawnCode(png, pixels, dots)


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


def place_code(code: DrawnCode, area: Box, label_x: float, label_y: float, dpi: int) -> PlacedCode:
    """Centre `code` in `area` of the label at (label_x, label_y) mm, on whole printer dots."""
    side_mm = code.pixels / dpi * MM_PER_INCH
    x = label_x + area.x + (area.width - side_mm) / 2
    y = label_y + area.y + (area.height - side_mm) / 2
    return PlacedCode(
        round(x / MM_PER_INCH * dpi) / dpi,
        round(y / MM_PER_INCH * dpi) / dpi,
        code.pixels / dpi,
    )
