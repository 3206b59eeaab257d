"""Business cards: one 3½ × 2 in card, or sheets of ten, each with the contact's vCard code.

The code is the contact's vCard (the .vcf's text) drawn on whole printer dots with its
quiet zone (`qrsvc.printing`); when it would need modules under 0.33 mm on the card, the
smaller MeCard is drawn instead, and when even that does not fit the request is a 422
naming the contact. Text is escaped by Jinja and the PDF is made by the core's sandboxed
WeasyPrint (`html_to_pdf`), so nothing a contact says can reach the server's files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import sqlalchemy as sa
from flask import current_app, render_template

from integrations.crm.contact_codes import CODE_ERROR_CORRECTION, card_of, code_text
from integrations.crm.models import Contact
from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import (
    MIN_MODULE_MM,
    ApiError,
    Box,
    DrawnCode,
    NotFoundError,
    PlacedCode,
    PrintCost,
    PrintLimits,
    SheetLayout,
    check_cost,
    code_pixels,
    draw_code,
    find_layout,
    html_to_pdf,
    inches,
    place_code,
    resource_url,
    sheets,
)

__all__ = [
    "CARD",
    "DPI",
    "LAYOUTS",
    "CardDesign",
    "Chosen",
    "card_design",
    "check_count",
    "choose_contacts",
    "find_layout",
    "render_cards",
]

#: Laser and inkjet printers resolve 300 dpi at least: modules are 4 dots (0.34 mm) or more.
DPI = 300
#: The code's area keeps this far from the card's edges (its quiet zone is white anyway).
_EDGE_MM = 3.0
#: Margin of the text from the card's edges.
_INSET_MM = 4.0
#: The single face the cards use, installed by scripts/system-deps.sh (fonts-dejavu-core).
FONT_FAMILY = "DejaVu Sans"


#: A single card on a page of its own size.
CARD = SheetLayout(
    name="card",
    description="One 3½ × 2 in business card",
    page_width=inches(3.5),
    page_height=inches(2),
    columns=1,
    rows=1,
    cell_width=inches(3.5),
    cell_height=inches(2),
    left=0,
    top=0,
    pitch_x=inches(3.5),
    pitch_y=inches(2),
    dpi=DPI,
)

#: Card sheets; the cards of both touch (microperforated), the sheet centred on the page.
LAYOUTS: Mapping[str, SheetLayout] = MappingProxyType(
    {
        layout.name: layout
        for layout in (
            SheetLayout(
                name="avery-5371",
                description="Avery 5371 business cards: Letter, 2 × 5 cards of 3½ × 2 in",
                page_width=inches(8.5),
                page_height=inches(11),
                columns=2,
                rows=5,
                cell_width=inches(3.5),
                cell_height=inches(2),
                left=inches(0.75),
                top=inches(0.5),
                pitch_x=inches(3.5),
                pitch_y=inches(2),
                dpi=DPI,
            ),
            SheetLayout(
                name="a4-2x5",
                description="A4, 2 × 5 cards of 85 × 55 mm",
                page_width=210,
                page_height=297,
                columns=2,
                rows=5,
                cell_width=85,
                cell_height=55,
                left=20,
                top=11,
                pitch_x=85,
                pitch_y=55,
                dpi=DPI,
            ),
        )
    }
)


@dataclass(frozen=True, slots=True)
class CardDesign:
    """Where the text and the code go on one card (mm from its top-left corner), text sizes in pt."""

    qr: Box
    text: Box
    name_pt: float = 10.5
    role_pt: float = 7.5
    detail_pt: float = 7.0


def card_design(layout: SheetLayout) -> CardDesign:
    """The code as a square on the right, as tall as the card allows; the text on the left."""
    width, height = layout.cell_width, layout.cell_height
    side = min(height - 2 * _EDGE_MM, 0.45 * width)
    qr = Box(width - _EDGE_MM - side, (height - side) / 2, side, side)
    return CardDesign(qr=qr, text=Box(_INSET_MM, _INSET_MM, qr.x - _INSET_MM, height - 2 * _INSET_MM))


@dataclass(frozen=True, slots=True)
class Chosen:
    """The contacts to print, in order, and how the request named each (for a 422 about one)."""

    contacts: list[Contact]
    fields: list[str | None]


def choose_contacts(
    owner: ApiKey, contact_ids: Sequence[str] | None, *, every: bool, layout: SheetLayout
) -> Chosen:
    """`contact_ids` in the order given (a repeated id prints a card again), or `every` contact by name.

    The count is checked before anything is drawn: 413 `too_many_cards`; an unknown (or another
    key's) id is a 404 naming its place in the list.
    """
    if (contact_ids is None) == (not every):
        raise ApiError(400, "invalid_parameter", "give either contact_ids or all: true", field="contact_ids")
    query = sa.select(Contact).where(Contact.owner_id == owner.id)
    if contact_ids is None:
        most: int = current_app.config["CRM_MAX_CARDS"]
        order = (Contact.family_name, Contact.given_name, Contact.id)
        found = list(db.session.scalars(query.order_by(*order).limit(most + 1)))
        if not found:
            raise ApiError(422, "no_contacts", "there are no contacts to print")
        check_count(len(found), layout)
        return Chosen(found, [None] * len(found))
    check_count(len(contact_ids), layout)
    by_id = {c.id: c for c in db.session.scalars(query.where(Contact.id.in_(set(contact_ids))))}
    fields = [f"contact_ids[{index}]" for index in range(len(contact_ids))]
    for contact_id, field in zip(contact_ids, fields, strict=True):
        if contact_id not in by_id:
            raise NotFoundError(f"no contact {contact_id!r}", field=field)
    return Chosen([by_id[contact_id] for contact_id in contact_ids], list(fields))


def _limits() -> PrintLimits:
    """Only the count is a setting: a card is at most a page and one code of a bounded size."""
    most: int = current_app.config["CRM_MAX_CARDS"]
    largest = max(code_pixels(card_design(layout).qr.width, DPI) for layout in (CARD, *LAYOUTS.values()))
    return PrintLimits("cards", "QRSVC_CRM_MAX_", items=most, pages=most, megapixels=most * largest / 1e6)


def check_count(count: int, layout: SheetLayout) -> None:
    """413 `too_many_cards` past QRSVC_CRM_MAX_CARDS, before anything is looked up or drawn."""
    pages = math.ceil(count / layout.per_sheet)
    pixels = count * code_pixels(card_design(layout).qr.width, DPI)
    check_cost(PrintCost(pages, count, pixels, f"{count} cards on {layout.name}"), _limits())


@dataclass(frozen=True, slots=True)
class _Printed:
    """One card on a page: the contact's lines, the cell's corner (mm) and its code's place (in)."""

    contact: Contact
    x: float
    y: float
    spot: PlacedCode
    image: str


def _draw(contact: Contact, area_mm: float, field: str | None) -> DrawnCode:
    """The contact's code on whole dots: its vCard, else its MeCard, else a 422 naming the contact."""
    card = card_of(contact)
    encodings = ("mecard",) if contact.qr_encoding == "mecard" else ("vcard", "mecard")
    engine = current_app.config["ENGINE"]
    for encoding in encodings:
        try:
            return draw_code(code_text(card, encoding), CODE_ERROR_CORRECTION, area_mm, DPI, engine)
        except ApiError as error:
            if error.code not in ("code_too_small", "data_too_long"):
                raise
    raise ApiError(
        422,
        "code_too_small",
        f"contact {contact.id} ({card.full_name}) has too much to print: even its MeCard needs modules "
        f"under {MIN_MODULE_MM} mm in the card's {area_mm:.1f} mm square; shorten its note or address",
        field=field,
    )


def render_cards(
    contacts: Sequence[Contact], layout: SheetLayout, fields: Sequence[str | None] | None = None
) -> bytes:
    """A PDF of one card per contact, in order, on the sheets of `layout`.

    `fields` names each contact in a 422 (`contact_ids[3]`); a contact listed twice is drawn once.
    """
    check_count(len(contacts), layout)
    design = card_design(layout)
    codes: dict[str, tuple[DrawnCode, str]] = {}  # contact id → its code and the code's resource URL
    images: dict[str, bytes] = {}
    pages: list[list[_Printed]] = []
    queue = iter(enumerate(contacts))
    for positions in sheets(len(contacts), 0, layout.per_sheet):
        page = []
        for position in positions:
            index, contact = next(queue)
            if contact.id not in codes:
                code = _draw(contact, design.qr.width, fields[index] if fields else None)
                url = resource_url(f"card-{len(images)}")
                images[url] = code.png
                codes[contact.id] = (code, url)
            code, url = codes[contact.id]
            x, y = layout.origin(position)
            page.append(_Printed(contact, x, y, place_code(code, design.qr, x, y, DPI), url))
        pages.append(page)
    html = render_template("crm/cards.html", layout=layout, design=design, pages=pages, font=FONT_FAMILY)
    return html_to_pdf(html, images)
