"""How much work one label PDF may take, known from the request before anything is drawn.

Pages (WeasyPrint lays out every page), labels (every one is a positioned box with
text) and the printer dots of the distinct codes (each is encoded, drawn, converted
and compressed pixel by pixel) are bounded by `LabelLimits`; the shop reads them from
its settings. The printing arguments (`dpi`, `start_at`, offsets) are checked here too,
so a view can refuse a request before it looks anything up.
"""

from __future__ import annotations

from dataclasses import dataclass

from integrations.shop.labels.layouts import LAYOUTS, PACKING_CODE_MM, shelf_design
from qrsvc.toolkit import (
    ENGINES,
    ERROR_CORRECTION_LEVELS,
    ApiError,
    PrintCost,
    PrintLimits,
    SheetLayout,
    check_items,
    code_pixels,
    find_layout,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DPI_RANGE",
    "MAX_LABELS",
    "MAX_OFFSET_MM",
    "LabelLimits",
    "check_arguments",
    "check_dpi",
    "check_label_count",
    "check_offsets",
    "packing_cost",
    "shelf_cost",
]


@dataclass(frozen=True, slots=True)
class LabelLimits:
    """Most work one PDF may take; above any of them the request is a 413 naming the setting.

    The defaults keep the worst allowed PDF of every layout to a few seconds on a
    2-core machine (`bench/labels.py` measures it), far inside gunicorn's 30 s timeout.
    """

    labels: int = 300
    pages: int = 100
    megapixels: float = 30.0

    @property
    def print_limits(self) -> PrintLimits:
        """These bounds for the toolkit's `check_cost`, its 413s naming the `QRSVC_LABEL_MAX_*` settings."""
        return PrintLimits("labels", "QRSVC_LABEL_MAX_", self.labels, self.pages, self.megapixels, "products")


DEFAULT_LIMITS = LabelLimits()

#: Default cap on labels per request (`LabelLimits.labels`).
MAX_LABELS = DEFAULT_LIMITS.labels

#: Accepted printer resolutions; thermal printers are 203/300/600 dpi, lasers 300-1200.
DPI_RANGE = (100, 1200)

#: Printer calibration may shift the print by at most this much in either direction.
MAX_OFFSET_MM = 25.0


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field=field)


def _out_of_range(field: str, message: str) -> ApiError:
    return ApiError(400, "out_of_range", message, field=field)


def check_dpi(dpi: int) -> None:
    if isinstance(dpi, bool) or not isinstance(dpi, int):
        raise _invalid("dpi", "dpi must be a whole number of dots per inch.")
    if not DPI_RANGE[0] <= dpi <= DPI_RANGE[1]:
        raise _out_of_range("dpi", f"dpi must be from {DPI_RANGE[0]} to {DPI_RANGE[1]}.")


def _check_start_at(start_at: int, sheet: SheetLayout) -> None:
    if isinstance(start_at, bool) or not isinstance(start_at, int):
        raise _invalid("start_at", "start_at must be a whole number.")
    if not 1 <= start_at <= sheet.per_sheet:
        raise _out_of_range("start_at", f"start_at must be from 1 to {sheet.per_sheet} on {sheet.name}.")


def check_arguments(dpi: int, error_correction: str, engine: str) -> None:
    """400 for a `dpi`, error correction level or QR engine that cannot be printed with."""
    check_dpi(dpi)
    if error_correction not in ERROR_CORRECTION_LEVELS:
        raise _invalid(
            "error_correction", f"error_correction must be one of {', '.join(ERROR_CORRECTION_LEVELS)}."
        )
    if engine not in ENGINES:
        raise _invalid("engine", f"engine must be one of {', '.join(ENGINES)}.")


def check_offsets(offset_x_mm: float, offset_y_mm: float) -> None:
    """400 `out_of_range` for a calibration shift beyond `MAX_OFFSET_MM` (or NaN)."""
    for field, offset in (("offset_x_mm", offset_x_mm), ("offset_y_mm", offset_y_mm)):
        if not -MAX_OFFSET_MM <= offset <= MAX_OFFSET_MM:  # also refuses NaN
            raise _out_of_range(field, f"{field} must be from {-MAX_OFFSET_MM:g} to {MAX_OFFSET_MM:g} mm.")


def shelf_cost(
    layout: str, count: int, distinct: int, *, start_at: int = 1, dpi: int | None = None
) -> PrintCost:
    """The cost of `count` shelf labels with `distinct` different codes, from the request alone.

    `distinct` may be an upper bound (the number of different SKUs asked for). Checks
    the layout, `dpi` and `start_at` too (400s), so callers can run it before anything else.
    """
    sheet = find_layout(LAYOUTS, layout)
    dpi = sheet.dpi if dpi is None else dpi
    check_dpi(dpi)
    _check_start_at(start_at, sheet)
    pages = -(-(start_at - 1 + count) // sheet.per_sheet)
    pixels = min(distinct, count) * code_pixels(shelf_design(sheet).qr.width, dpi)
    detail = f"{count} labels, {min(distinct, count)} distinct codes, on {sheet.name} at {dpi} dpi"
    if start_at > 1:
        detail += f" from label {start_at}"
    return PrintCost(pages, count, pixels, detail)


def packing_cost(dpi: int = 203) -> PrintCost:
    """The cost of one packing label: one page, one code of up to (3 in × dpi)² dots."""
    check_dpi(dpi)
    return PrintCost(1, 1, code_pixels(PACKING_CODE_MM, dpi), f"a packing label at {dpi} dpi")


def check_label_count(count: int, limit: int = MAX_LABELS) -> None:
    """413 `too_many_labels` past `limit`; callers with copies check the total before building them."""
    check_items(count, LabelLimits(labels=limit).print_limits)
