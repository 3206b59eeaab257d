"""vCards that real address-book code reads back field for field, whatever the contact holds."""

from __future__ import annotations

import string

import pytest
import vobject
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.crm.vcards import Address, Card, mecard, vcard

HOSTILE = Card(
    given_name="Zoë",
    family_name="O'Brien; Jr, \\ x",
    organization="Ünïcode, Inc.; 東京支社",
    title="Head of 東京" + "東" * 40,
    email="zoe@example.com",
    phone="+1 555 0100",
    mobile='=HYPERLINK("http://x")',
    website="https://example.com/a?b=c,d;e",
    address=Address("1 Rue; de la Paix\nBât B", "Paris", "Île-de-France", "75002", "France"),
    note="line1\r\nline2, with; stuff\\ 😀 " * 4,
)


def _parsed(text: str) -> vobject.base.Component:
    return vobject.readOne(text)


def test_every_field_reads_back_through_vobject() -> None:
    parsed = _parsed(vcard(HOSTILE))
    assert parsed.version.value == "3.0"
    assert parsed.n.value.family == HOSTILE.family_name
    assert parsed.n.value.given == HOSTILE.given_name
    assert parsed.fn.value == HOSTILE.full_name
    assert parsed.org.value == [HOSTILE.organization]
    assert parsed.title.value == HOSTILE.title
    phones = {tuple(tel.params["TYPE"]): tel.value for tel in parsed.tel_list}
    assert phones == {("WORK", "VOICE"): HOSTILE.phone, ("CELL", "VOICE"): HOSTILE.mobile}
    assert parsed.email.value == HOSTILE.email
    assert parsed.url.value == HOSTILE.website
    address = parsed.adr.value
    assert HOSTILE.address is not None
    assert (address.street, address.city, address.region, address.code, address.country) == (
        HOSTILE.address.parts()
    )
    assert parsed.note.value == HOSTILE.note.replace("\r\n", "\n")


def test_lines_end_in_crlf_and_fold_at_75_octets_without_splitting_a_character() -> None:
    text = vcard(HOSTILE)
    assert text.endswith("END:VCARD\r\n")
    assert "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    assert max(len(line.encode()) for line in lines) <= 75
    assert any(line.startswith(" ") for line in lines)  # the long title and note were folded
    for line in lines:
        line.encode("utf-8").decode("utf-8")  # each physical line is whole UTF-8


def test_empty_fields_are_left_out() -> None:
    text = vcard(Card(given_name="Ann", family_name="Lee"))
    assert text == "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lee;Ann;;;\r\nFN:Ann Lee\r\nEND:VCARD\r\n"


def test_mecard_escapes_its_separators_and_is_smaller() -> None:
    card = Card(given_name="Ann", family_name="Lee; Jr", organization="A:B, C", phone="+1 555 0100")
    text = mecard(card)
    assert text == "MECARD:N:Lee\\; Jr,Ann;ORG:A\\:B\\, C;TEL:+1 555 0100;;"
    assert len(mecard(HOSTILE).encode()) < len(vcard(HOSTILE).encode())


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85")
    | st.sampled_from(list(",;\\:\n" + string.ascii_letters)),
    min_size=1,
    max_size=120,
).filter(lambda text: text.strip() == text and text.strip())


@settings(max_examples=150, deadline=None)
@given(given_name=names, family_name=names, note=names, organization=names)
def test_any_text_round_trips(given_name: str, family_name: str, note: str, organization: str) -> None:
    card = Card(given_name=given_name, family_name=family_name, note=note, organization=organization)
    parsed = _parsed(vcard(card))
    assert parsed.n.value.given == given_name
    assert parsed.n.value.family == family_name
    assert parsed.note.value == note
    assert parsed.org.value == [organization]


@pytest.mark.parametrize("encoder", [vcard, mecard])
def test_the_text_is_a_scannable_code(encoder: object, decode: object) -> None:
    from qrsvc.qr import Style, encode, render

    assert callable(encoder)
    payload = encoder(HOSTILE)
    symbol = encode(payload, "M")
    image = render(symbol, "png", Style(size=1200, quiet_zone=4))
    assert callable(decode)
    assert decode(image) == [payload]
