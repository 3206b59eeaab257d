"""Label PDFs (WeasyPrint): shelf labels on the sheets of a layout, and the order's packing label.

The codes are drawn on whole printer dots (the toolkit's printing pieces) at the places
the layout gives (`layouts`), after the cost of the PDF has been checked against its
limits (`limits`).
One fixed-size box per sheet and absolutely positioned children keep WeasyPrint's
layout work linear and small (no flex, no grid, no page-spanning flow).

The PDF is written by the toolkit's sandboxed `html_to_pdf`: the document loads only
its own in-memory images, so a product name can never make the server read its
files or reach the network; Jinja escapes every value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from integrations.shop.labels.layouts import (
    LAYOUTS,
    PACKING_CODE_MM,
    PACKING_INSET_MM,
    packing_code_area,
    shelf_design,
)
from integrations.shop.labels.limits import (
    DEFAULT_LIMITS,
    LabelLimits,
    check_arguments,
    check_label_count,
    check_offsets,
    packing_cost,
    shelf_cost,
)
from qrsvc.toolkit import (
    ApiError,
    DrawnCode,
    PlacedCode,
    check_cost,
    draw_code,
    find_layout,
    html_to_pdf,
    place_code,
    resource_url,
    sheets,
)

__all__ = [
    "FONT_FAMILY",
    "PackingLabel",
    "ShelfLabel",
    "render_packing_label",
    "render_shelf_labels",
]

#: The one font family labels use, installed by scripts/system-deps.sh (fonts-dejavu-core);
#: a single face keeps font lookup and subsetting cheap.
FONT_FAMILY = "DejaVu Sans"

#: The app's templates folder, in an environment of its own: labels render without an app (tests, CLI).
TEMPLATES = Path(__file__).resolve().parents[3] / "templates"

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True, slots=True)
class ShelfLabel:
    """One shelf label: `price` is already formatted ("€12.50"); `qr_data` is what the code says."""

    name: str
    sku: str
    price: str | None
    qr_data: str


@dataclass(frozen=True, slots=True)
class PackingLabel:
    """A 4×6 in packing label for one order."""

    order_number: str
    ship_to: tuple[str, ...]
    item_count: int
    qr_data: str


def render_shelf_labels(
    labels: Sequence[ShelfLabel],
    layout: str = "avery-5160",
    *,
    start_at: int = 1,
    offset_x_mm: float = 0.0,
    offset_y_mm: float = 0.0,
    dpi: int | None = None,
    error_correction: str = "H",
    limits: LabelLimits = DEFAULT_LIMITS,
    engine: str = "zxing",
) -> bytes:
    """A PDF of shelf labels (name, SKU, price, QR) on the sheets of `layout`.

    `start_at` (1-based) skips the labels already used on the first sheet;
    `offset_x_mm`/`offset_y_mm` shift the whole print to calibrate a printer; `dpi`
    (default: the layout's, 300 for sheets and 203 for thermal) sets the dot grid
    the codes are drawn on. Identical `qr_data` is drawn once and shared. `limits` bound
    the work (checked before any code is drawn). `engine` is the
    QR encoder (the app's QRSVC_ENGINE, passed by the views; see `qrsvc.qr.ENGINES`).

    Raises ApiError: 400 `invalid_parameter` (with `field`) for an unknown layout or
    an out-of-range argument, 413 `too_many_labels`/`too_many_pages`/`too_many_pixels`,
    422 `code_too_small` or `data_too_long` when a code cannot be printed scannably on this label.
    """
    sheet = find_layout(LAYOUTS, layout)
    dpi = sheet.dpi if dpi is None else dpi
    check_arguments(dpi, error_correction, engine)
    if not labels:
        raise ApiError(400, "invalid_parameter", "Give at least one label.", field="labels")
    check_label_count(len(labels), limits.labels)  # before counting distinct codes in a huge list
    distinct = len({label.qr_data for label in labels})
    check_cost(shelf_cost(layout, len(labels), distinct, start_at=start_at, dpi=dpi), limits.print_limits)
    check_offsets(offset_x_mm, offset_y_mm)

    design = shelf_design(sheet)
    codes: dict[str, DrawnCode] = {}
    # Positions repeat on every sheet: they go into a few CSS rules, not 300 style attributes.
    boxes: dict[int, tuple[float, float]] = {}
    spots: dict[tuple[int, int], PlacedCode] = {}
    pages: list[list[tuple[ShelfLabel, int, str]]] = []
    items = iter(labels)
    for positions in sheets(len(labels), start_at - 1, sheet.per_sheet):
        page = []
        for position in positions:
            label = next(items)
            code = codes.get(label.qr_data)
            if code is None:
                code = codes[label.qr_data] = draw_code(
                    label.qr_data, error_correction, design.qr.width, dpi, engine
                )
            if position not in boxes:
                x, y = sheet.origin(position)
                boxes[position] = (x + offset_x_mm, y + offset_y_mm)
            if (position, code.pixels) not in spots:
                spots[position, code.pixels] = place_code(code, design.qr, *boxes[position], dpi)
            page.append((label, position, f"{position}-{code.pixels}"))
        pages.append(page)
    # Images travel beside the HTML, not inside it: parsing 300 data: URIs is slow.
    urls = {data: resource_url(f"qr-{n}") for n, data in enumerate(codes)}
    html = _templates.get_template("shop/labels/shelf.html").render(
        layout=sheet,
        design=design,
        pages=pages,
        boxes=boxes,
        spots={f"{position}-{pixels}": spot for (position, pixels), spot in spots.items()},
        urls=urls,
        font=FONT_FAMILY,
    )
    return html_to_pdf(html, {urls[data]: code.png for data, code in codes.items()})


def render_packing_label(
    label: PackingLabel,
    *,
    dpi: int = 203,
    error_correction: str = "M",
    engine: str = "zxing",
    limits: LabelLimits = DEFAULT_LIMITS,
) -> bytes:
    """A one-page 4 × 6 in PDF: order number, ship-to address, item count and the order's code."""
    check_arguments(dpi, error_correction, engine)
    check_cost(packing_cost(dpi), limits.print_limits)
    code = draw_code(label.qr_data, error_correction, PACKING_CODE_MM, dpi, engine)
    html = _templates.get_template("shop/labels/packing.html").render(
        layout=LAYOUTS["thermal-4x6"],
        label=label,
        qr=place_code(code, packing_code_area(), 0, 0, dpi),
        url=resource_url("qr"),
        inset=PACKING_INSET_MM,
        font=FONT_FAMILY,
    )
    return html_to_pdf(html, {resource_url("qr"): code.png})
