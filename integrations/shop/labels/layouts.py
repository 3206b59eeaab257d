"""The label sheets we print on, as their manufacturers' templates describe them, and where a
label's code and text go. Lengths in mm; no WeasyPrint here.

Each layout is exact sheet geometry (page size, margins, pitch); every label is
positioned absolutely from it, which keeps WeasyPrint's layout work linear and small.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from qrsvc.toolkit import ApiError

__all__ = [
    "LAYOUTS",
    "MM_PER_INCH",
    "PACKING_CODE_MM",
    "PACKING_INSET_MM",
    "Box",
    "LabelLayout",
    "ShelfDesign",
    "find_layout",
    "packing_code_area",
    "sheets",
    "shelf_design",
]

MM_PER_INCH = 25.4


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
    return inches * MM_PER_INCH


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


def find_layout(name: str) -> LabelLayout:
    """The layout called `name`; 400 `invalid_parameter` (field `layout`) naming the choices."""
    try:
        return LAYOUTS[name]
    except (KeyError, TypeError):
        raise ApiError(
            400,
            "invalid_parameter",
            f"Unknown layout {name!r}; use one of: {', '.join(LAYOUTS)}.",
            field="layout",
        ) from None


def sheets(count: int, start: int, per_sheet: int) -> Iterator[list[int]]:
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
class Box:
    """A rectangle in mm from the top-left corner of its label."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class ShelfDesign:
    """Where a shelf label's code and text go, and the text sizes in points."""

    qr: Box
    text: Box
    name_pt: float
    sku_pt: float
    price_pt: float


def shelf_design(layout: LabelLayout) -> ShelfDesign:
    """Where the code and the text go on one shelf label of `layout`."""
    width, height = layout.label_width, layout.label_height
    if height <= width:
        # Address-style labels: the code on the left, as high as the label, text beside it.
        inset = max(1.0, height * 0.04)
        side = height - 2 * inset
        text_x = inset + side + inset
        scale = height / MM_PER_INCH
        return ShelfDesign(
            qr=Box(inset, inset, side, side),
            text=Box(text_x, inset * 1.5, width - text_x - 2 * inset, height - 3 * inset),
            name_pt=6 + 2 * scale,
            sku_pt=5.5 + 1.5 * scale,
            price_pt=8 + 3 * scale,
        )
    # Tall labels (4 × 6 in): text on top, the code as wide as the label below it.
    inset = width * 0.04
    side = width - 2 * inset
    return ShelfDesign(
        qr=Box(inset, height - inset - side, side, side),
        text=Box(inset * 1.5, inset * 1.5, width - 3 * inset, height - side - 3.5 * inset),
        name_pt=18,
        sku_pt=12,
        price_pt=24,
    )


#: Side of the square the packing label's code fills (3 in: large enough to scan from a shelf).
PACKING_CODE_MM = 3 * MM_PER_INCH

#: The packing label's margin (¼ in).
PACKING_INSET_MM = 0.25 * MM_PER_INCH


def packing_code_area() -> Box:
    """Where the code goes on the 4 × 6 in packing label: at the bottom, as wide as the margins allow."""
    page = LAYOUTS["thermal-4x6"]
    inset = PACKING_INSET_MM
    return Box(
        inset, page.label_height - inset - PACKING_CODE_MM, page.label_width - 2 * inset, PACKING_CODE_MM
    )
