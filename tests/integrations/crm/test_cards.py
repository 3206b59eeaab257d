"""Business cards through the API: every card's code scans to its vCard where the sheet says it is.

The PDFs are rasterised with pdfium at 600 dpi and every card cell is decoded on its own
with zxing-cpp; pdfium's image objects give the codes' exact placement and pixel sizes.
The sheets' geometry is written out here from the manufacturers' templates, not imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pypdfium2
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image

from qrsvc.qr import encode
from tests.conftest import decode_image
from tests.integrations.crm.conftest import TYPICAL, create, mecard_fields, vcard_fields

MM_PER_PT = 25.4 / 72
IN = 25.4
TOLERANCE_MM = 0.5
DPI = 600


@dataclass(frozen=True)
class Sheet:
    page: tuple[float, float]
    grid: tuple[int, int]
    card: tuple[float, float]
    first: tuple[float, float]
    pitch: tuple[float, float]

    def origin(self, position: int) -> tuple[float, float]:
        row, column = divmod(position, self.grid[0])
        return self.first[0] + column * self.pitch[0], self.first[1] + row * self.pitch[1]


SHEETS = {
    # Avery 5371: Letter; 2 × 5 cards of 3.5 × 2 in, touching; side margins 0.75 in, top 0.5 in.
    "avery-5371": Sheet(
        (8.5 * IN, 11 * IN), (2, 5), (3.5 * IN, 2 * IN), (0.75 * IN, 0.5 * IN), (3.5 * IN, 2 * IN)
    ),
    # A4; 2 × 5 cards of 85 × 55 mm, touching, centred: 20 mm at the sides, 11 mm top and bottom.
    "a4-2x5": Sheet((210, 297), (2, 5), (85, 55), (20, 11), (85, 55)),
}
SINGLE = Sheet((3.5 * IN, 2 * IN), (1, 1), (3.5 * IN, 2 * IN), (0, 0), (3.5 * IN, 2 * IN))


@dataclass(frozen=True)
class Placed:
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
    size: tuple[float, float]
    image: Image.Image
    images: list[Placed]
    text: str

    def crop(self, left: float, top: float, width: float, height: float) -> Image.Image:
        px = DPI / 25.4
        return self.image.crop(
            (round(left * px), round(top * px), round((left + width) * px), round((top + height) * px))
        )


def read_pdf(content: bytes) -> list[Page]:
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
                    Placed(
                        left * MM_PER_PT,
                        (height - top) * MM_PER_PT,
                        (right - left) * MM_PER_PT,
                        (top - bottom) * MM_PER_PT,
                        obj.get_px_size(),
                    )
                )
            text = page.get_textpage().get_text_range()
            image = page.render(scale=DPI / 72, grayscale=True).to_pil()
            pages.append(Page((width * MM_PER_PT, height * MM_PER_PT), image, images, text))
    finally:
        document.close()
    return pages


def _contacts(client: Any, auth: dict[str, str], count: int) -> list[dict[str, Any]]:
    return [
        create(client, auth, {**TYPICAL, "given_name": f"Ann {i}", "email": f"ann.{i}@example.com"})
        for i in range(count)
    ]


def _vcf(client: Any, auth: dict[str, str], contact: dict[str, Any]) -> str:
    return str(client.get(f"/v1/crm/contacts/{contact['id']}/vcard.vcf", headers=auth).data.decode())


def _assert_cards(pages: list[Page], sheet: Sheet, texts: list[str]) -> None:
    """Card n (over all sheets) holds exactly one code, decoding to texts[n], at the sheet's pitch."""
    per_sheet = sheet.grid[0] * sheet.grid[1]
    assert len(pages) == -(-len(texts) // per_sheet)
    for page in pages:
        assert abs(page.size[0] - sheet.page[0]) < TOLERANCE_MM
        assert abs(page.size[1] - sheet.page[1]) < TOLERANCE_MM
    for index, want in enumerate(texts):
        page, position = pages[index // per_sheet], index % per_sheet
        x, y = sheet.origin(position)
        assert decode_image(page.crop(x, y, *sheet.card)) == [want], f"card {index + 1}"
        placed = page.images[position]
        # The code lies inside its card, and at the pitch from the first card of the sheet.
        assert x <= placed.left and placed.left + placed.width <= x + sheet.card[0]
        assert y <= placed.top and placed.top + placed.height <= y + sheet.card[1]
        first = page.images[0]
        row, column = divmod(position, sheet.grid[0])
        assert abs(placed.centre[0] - first.centre[0] - column * sheet.pitch[0]) < TOLERANCE_MM
        assert abs(placed.centre[1] - first.centre[1] - row * sheet.pitch[1]) < TOLERANCE_MM


def _assert_whole_dots(placed: Placed, text: str, dpi: int = 300) -> None:
    """One image pixel per printer dot, a whole number of dots per module of ≥ 0.33 mm, on the dot grid."""
    modules = encode(text, "M").width + 8
    pixels, _ = placed.pixels
    assert abs(pixels / (placed.width / IN) - dpi) < 0.5
    assert pixels % modules == 0
    assert pixels // modules * IN / dpi >= 0.33
    for mm in (placed.left, placed.top):
        dots = mm / IN * dpi
        assert abs(dots - round(dots)) < 0.01


def test_one_card_is_3_5_by_2_inches_with_its_text_and_its_vcard_code(client, auth) -> None:
    (contact,) = _contacts(client, auth, 1)
    response = client.get(f"/v1/crm/contacts/{contact['id']}/card.pdf", headers=auth)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'inline; filename="card-Ann0-Lee.pdf"'
    (page,) = read_pdf(response.data)
    text = _vcf(client, auth, contact)
    _assert_cards([page], SINGLE, [text])
    (placed,) = page.images
    _assert_whole_dots(placed, text)
    for shown in ("Ann 0 Lee", "Head of Sales", "Example Corp", "+1 555 0100", "ann.0@example.com"):
        assert shown in page.text.replace("\r\n", " ").replace("\n", " ")


@pytest.mark.parametrize("layout", sorted(SHEETS))
def test_every_card_on_a_sheet_scans_to_its_vcard_at_the_sheet_pitch(client, auth, layout) -> None:
    contacts = _contacts(client, auth, 12)
    ids = [c["id"] for c in contacts]
    response = client.post("/v1/crm/cards", json={"contact_ids": ids, "layout": layout}, headers=auth)
    assert response.status_code == 200, response.get_json()
    pages = read_pdf(response.data)
    texts = [_vcf(client, auth, c) for c in contacts]
    _assert_cards(pages, SHEETS[layout], texts)
    for page, page_texts in ((pages[0], texts[:10]), (pages[1], texts[10:])):
        for placed, text in zip(page.images, page_texts, strict=True):
            _assert_whole_dots(placed, text)
        assert all(vcard_fields(t)["given_name"] in page.text for t in page_texts)


def test_all_prints_every_contact_by_family_then_given_name(client, auth) -> None:
    made = [
        create(client, auth, {"given_name": given, "family_name": family})
        for given, family in (("Cy", "Adams"), ("Bo", "Zeta"), ("Al", "Adams"))
    ]
    response = client.post("/v1/crm/cards", json={"all": True, "layout": "a4-2x5"}, headers=auth)
    assert response.status_code == 200
    (page,) = read_pdf(response.data)
    by_name = {c["given_name"]: _vcf(client, auth, c) for c in made}
    _assert_cards([page], SHEETS["a4-2x5"], [by_name["Al"], by_name["Cy"], by_name["Bo"]])


#: A note that makes the typical vCard version 25 at EC M and its MeCard version 23:
#: the vCard needs modules under 0.33 mm in a 3.5 × 2 in card's code (at most version 23
#: there), the MeCard fits; on an 85 × 55 mm card (at most version 21) neither does.
LONG_NOTE = ("Lorem ipsum, dolor; sit amet " * 22)[:600]


def test_a_vcard_too_dense_for_the_card_is_printed_as_its_mecard(client, auth) -> None:
    dense = create(client, auth, {**TYPICAL, "note": LONG_NOTE})
    plain = create(client, auth, {**TYPICAL, "given_name": "Bob"})
    assert dense["vcard_qr"]["version"] == 25  # the stored code stays the full vCard
    response = client.post(
        "/v1/crm/cards",
        json={"contact_ids": [plain["id"], dense["id"]], "layout": "avery-5371"},
        headers=auth,
    )
    assert response.status_code == 200, response.get_json()
    (page,) = read_pdf(response.data)
    sheet = SHEETS["avery-5371"]
    assert decode_image(page.crop(*sheet.origin(0), *sheet.card)) == [_vcf(client, auth, plain)]
    (mecard,) = decode_image(page.crop(*sheet.origin(1), *sheet.card))
    assert encode(mecard, "M").version == 23
    fields = mecard_fields(mecard)
    assert fields["N"] == [("Lee", "Ann")]
    assert fields["NOTE"] == [(LONG_NOTE,)]
    _assert_whole_dots(page.images[1], mecard)
    single = client.get(f"/v1/crm/contacts/{dense['id']}/card.pdf", headers=auth)
    assert decode_image(read_pdf(single.data)[0].image) == [mecard]


def test_a_contact_too_dense_even_as_mecard_is_422_naming_it(client, auth) -> None:
    plain = create(client, auth)
    dense = create(client, auth, {**TYPICAL, "given_name": "Dense", "note": LONG_NOTE})
    response = client.post(
        "/v1/crm/cards", json={"contact_ids": [plain["id"], dense["id"]], "layout": "a4-2x5"}, headers=auth
    )
    assert response.status_code == 422
    error = response.get_json()
    assert (error["error"], error["field"]) == ("code_too_small", "contact_ids[1]")
    assert dense["id"] in error["message"] and "Dense Lee" in error["message"]
    every = client.post("/v1/crm/cards", json={"all": True, "layout": "a4-2x5"}, headers=auth)
    assert every.status_code == 422 and dense["id"] in every.get_json()["message"]


def test_a_contact_stored_as_mecard_is_printed_as_mecard(client, auth) -> None:
    contact = create(client, auth, query="?encoding=mecard")
    response = client.get(f"/v1/crm/contacts/{contact['id']}/card.pdf", headers=auth)
    (text,) = decode_image(read_pdf(response.data)[0].image)
    assert text.startswith("MECARD:N:Lee,Ann;")


def test_hostile_text_is_printed_as_text(client, auth) -> None:
    hostile = {
        "given_name": "<b>Ann</b>",
        "family_name": "<img src=file:///etc/passwd>",
        "organization": '=HYPERLINK("http://evil","x")',
        "title": "@SUM(A1) <script>alert(1)</script>",
    }
    contact = create(client, auth, hostile)
    (page,) = read_pdf(client.get(f"/v1/crm/contacts/{contact['id']}/card.pdf", headers=auth).data)
    flat = page.text.replace("\r\n", " ").replace("\n", " ")
    for value in ("<b>Ann</b>", '=HYPERLINK("http://evil","x")', "@SUM(A1) <script>alert(1)</script>"):
        assert value in flat
    assert len(page.images) == 1  # the code, and no image loaded from the name
    assert decode_image(page.image) == [_vcf(client, auth, contact)]


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        ({"layout": "a4-2x5"}, 400, "invalid_parameter", "contact_ids"),
        ({"layout": "a4-2x5", "all": True, "contact_ids": ["x"]}, 400, "invalid_parameter", "contact_ids"),
        ({"layout": "a4-2x5", "contact_ids": []}, 400, "invalid_parameter", "contact_ids"),
        ({"layout": "avery-9999", "all": True}, 400, "invalid_parameter", "layout"),
        ({"contact_ids": ["x"]}, 400, "missing_parameter", "layout"),
        ({"layout": "a4-2x5", "contact_ids": ["ct_missing"]}, 404, "not_found", "contact_ids[0]"),
        ({"layout": "a4-2x5", "all": True}, 422, "no_contacts", None),
    ],
)
def test_bad_card_requests_name_the_field(client, auth, body, status, error, field) -> None:
    response = client.post("/v1/crm/cards", json=body, headers=auth)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"] == error
    assert response.get_json().get("field") == field


def test_more_cards_than_allowed_is_413_before_anything_is_looked_up(app, client, auth) -> None:
    app.config["CRM_MAX_CARDS"] = 3
    contacts = _contacts(client, auth, 4)
    ids = [c["id"] for c in contacts]
    for body in ({"contact_ids": ids}, {"contact_ids": ["ct_a"] * 4}, {"all": True}):
        response = client.post("/v1/crm/cards", json={**body, "layout": "avery-5371"}, headers=auth)
        assert response.status_code == 413
        assert response.get_json()["error"] == "too_many_cards"
        assert "QRSVC_CRM_MAX_CARDS" in response.get_json()["message"]
    repeated = client.post(
        "/v1/crm/cards", json={"contact_ids": ids[:1] * 3, "layout": "a4-2x5"}, headers=auth
    )
    assert repeated.status_code == 200
    (page,) = read_pdf(repeated.data)
    assert len(page.images) == 3
    assert decode_image(page.image) == [_vcf(client, auth, contacts[0])] * 3
