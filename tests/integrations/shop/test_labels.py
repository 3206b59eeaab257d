"""Shelf and packing label PDFs: every code scans where the sheet says it is, on whole printer dots.

Pure function tests (no app): the PDFs are rasterised with pdfium and every label
cell is decoded on its own with zxing-cpp, which proves both the text and the
position; pdfium's image objects give exact placement and pixel sizes.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdfium2
import pypdfium2.raw as pdfium_c
import pytest
import weasyprint
import zxingcpp
from PIL import Image

from integrations.shop.labels.documents import (
    PackingLabel,
    ShelfLabel,
    render_packing_label,
    render_shelf_labels,
)
from integrations.shop.labels.layouts import LAYOUTS
from integrations.shop.labels.limits import DEFAULT_LIMITS, MAX_LABELS, LabelLimits
from qrsvc.errors import ApiError
from qrsvc.pdf import url_fetcher as LabelUrlFetcher
from qrsvc.printing import module_dots
from qrsvc.qr import encode
from tests.conftest import decode_image

MM_PER_PT = 25.4 / 72
TOLERANCE_MM = 0.5
IN = 25.4


@dataclass(frozen=True)
class Sheet:
    """A sheet as its manufacturer documents it (mm), written out here independently of the module."""

    page: tuple[float, float]
    grid: tuple[int, int]
    label: tuple[float, float]
    first: tuple[float, float]
    pitch: tuple[float, float]

    @property
    def per_sheet(self) -> int:
        return self.grid[0] * self.grid[1]

    def origin(self, position: int, offset: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
        row, column = divmod(position, self.grid[0])
        return (
            self.first[0] + column * self.pitch[0] + offset[0],
            self.first[1] + row * self.pitch[1] + offset[1],
        )


SHEETS = {
    # Letter; top 0.5 in, side 3/16 in; 2 5/8 x 1 in; pitch 2.75 x 1 in.
    "avery-5160": Sheet(
        (8.5 * IN, 11 * IN), (3, 10), (2.625 * IN, IN), (0.1875 * IN, 0.5 * IN), (2.75 * IN, IN)
    ),
    # Letter; top 0.5 in, side 5/32 in; 4 x 2 in; pitch 4 3/16 x 2 in.
    "avery-5163": Sheet(
        (8.5 * IN, 11 * IN), (2, 5), (4 * IN, 2 * IN), (0.15625 * IN, 0.5 * IN), (4.1875 * IN, 2 * IN)
    ),
    # A4; top 15.15 mm, side 7.21 mm; 63.5 x 38.1 mm; pitch 66.04 x 38.1 mm.
    "avery-l7160": Sheet((210, 297), (3, 7), (63.5, 38.1), (7.21, 15.15), (66.04, 38.1)),
    "thermal-4x6": Sheet((4 * IN, 6 * IN), (1, 1), (4 * IN, 6 * IN), (0, 0), (4 * IN, 6 * IN)),
}


@dataclass(frozen=True)
class PlacedImage:
    """An image drawn on a page: its box in mm from the page's top-left corner, and its pixels."""

    left: float
    top: float
    width: float
    height: float
    pixels: tuple[int, int]

    @property
    def centre(self) -> tuple[float, float]:
        return self.left + self.width / 2, self.top + self.height / 2


@dataclass(frozen=True)
class Page:
    width: float
    height: float
    image: Image.Image
    scale: float
    images: list[PlacedImage]
    text: str

    def crop(self, left: float, top: float, width: float, height: float) -> Image.Image:
        """The part of the rasterised page inside a box given in mm."""
        px = self.scale / MM_PER_PT
        return self.image.crop(
            (round(left * px), round(top * px), round((left + width) * px), round((top + height) * px))
        )


def read_pdf(content: bytes, dpi: int) -> list[Page]:
    """Every page rasterised at `dpi`, with its image objects and text."""
    assert content.startswith(b"%PDF-")
    document = pypdfium2.PdfDocument(content)
    pages = []
    try:
        for page in document:
            width, height = page.get_size()
            images = []
            for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)):
                left, bottom, right, top = obj.get_bounds()
                images.append(
                    PlacedImage(
                        left * MM_PER_PT,
                        (height - top) * MM_PER_PT,
                        (right - left) * MM_PER_PT,
                        (top - bottom) * MM_PER_PT,
                        obj.get_px_size(),
                    )
                )
            text = page.get_textpage().get_text_range()
            scale = dpi / 72
            image = page.render(scale=scale, grayscale=True).to_pil()
            pages.append(Page(width * MM_PER_PT, height * MM_PER_PT, image, scale, images, text))
    finally:
        document.close()
    return pages


def decode_texts(image: Image.Image) -> list[str]:
    return decode_image(image)


def cells(sheet: Sheet, offset: tuple[float, float] = (0.0, 0.0)) -> Iterator[tuple[int, float, float]]:
    """(position, left, top) in mm of every label on one sheet, in reading order."""
    for position in range(sheet.per_sheet):
        x, y = sheet.origin(position, offset)
        yield position, x, y


def shelf_labels(count: int, prefix: str = "p") -> list[ShelfLabel]:
    return [
        ShelfLabel(
            name=f"Organic fair-trade coffee beans, dark roast, 1 kg bag number {i}",
            sku=f"SKU-{prefix}{i:04d}",
            price=f"€{i}.50" if i % 3 else None,
            qr_data=f"https://shop.example.com/p/{prefix}{i:04d}",
        )
        for i in range(count)
    ]


def assert_cells_decode(pages: list[Page], sheet: Sheet, expected: list[str | None]) -> None:
    """Cell n (over all sheets) decodes to exactly expected[n], or to nothing when it is None."""
    assert len(pages) == -(-len(expected) // sheet.per_sheet)
    for index, want in enumerate(expected):
        page = pages[index // sheet.per_sheet]
        x, y = sheet.origin(index % sheet.per_sheet)
        found = decode_texts(page.crop(x, y, *sheet.label))
        assert found == ([] if want is None else [want]), f"cell {index + 1}"


@pytest.mark.parametrize("name", sorted(SHEETS))
def test_layouts_have_the_manufacturers_geometry(name: str) -> None:
    layout, sheet = LAYOUTS[name], SHEETS[name]
    assert (layout.page_width, layout.page_height) == pytest.approx(sheet.page, abs=0.01)
    assert (layout.columns, layout.rows) == sheet.grid
    assert (layout.label_width, layout.label_height) == pytest.approx(sheet.label, abs=0.01)
    assert (layout.left, layout.top) == pytest.approx(sheet.first, abs=0.01)
    assert (layout.pitch_x, layout.pitch_y) == pytest.approx(sheet.pitch, abs=0.01)
    # Every label lies on the page.
    right, bottom = sheet.origin(sheet.per_sheet - 1)
    assert right + sheet.label[0] <= sheet.page[0] and bottom + sheet.label[1] <= sheet.page[1]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_prints_one_scannable_code_per_label_in_its_cell(name: str) -> None:
    sheet = SHEETS[name]
    labels = shelf_labels(sheet.per_sheet + 2)
    pages = read_pdf(render_shelf_labels(labels, name), LAYOUTS[name].dpi)

    for page in pages:
        assert abs(page.width - sheet.page[0]) < TOLERANCE_MM
        assert abs(page.height - sheet.page[1]) < TOLERANCE_MM
    # The second sheet holds the last two labels; its other cells stay blank.
    expected: list[str | None] = [label.qr_data for label in labels]
    expected += [None] * (len(pages) * sheet.per_sheet - len(labels))
    assert_cells_decode(pages, sheet, expected)
    # And the whole first sheet, decoded at once, has one code per label.
    assert sorted(decode_texts(pages[0].image)) == sorted(
        label.qr_data for label in labels[: sheet.per_sheet]
    )


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_codes_sit_at_the_sheet_pitch_inside_their_labels(name: str) -> None:
    sheet = SHEETS[name]
    labels = [
        ShelfLabel("Tea", f"T{i}", "€1", f"https://shop.example.com/p/T{i}") for i in range(sheet.per_sheet)
    ]
    (page,) = read_pdf(render_shelf_labels(labels, name), 150)
    assert len(page.images) == sheet.per_sheet
    # pdfium lists images in document order: the same as label order.
    for (_position, x, y), image in zip(cells(sheet), page.images, strict=True):
        assert x <= image.left and image.left + image.width <= x + sheet.label[0]
        assert y <= image.top and image.top + image.height <= y + sheet.label[1]
        if sheet.label[0] > sheet.label[1]:
            # Address-style labels carry the code as a square at their left end.
            half = sheet.label[1] / 2
            assert abs(image.centre[0] - (x + half)) < TOLERANCE_MM
            assert abs(image.centre[1] - (y + half)) < TOLERANCE_MM
    for position, image in enumerate(page.images):
        row, column = divmod(position, sheet.grid[0])
        first = page.images[row * sheet.grid[0]]
        assert abs(image.centre[0] - first.centre[0] - column * sheet.pitch[0]) < TOLERANCE_MM
        top = page.images[column]
        assert abs(image.centre[1] - top.centre[1] - row * sheet.pitch[1]) < TOLERANCE_MM
    # The decoder agrees with the PDF on where the codes are.
    results = zxingcpp.read_barcodes(page.image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(results) == sheet.per_sheet
    px_to_mm = MM_PER_PT / page.scale
    found = {r.text: r.position for r in results}
    for label, image in zip(labels, page.images, strict=True):
        corners = found[label.qr_data]
        xs = [p.x for p in (corners.top_left, corners.top_right, corners.bottom_left, corners.bottom_right)]
        ys = [p.y for p in (corners.top_left, corners.top_right, corners.bottom_left, corners.bottom_right)]
        centre = (sum(xs) / 4 * px_to_mm, sum(ys) / 4 * px_to_mm)
        assert abs(centre[0] - image.centre[0]) < TOLERANCE_MM
        assert abs(centre[1] - image.centre[1]) < TOLERANCE_MM


@pytest.mark.parametrize(
    ("name", "dpi"),
    [
        ("avery-5160", None),
        ("avery-5160", 600),
        ("avery-5163", 203),
        ("avery-l7160", None),
        ("thermal-4x6", None),
    ],
)
def test_modules_are_whole_printer_dots_on_the_dot_grid(name: str, dpi: int | None) -> None:
    layout, sheet = LAYOUTS[name], SHEETS[name]
    resolution = dpi or layout.dpi
    labels = shelf_labels(3, prefix="dots")
    content = render_shelf_labels(labels, name, dpi=dpi, offset_x_mm=0.37, offset_y_mm=-0.61)
    (page, *_) = read_pdf(content, 72)
    assert page.images
    for label, image in zip(labels, page.images, strict=False):
        modules = encode(label.qr_data, "H").width + 8
        pixels, _ = image.pixels
        # One image pixel per printer dot, a whole number of dots per module...
        assert abs(pixels / (image.width / 25.4) - resolution) < 0.01 * resolution / 100
        assert pixels % modules == 0
        dots = pixels // modules
        assert dots * 25.4 / resolution >= 0.33
        # ...and the largest such number that fits the label.
        area = 0.92 * min(sheet.label)
        assert (dots + 1) * modules * 25.4 / resolution > area - 0.1
        # The image's corner falls on the dot grid even with calibration offsets.
        for mm in (image.left, image.top):
            position = mm / 25.4 * resolution
            assert abs(position - round(position)) < 0.01


def test_start_at_skips_used_labels_on_the_first_sheet() -> None:
    labels = shelf_labels(30, prefix="s")
    pages = read_pdf(render_shelf_labels(labels, "avery-5160", start_at=5), 150)
    expected: list[str | None] = [None] * 4 + [label.qr_data for label in labels]
    expected += [None] * (60 - len(expected))
    assert_cells_decode(pages, SHEETS["avery-5160"], expected)


@pytest.mark.parametrize(("name", "start_at"), [("avery-5160", 0), ("avery-5160", 31), ("thermal-4x6", 2)])
def test_start_at_outside_the_sheet_is_400(name: str, start_at: int) -> None:
    with pytest.raises(ApiError) as error:
        render_shelf_labels(shelf_labels(1), name, start_at=start_at)
    assert (error.value.status, error.value.code, error.value.field) == (400, "out_of_range", "start_at")


def test_offsets_move_every_code_by_the_given_millimetres() -> None:
    labels = shelf_labels(21, prefix="o")
    (plain,) = read_pdf(render_shelf_labels(labels, "avery-l7160"), 72)
    shifted_pdf = render_shelf_labels(labels, "avery-l7160", offset_x_mm=3.0, offset_y_mm=-2.0)
    (shifted,) = read_pdf(shifted_pdf, 72)
    dot = 25.4 / 300
    for before, after in zip(plain.images, shifted.images, strict=True):
        assert abs(after.left - before.left - 3.0) <= dot
        assert abs(after.top - before.top + 2.0) <= dot
    # And the codes scan in the shifted cells.
    sheet = SHEETS["avery-l7160"]
    (page,) = read_pdf(shifted_pdf, 300)
    for (_position, x, y), label in zip(cells(sheet, (3.0, -2.0)), labels, strict=True):
        assert decode_texts(page.crop(x, y, *sheet.label)) == [label.qr_data]


def test_identical_codes_are_drawn_once() -> None:
    labels = [ShelfLabel("Same", "S", "€1", "https://shop.example.com/p/same")] * 30
    content = render_shelf_labels(labels)
    distinct = render_shelf_labels(shelf_labels(30, prefix="d"))
    (page,) = read_pdf(content, 150)
    assert len(page.images) == 30
    assert decode_texts(page.image) == ["https://shop.example.com/p/same"] * 30
    # One embedded image shared by 30 placements: far smaller than 30 distinct ones.
    assert len(content) * 5 < len(distinct)


def test_long_names_are_ellipsized_and_keep_sku_and_price_on_the_label() -> None:
    label = ShelfLabel(
        "Extraordinarily " * 20 + "END", "SKU-LONG", "€99.99", "https://shop.example.com/p/long"
    )
    (page,) = read_pdf(render_shelf_labels([label]), 150)
    assert "…" in page.text
    assert "END" not in page.text
    assert "SKU-LONG" in page.text
    assert "€99.99" in page.text


def test_markup_in_a_product_name_is_printed_as_text_not_loaded() -> None:
    label = ShelfLabel(
        '<img src="file:///etc/passwd">',
        '<link rel="stylesheet" href="http://127.0.0.1:9/x.css">',
        "&amp;",
        "https://shop.example.com/p/x",
    )
    (page,) = read_pdf(render_shelf_labels([label], "thermal-4x6"), 100)
    assert len(page.images) == 1  # only the QR code
    text = "".join(page.text.split())
    assert '<imgsrc="file:///etc/passwd">' in text
    assert "<linkrel=" in text
    assert "&amp;" in text


def test_fetcher_serves_data_uris_and_refuses_everything_else() -> None:
    fetcher = LabelUrlFetcher({"label-image:0": b"png bytes"})
    assert fetcher.fetch("data:text/plain;base64,aGVsbG8=").read() == b"hello"
    assert fetcher.fetch("label-image:0").read() == b"png bytes"
    for url in (
        "label-image:1",
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "http://127.0.0.1/",
        "https://example.com/x.png",
        "ftp://example.com/x",
        "data:text/plain,not-base64",
    ):
        with pytest.raises(ValueError, match="data: URIs"):
            fetcher.fetch(url)


def test_weasyprint_with_the_fetcher_loads_nothing_from_disk_or_network(tmp_path: Path) -> None:
    picture = tmp_path / "secret.png"
    Image.new("L", (50, 50), 0).save(picture)
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(picture.read_bytes())

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        html = (
            f'<link rel="stylesheet" href="{base}/style.css">'
            f'<img src="{picture.as_uri()}"><img src="{base}/remote.png">'
            f'<div style="background: url({base}/bg.png)">x</div>'
        )
        # The same documents without the fetcher do load both: the test can fail.
        unguarded = weasyprint.HTML(string=html).write_pdf()
        assert len(read_pdf(unguarded, 72)[0].images) >= 2 and requests
        requests.clear()
        guarded = weasyprint.HTML(string=html, base_url="data:,", url_fetcher=LabelUrlFetcher()).write_pdf()
        assert read_pdf(guarded, 72)[0].images == []
        assert requests == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_code_too_dense_for_the_label_is_422() -> None:
    data = "https://shop.example.com/p/" + "x" * 300
    with pytest.raises(ApiError) as error:
        render_shelf_labels([ShelfLabel("Big", "B", None, data)], "avery-5160")
    assert (error.value.status, error.value.code) == (422, "code_too_small")
    # The same data fits a bigger label, or the small one at a lower error correction level.
    (page,) = read_pdf(render_shelf_labels([ShelfLabel("Big", "B", None, data)], "thermal-4x6"), 203)
    assert decode_texts(page.image) == [data]


def test_data_that_fits_no_qr_code_is_422() -> None:
    with pytest.raises(ApiError) as error:
        render_shelf_labels([ShelfLabel("Huge", "H", None, "x" * 3000)], "thermal-4x6")
    assert (error.value.status, error.value.code) == (422, "data_too_long")


@pytest.mark.parametrize(
    ("symbol_width", "area_mm", "dpi", "dots"),
    [
        (21, 25.4, 300, 10),  # 29 modules in 300 dots
        (33, 23.4, 300, 6),  # 41 modules in 276 dots
        (61, 23.4, 300, 4),  # 69 modules in 276 dots: 4 dots = 0.339 mm, the smallest allowed
        (65, 23.4, 300, 3),  # 73 modules: 3 dots = 0.254 mm, too small
        (21, 10.0, 203, 2),  # 2 dots at 203 dpi = 0.25 mm: too small
        (57, 23.4, 600, 8),
    ],
)
def test_module_size_is_the_largest_whole_dot_count_of_at_least_a_third_of_a_millimetre(
    symbol_width: int, area_mm: float, dpi: int, dots: int
) -> None:
    if dots * 25.4 / dpi < 0.33:
        with pytest.raises(ApiError) as error:
            module_dots(symbol_width, area_mm, dpi)
        assert error.value.status == 422
    else:
        assert module_dots(symbol_width, area_mm, dpi) == dots


def test_more_than_max_labels_is_413_before_any_rendering() -> None:
    label = ShelfLabel("x", "x", None, "x" * 2000)  # would be a 422 if it were ever drawn
    with pytest.raises(ApiError) as error:
        render_shelf_labels([label] * (MAX_LABELS + 1))
    assert (error.value.status, error.value.code) == (413, "too_many_labels")
    assert "QRSVC_LABEL_MAX_LABELS" in error.value.message
    with pytest.raises(ApiError) as error:
        render_shelf_labels([label] * 11, limits=LabelLimits(labels=10, pages=100, megapixels=100))
    assert error.value.status == 413


#: Labels whose code would be a 422 `data_too_long` if it were ever drawn: a 413 proves nothing was.
def undrawable(count: int, distinct: int | None = None) -> list[ShelfLabel]:
    distinct = distinct or count
    return [ShelfLabel("x", "x", None, f"{i % distinct}" + "x" * 8000) for i in range(count)]


@pytest.mark.parametrize(
    ("layout", "count", "distinct", "options", "limits", "code", "setting"),
    [
        # The request: 3000 copies on a thermal roll are 3000 pages.
        ("thermal-4x6", 3000, 1, {}, DEFAULT_LIMITS, "too_many_labels", "QRSVC_LABEL_MAX_LABELS"),
        ("thermal-4x6", 3, 1, {}, LabelLimits(labels=10, pages=2, megapixels=100), "too_many_pages", "PAGES"),
        # start_at counts: 30 labels from label 2 of a 5160 sheet spill onto a second page.
        ("avery-5160", 30, 1, {"start_at": 2}, LabelLimits(100, 1, 100), "too_many_pages", "PAGES"),
        # 1200 dpi codes on a 4x6 label are ~19 megapixels each; two distinct ones are over 30.
        ("thermal-4x6", 2, 2, {"dpi": 1200}, LabelLimits(10, 10, 30), "too_many_pixels", "MEGAPIXELS"),
        ("avery-5160", 30, 30, {"dpi": 1200}, LabelLimits(100, 10, 30), "too_many_pixels", "MEGAPIXELS"),
    ],
)
def test_work_over_a_limit_is_413_naming_it_before_any_drawing(
    layout: str,
    count: int,
    distinct: int,
    options: dict[str, int],
    limits: LabelLimits,
    code: str,
    setting: str,
) -> None:
    with pytest.raises(ApiError) as error:
        render_shelf_labels(undrawable(count, distinct), layout, limits=limits, **options)  # type: ignore[arg-type]
    assert (error.value.status, error.value.code) == (413, code), error.value.message
    assert setting in error.value.message


def test_identical_codes_count_their_pixels_once_and_limits_are_inclusive() -> None:
    """30 copies of one 1200 dpi code fit where 30 distinct ones do not; exactly at a limit is allowed."""
    limits = LabelLimits(labels=30, pages=1, megapixels=30)
    same = shelf_labels(1) * 30
    (page,) = read_pdf(render_shelf_labels(same, "avery-5160", dpi=1200, limits=limits), 150)
    assert decode_texts(page.crop(*SHEETS["avery-5160"].origin(29), *SHEETS["avery-5160"].label)) == [
        same[0].qr_data
    ]
    with pytest.raises(ApiError) as error:
        render_shelf_labels(shelf_labels(30), "avery-5160", dpi=1200, limits=limits)
    assert error.value.code == "too_many_pixels"


def test_a_packing_label_over_the_pixel_limit_is_413_before_drawing() -> None:
    label = PackingLabel("1", ("A",), 1, "x" * 8000)  # a 422 if it were drawn
    with pytest.raises(ApiError) as error:
        render_packing_label(label, dpi=1200, limits=LabelLimits(labels=1, pages=1, megapixels=10))
    assert (error.value.status, error.value.code) == (413, "too_many_pixels")
    small = PackingLabel("1", ("A",), 1, "https://shop.example.com/o/1")
    pdf = render_packing_label(small, dpi=1200, limits=LabelLimits(labels=1, pages=1, megapixels=13))
    assert decode_texts(read_pdf(pdf, 150)[0].image) == [small.qr_data]


def test_unknown_layout_is_400_naming_the_allowed_ones() -> None:
    with pytest.raises(ApiError) as error:
        render_shelf_labels(shelf_labels(1), "avery-9999")
    assert (error.value.status, error.value.code, error.value.field) == (400, "invalid_parameter", "layout")
    for name in LAYOUTS:
        assert name in error.value.message


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"dpi": 50}, "out_of_range", "dpi"),
        ({"dpi": 300.5}, "invalid_parameter", "dpi"),
        ({"dpi": True}, "invalid_parameter", "dpi"),
        ({"error_correction": "X"}, "invalid_parameter", "error_correction"),
        ({"start_at": "3"}, "invalid_parameter", "start_at"),
        ({"offset_x_mm": 40.0}, "out_of_range", "offset_x_mm"),
        ({"offset_y_mm": -30.0}, "out_of_range", "offset_y_mm"),
        ({"offset_y_mm": float("nan")}, "out_of_range", "offset_y_mm"),
    ],
)
def test_bad_options_are_400_naming_the_field(kwargs: dict[str, object], code: str, field: str) -> None:
    with pytest.raises(ApiError) as error:
        render_shelf_labels(shelf_labels(1), "avery-5160", **kwargs)  # type: ignore[arg-type]
    assert (error.value.status, error.value.code, error.value.field) == (400, code, field)


def test_no_labels_is_400() -> None:
    with pytest.raises(ApiError) as error:
        render_shelf_labels([])
    assert (error.value.status, error.value.field) == (400, "labels")


def test_packing_label_is_4_by_6_inches_with_the_order_code_and_address() -> None:
    label = PackingLabel(
        order_number="#1001",
        ship_to=("Ada Lovelace", "12 Example Street", "London W1 1AA", "United Kingdom"),
        item_count=3,
        qr_data="https://shop.example.com/orders/1001/track",
    )
    (page,) = read_pdf(render_packing_label(label), 203)
    assert abs(page.width - 101.6) < TOLERANCE_MM and abs(page.height - 152.4) < TOLERANCE_MM
    assert decode_texts(page.image) == [label.qr_data]
    for text in ("Order #1001", "Ada Lovelace", "London W1 1AA", "3 items"):
        assert text in page.text
    (image,) = page.images
    modules = encode(label.qr_data, "M").width + 8
    assert image.pixels[0] % modules == 0
    assert abs(image.pixels[0] / (image.width / 25.4) - 203) < 0.01
    assert image.width > 60  # the order code is large: at least 6 cm


def test_packing_label_rejects_bad_options() -> None:
    label = PackingLabel("1", ("A",), 1, "x")
    with pytest.raises(ApiError) as error:
        render_packing_label(label, dpi=20)
    assert error.value.field == "dpi"
    with pytest.raises(ApiError) as error:
        render_packing_label(label, error_correction="Z")
    assert error.value.field == "error_correction"
    with pytest.raises(ApiError) as error:
        render_packing_label(label, engine="nope")
    assert (error.value.status, error.value.field) == (400, "engine")
    with pytest.raises(ApiError) as error:
        render_shelf_labels([ShelfLabel("A", "A", None, "x")], engine="nope")
    assert (error.value.status, error.value.field) == (400, "engine")
