"""Shelf and packing labels as print-exact PDFs (WeasyPrint): data in, PDF bytes out.

No database, no Flask request: the views look the records up and call
`render_shelf_labels` / `render_packing_label` with plain values, so tests and
the CLI can call them too.

Two rules make the codes print sharply and scan:

- **Whole printer dots.** A module is an integer number of dots at the printer's
  resolution (`dpi`), at least 0.33 mm, chosen as the largest that fits the QR
  area of the label together with its 4-module quiet zone. The code is drawn once
  per distinct text as a PNG of exactly `modules × dots` pixels, placed at
  `pixels / dpi` inches with smoothing off, and its top-left corner is snapped to
  the page's dot grid, so every module edge falls on a dot edge.
- **Exact sheet geometry.** Each layout is the manufacturer's template (page size,
  margins, pitch); every label is positioned absolutely from it. One fixed-size
  box per sheet and absolutely positioned children keep WeasyPrint's layout work
  linear and small (no flex, no grid, no page-spanning flow).

Work is bounded by its cost, computed from the request before anything is drawn
(`shelf_cost`, `packing_cost`, `check_cost`): pages (WeasyPrint lays out every
page), labels (every one is a positioned box with text), and the printer dots of
the distinct codes (each is encoded, drawn, converted and compressed pixel by
pixel). `LabelLimits` holds the bounds; the shop reads them from its settings.

WeasyPrint only ever sees `data:` URIs: `LabelUrlFetcher` refuses every other
scheme (`file:`, `http(s):`, ...), so a product name can never make the server
read its files or reach the network, and Jinja escapes every value.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import jinja2
from PIL import Image
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from qrsvc.errors import ApiError
from qrsvc.qr import ENGINES, ERROR_CORRECTION_LEVELS, DataTooLongError, Style, encode, render

__all__ = [
    "DEFAULT_LIMITS",
    "LAYOUTS",
    "MAX_LABELS",
    "MIN_MODULE_MM",
    "QUIET_ZONE",
    "LabelCost",
    "LabelLayout",
    "LabelLimits",
    "LabelUrlFetcher",
    "PackingLabel",
    "ShelfLabel",
    "check_cost",
    "check_label_count",
    "module_dots",
    "packing_cost",
    "render_packing_label",
    "render_shelf_labels",
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


DEFAULT_LIMITS = LabelLimits()

#: Default cap on labels per request (`LabelLimits.labels`).
MAX_LABELS = DEFAULT_LIMITS.labels

#: Smallest module that phone cameras and handheld scanners read reliably off paper.
MIN_MODULE_MM = 0.33

#: Modules of white around every printed code (ISO/IEC 18004 asks for 4).
QUIET_ZONE = 4

#: Accepted printer resolutions; thermal printers are 203/300/600 dpi, lasers 300-1200.
DPI_RANGE = (100, 1200)

#: Printer calibration may shift the print by at most this much in either direction.
MAX_OFFSET_MM = 25.0

#: The one font family labels use, installed by scripts/system-deps.sh (fonts-dejavu-core);
#: a single face keeps font lookup and subsetting cheap.
FONT_FAMILY = "DejaVu Sans"

_MM_PER_INCH = 25.4

#: The same folder as `qrsvc.factory.TEMPLATES` (not imported: this module stays Flask-free).
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

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


@dataclass(frozen=True, slots=True)
class LabelLayout:
    """A label sheet (or roll) as its manufacturer's template describes it; lengths in mm.

    Labels are numbered from 1 in reading order: left to right, then top to bottom.
    """

    name: str
    description: str
    page_width: float
    page_height: float
    columns: int
    rows: int
    label_width: float
    label_height: float
    left: float
    top: float
    pitch_x: float
    pitch_y: float
    dpi: int

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    def origin(self, position: int) -> tuple[float, float]:
        """Top-left corner (mm from the page's top-left) of label `position` (0-based)."""
        row, column = divmod(position, self.columns)
        return self.left + column * self.pitch_x, self.top + row * self.pitch_y


def _in(inches: float) -> float:
    return inches * _MM_PER_INCH


#: Geometry from the manufacturers' templates; the README's label section lists the sources.
LAYOUTS: Mapping[str, LabelLayout] = MappingProxyType(
    {
        layout.name: layout
        for layout in (
            LabelLayout(
                name="avery-5160",
                description="Avery 5160 address labels: Letter, 3 × 10, 2⅝ × 1 in",
                page_width=_in(8.5),
                page_height=_in(11),
                columns=3,
                rows=10,
                label_width=_in(2.625),
                label_height=_in(1),
                left=_in(0.1875),
                top=_in(0.5),
                pitch_x=_in(2.75),
                pitch_y=_in(1),
                dpi=300,
            ),
            LabelLayout(
                name="avery-5163",
                description="Avery 5163 shipping labels: Letter, 2 × 5, 4 × 2 in",
                page_width=_in(8.5),
                page_height=_in(11),
                columns=2,
                rows=5,
                label_width=_in(4),
                label_height=_in(2),
                left=_in(0.15625),
                top=_in(0.5),
                pitch_x=_in(4.1875),
                pitch_y=_in(2),
                dpi=300,
            ),
            LabelLayout(
                name="avery-l7160",
                description="Avery L7160 address labels: A4, 3 × 7, 63.5 × 38.1 mm",
                page_width=210,
                page_height=297,
                columns=3,
                rows=7,
                label_width=63.5,
                label_height=38.1,
                # (210 - 3 × 63.5 - 2 × 2.54) / 2: the sheet is symmetric.
                left=7.21,
                top=15.15,
                pitch_x=66.04,
                pitch_y=38.1,
                dpi=300,
            ),
            LabelLayout(
                name="thermal-4x6",
                description="Thermal printer roll: one 4 × 6 in label per page",
                page_width=_in(4),
                page_height=_in(6),
                columns=1,
                rows=1,
                label_width=_in(4),
                label_height=_in(6),
                left=0,
                top=0,
                pitch_x=_in(4),
                pitch_y=_in(6),
                dpi=203,
            ),
        )
    }
)


#: Scheme of the images a label document carries in memory: `label-image:<n>`.
IMAGE_SCHEME = "label-image"


class LabelUrlFetcher(URLFetcher):  # type: ignore[misc]
    """WeasyPrint's only way out: it serves base64 `data:` URIs and the document's own
    in-memory images (`label-image:<n>` from `images`), and refuses every other URL
    (`file:`, `http:`, `https:`, ...).
    """

    def __init__(self, images: Mapping[str, bytes] | None = None) -> None:
        super().__init__(allowed_protocols=("data", IMAGE_SCHEME))
        self._images = dict(images or {})

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        scheme, _, rest = url.partition(":")
        if scheme.lower() == IMAGE_SCHEME and url in self._images:
            return URLFetcherResponse(url, self._images[url], {"Content-Type": "image/png"})
        meta, comma, payload = rest.partition(",")
        if scheme.lower() == "data" and comma and meta.endswith(";base64"):
            return URLFetcherResponse(
                url, base64.b64decode(payload), {"Content-Type": meta[: -len(";base64")]}
            )
        raise ValueError(
            f"label documents only load base64 data: URIs and their own images, not {url[:60]!r}"
        )


@dataclass(frozen=True, slots=True)
class _Code:
    """One drawn QR code: a `pixels`-square PNG whose modules are `dots` pixels each."""

    png: bytes
    pixels: int
    dots: int


@dataclass(frozen=True, slots=True)
class _Box:
    """A rectangle in mm from the top-left corner of its label."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class _ShelfDesign:
    qr: _Box
    text: _Box
    name_pt: float
    sku_pt: float
    price_pt: float


def _shelf_design(layout: LabelLayout) -> _ShelfDesign:
    """Where the code and the text go on one shelf label of `layout`."""
    width, height = layout.label_width, layout.label_height
    if height <= width:
        # Address-style labels: the code on the left, as high as the label, text beside it.
        inset = max(1.0, height * 0.04)
        side = height - 2 * inset
        text_x = inset + side + inset
        scale = height / _MM_PER_INCH
        return _ShelfDesign(
            qr=_Box(inset, inset, side, side),
            text=_Box(text_x, inset * 1.5, width - text_x - 2 * inset, height - 3 * inset),
            name_pt=6 + 2 * scale,
            sku_pt=5.5 + 1.5 * scale,
            price_pt=8 + 3 * scale,
        )
    # Tall labels (4 × 6 in): text on top, the code as wide as the label below it.
    inset = width * 0.04
    side = width - 2 * inset
    return _ShelfDesign(
        qr=_Box(inset, height - inset - side, side, side),
        text=_Box(inset * 1.5, inset * 1.5, width - 3 * inset, height - side - 3.5 * inset),
        name_pt=18,
        sku_pt=12,
        price_pt=24,
    )


def module_dots(symbol_width: int, area_mm: float, dpi: int) -> int:
    """Largest whole number of printer dots per module that fits `area_mm` with the quiet zone.

    Raises ApiError 422 `code_too_small` when that is below `MIN_MODULE_MM`.
    """
    modules = symbol_width + 2 * QUIET_ZONE
    dots = math.floor(area_mm / _MM_PER_INCH * dpi + 1e-9) // modules
    smallest = math.ceil(MIN_MODULE_MM / _MM_PER_INCH * dpi - 1e-9)
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


def _draw(data: str, error_correction: str, area_mm: float, dpi: int, engine: str) -> _Code:
    """Encode `data` and draw it at the largest whole-dot module size that fits `area_mm`."""
    try:
        symbol = encode(data, error_correction, engine=engine)
    except DataTooLongError as exc:
        raise ApiError(422, "data_too_long", f"The QR data is too long: {exc}.", field="qr_data") from exc
    dots = module_dots(symbol.width, area_mm, dpi)
    pixels = dots * (symbol.width + 2 * QUIET_ZONE)
    png = _greyscale(render(symbol, "png", Style(size=pixels, quiet_zone=QUIET_ZONE)))
    return _Code(png, pixels, dots)


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
class _Placed:
    """Where a code goes on the page: position and size in inches, on the printer's dot grid."""

    left: float
    top: float
    size: float


def _place(code: _Code, area: _Box, label_x: float, label_y: float, dpi: int) -> _Placed:
    """Centre `code` in `area` of the label at (label_x, label_y) mm, on whole printer dots."""
    side_mm = code.pixels / dpi * _MM_PER_INCH
    x = label_x + area.x + (area.width - side_mm) / 2
    y = label_y + area.y + (area.height - side_mm) / 2
    return _Placed(
        round(x / _MM_PER_INCH * dpi) / dpi,
        round(y / _MM_PER_INCH * dpi) / dpi,
        code.pixels / dpi,
    )


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field=field)


def _out_of_range(field: str, message: str) -> ApiError:
    return ApiError(400, "out_of_range", message, field=field)


def _check_dpi(dpi: int) -> None:
    if isinstance(dpi, bool) or not isinstance(dpi, int):
        raise _invalid("dpi", "dpi must be a whole number of dots per inch.")
    if not DPI_RANGE[0] <= dpi <= DPI_RANGE[1]:
        raise _out_of_range("dpi", f"dpi must be from {DPI_RANGE[0]} to {DPI_RANGE[1]}.")


def _check_start_at(start_at: int, sheet: LabelLayout) -> None:
    if isinstance(start_at, bool) or not isinstance(start_at, int):
        raise _invalid("start_at", "start_at must be a whole number.")
    if not 1 <= start_at <= sheet.per_sheet:
        raise _out_of_range("start_at", f"start_at must be from 1 to {sheet.per_sheet} on {sheet.name}.")


def _check_common(dpi: int, error_correction: str, engine: str) -> None:
    _check_dpi(dpi)
    if error_correction not in ERROR_CORRECTION_LEVELS:
        raise _invalid(
            "error_correction", f"error_correction must be one of {', '.join(ERROR_CORRECTION_LEVELS)}."
        )
    if engine not in ENGINES:
        raise _invalid("engine", f"engine must be one of {', '.join(ENGINES)}.")


def _layout(name: str) -> LabelLayout:
    try:
        return LAYOUTS[name]
    except (KeyError, TypeError):
        raise _invalid("layout", f"Unknown layout {name!r}; use one of: {', '.join(LAYOUTS)}.") from None


def _sheets(count: int, start: int, per_sheet: int) -> Iterator[list[int]]:
    """The positions (0-based, on its sheet) of `count` labels from position `start`, sheet by sheet."""
    positions: list[int] = []
    for position in range(start, start + count):
        positions.append(position % per_sheet)
        if position % per_sheet == per_sheet - 1:
            yield positions
            positions = []
    if positions:
        yield positions


@dataclass(frozen=True, slots=True)
class LabelCost:
    """What a PDF will take: pages, labels, and at most how many printer dots its distinct codes have."""

    pages: int
    labels: int
    pixels: int
    detail: str


def _code_pixels(area_mm: float, dpi: int) -> int:
    """Upper bound of a code's pixels in a square of `area_mm`: its side is whole dots inside the area."""
    side = math.floor(area_mm / _MM_PER_INCH * dpi + 1e-9)
    return side * side


def shelf_cost(
    layout: str, count: int, distinct: int, *, start_at: int = 1, dpi: int | None = None
) -> LabelCost:
    """The cost of `count` shelf labels with `distinct` different codes, from the request alone.

    `distinct` may be an upper bound (the number of different SKUs asked for). Checks
    the layout, `dpi` and `start_at` too (400s), so callers can run it before anything else.
    """
    sheet = _layout(layout)
    dpi = sheet.dpi if dpi is None else dpi
    _check_dpi(dpi)
    _check_start_at(start_at, sheet)
    pages = -(-(start_at - 1 + count) // sheet.per_sheet)
    pixels = min(distinct, count) * _code_pixels(_shelf_design(sheet).qr.width, dpi)
    detail = f"{count} labels, {min(distinct, count)} distinct codes, on {sheet.name} at {dpi} dpi"
    if start_at > 1:
        detail += f" from label {start_at}"
    return LabelCost(pages, count, pixels, detail)


#: Side of the square the packing label's code fills (3 in: large enough to scan from a shelf).
_PACKING_CODE_MM = 3 * _MM_PER_INCH


def packing_cost(dpi: int = 203) -> LabelCost:
    """The cost of one packing label: one page, one code of up to (3 in × dpi)² dots."""
    _check_dpi(dpi)
    return LabelCost(1, 1, _code_pixels(_PACKING_CODE_MM, dpi), f"a packing label at {dpi} dpi")


def check_cost(cost: LabelCost, limits: LabelLimits = DEFAULT_LIMITS) -> None:
    """413 `too_many_labels`, `too_many_pages` or `too_many_pixels` naming the setting that bounds it."""
    check_label_count(cost.labels, limits.labels)
    if cost.pages > limits.pages:
        raise ApiError(
            413,
            "too_many_pages",
            f"{cost.detail} take {cost.pages} pages; at most {limits.pages} pages in one PDF "
            "(QRSVC_LABEL_MAX_PAGES): send fewer labels per request.",
        )
    megapixels = cost.pixels / 1e6
    if megapixels > limits.megapixels:
        raise ApiError(
            413,
            "too_many_pixels",
            f"{cost.detail} take up to {megapixels:.1f} megapixels of printer dots; at most "
            f"{limits.megapixels:g} in one PDF (QRSVC_LABEL_MAX_MEGAPIXELS): lower dpi or send "
            "fewer different products per request.",
        )


def check_label_count(count: int, limit: int = MAX_LABELS) -> None:
    """413 `too_many_labels` past `limit`; callers with copies check the total before building them."""
    if count > limit:
        raise ApiError(
            413,
            "too_many_labels",
            f"{count} labels asked for; at most {limit} in one PDF (QRSVC_LABEL_MAX_LABELS).",
        )


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
    sheet = _layout(layout)
    dpi = sheet.dpi if dpi is None else dpi
    _check_common(dpi, error_correction, engine)
    if not labels:
        raise _invalid("labels", "Give at least one label.")
    check_label_count(len(labels), limits.labels)  # before counting distinct codes in a huge list
    distinct = len({label.qr_data for label in labels})
    check_cost(shelf_cost(layout, len(labels), distinct, start_at=start_at, dpi=dpi), limits)
    for field, offset in (("offset_x_mm", offset_x_mm), ("offset_y_mm", offset_y_mm)):
        if not -MAX_OFFSET_MM <= offset <= MAX_OFFSET_MM:  # also refuses NaN
            raise _out_of_range(field, f"{field} must be from {-MAX_OFFSET_MM:g} to {MAX_OFFSET_MM:g} mm.")

    design = _shelf_design(sheet)
    codes: dict[str, _Code] = {}
    # Positions repeat on every sheet: they go into a few CSS rules, not 300 style attributes.
    boxes: dict[int, tuple[float, float]] = {}
    spots: dict[tuple[int, int], _Placed] = {}
    pages: list[list[tuple[ShelfLabel, int, str]]] = []
    items = iter(labels)
    for positions in _sheets(len(labels), start_at - 1, sheet.per_sheet):
        page = []
        for position in positions:
            label = next(items)
            code = codes.get(label.qr_data)
            if code is None:
                code = codes[label.qr_data] = _draw(
                    label.qr_data, error_correction, design.qr.width, dpi, engine
                )
            if position not in boxes:
                x, y = sheet.origin(position)
                boxes[position] = (x + offset_x_mm, y + offset_y_mm)
            if (position, code.pixels) not in spots:
                spots[position, code.pixels] = _place(code, design.qr, *boxes[position], dpi)
            page.append((label, position, f"{position}-{code.pixels}"))
        pages.append(page)
    # Images travel beside the HTML, not inside it: parsing 300 data: URIs is slow.
    urls = {data: f"{IMAGE_SCHEME}:{n}" for n, data in enumerate(codes)}
    html = _templates.get_template("shop/labels/shelf.html").render(
        layout=sheet,
        design=design,
        pages=pages,
        boxes=boxes,
        spots={f"{position}-{pixels}": spot for (position, pixels), spot in spots.items()},
        urls=urls,
        font=FONT_FAMILY,
    )
    return _write_pdf(html, {urls[data]: code.png for data, code in codes.items()})


def render_packing_label(
    label: PackingLabel,
    *,
    dpi: int = 203,
    error_correction: str = "M",
    engine: str = "zxing",
    limits: LabelLimits = DEFAULT_LIMITS,
) -> bytes:
    """A one-page 4 × 6 in PDF: order number, ship-to address, item count and the order's code."""
    _check_common(dpi, error_correction, engine)
    check_cost(packing_cost(dpi), limits)
    page = LAYOUTS["thermal-4x6"]
    inset = 0.25 * _MM_PER_INCH
    side = _PACKING_CODE_MM
    area = _Box(inset, page.label_height - inset - side, page.label_width - 2 * inset, side)
    code = _draw(label.qr_data, error_correction, side, dpi, engine)
    html = _templates.get_template("shop/labels/packing.html").render(
        layout=page,
        label=label,
        qr=_place(code, area, 0, 0, dpi),
        url=f"{IMAGE_SCHEME}:0",
        inset=inset,
        font=FONT_FAMILY,
    )
    return _write_pdf(html, {f"{IMAGE_SCHEME}:0": code.png})


def _write_pdf(html: str, images: Mapping[str, bytes]) -> bytes:
    fetcher = LabelUrlFetcher(images)
    pdf: bytes = HTML(string=html, base_url="data:,", url_fetcher=fetcher).write_pdf()
    return pdf
