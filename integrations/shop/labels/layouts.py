"""The label sheets we print on, as their manufacturers' templates describe them, and where a
label's code and text go. Lengths in mm; no WeasyPrint here.

Each layout is exact sheet geometry (page size, margins, pitch); every label is
positioned absolutely from it, which keeps WeasyPrint's layout work linear and small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from qrsvc.toolkit import MM_PER_INCH, Box, SheetLayout, inches

__all__ = [
    "LAYOUTS",
    "PACKING_CODE_MM",
    "PACKING_INSET_MM",
    "LabelLayout",
    "ShelfDesign",
    "packing_code_area",
    "shelf_design",
]


class LabelLayout(SheetLayout):
    """A label sheet (or roll): the toolkit's `SheetLayout`, whose cells are the labels.

    Labels are numbered from 1 in reading order (the request's `start_at`); lengths in mm.
    """

    __slots__ = ()

    @property
    def label_width(self) -> float:
        return self.cell_width

    @property
    def label_height(self) -> float:
        return self.cell_height


#: Geometry from the manufacturers' templates; the README's label section lists the sources.
LAYOUTS: Mapping[str, LabelLayout] = MappingProxyType(
    {
        layout.name: layout
        for layout in (
            LabelLayout(
                name="avery-5160",
                description="Avery 5160 address labels: Letter, 3 × 10, 2⅝ × 1 in",
                page_width=inches(8.5),
                page_height=inches(11),
                columns=3,
                rows=10,
                cell_width=inches(2.625),
                cell_height=inches(1),
                left=inches(0.1875),
                top=inches(0.5),
                pitch_x=inches(2.75),
                pitch_y=inches(1),
                dpi=300,
            ),
            LabelLayout(
                name="avery-5163",
                description="Avery 5163 shipping labels: Letter, 2 × 5, 4 × 2 in",
                page_width=inches(8.5),
                page_height=inches(11),
                columns=2,
                rows=5,
                cell_width=inches(4),
                cell_height=inches(2),
                left=inches(0.15625),
                top=inches(0.5),
                pitch_x=inches(4.1875),
                pitch_y=inches(2),
                dpi=300,
            ),
            LabelLayout(
                name="avery-l7160",
                description="Avery L7160 address labels: A4, 3 × 7, 63.5 × 38.1 mm",
                page_width=210,
                page_height=297,
                columns=3,
                rows=7,
                cell_width=63.5,
                cell_height=38.1,
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
                page_width=inches(4),
                page_height=inches(6),
                columns=1,
                rows=1,
                cell_width=inches(4),
                cell_height=inches(6),
                left=0,
                top=0,
                pitch_x=inches(4),
                pitch_y=inches(6),
                dpi=203,
            ),
        )
    }
)


@dataclass(frozen=True, slots=True)
class ShelfDesign:
    """Where a shelf label's code and text go, and the text sizes in points."""

    qr: Box
    text: Box
    name_pt: float
    sku_pt: float
    price_pt: float


def shelf_design(layout: SheetLayout) -> ShelfDesign:
    """Where the code and the text go on one shelf label of `layout`."""
    width, height = layout.cell_width, layout.cell_height
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
        inset, page.cell_height - inset - PACKING_CODE_MM, page.cell_width - 2 * inset, PACKING_CODE_MM
    )
