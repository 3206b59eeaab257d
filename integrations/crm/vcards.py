"""A contact as a vCard 3.0 file (RFC 2426) or a MeCard: what address books and phone cameras read.

Both are pure text: the same string is served as `.vcf` and drawn as the contact's QR code,
so what a phone imports from the code is exactly what the file holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Address", "Card", "mecard", "vcard"]

#: RFC 2426 section 2.6: a logical line is folded after at most 75 octets.
FOLD_OCTETS = 75


@dataclass(frozen=True, slots=True)
class Address:
    street: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    def parts(self) -> tuple[str, str, str, str, str]:
        return (self.street, self.city, self.region, self.postal_code, self.country)


@dataclass(frozen=True, slots=True)
class Card:
    """What a business card says about a person; empty strings are left out of both formats."""

    given_name: str
    family_name: str
    organization: str = ""
    title: str = ""
    email: str = ""
    phone: str = ""
    mobile: str = ""
    website: str = ""
    address: Address | None = None
    note: str = ""

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.given_name, self.family_name) if part)


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _escape(text: str) -> str:
    """RFC 2426 section 4: backslash, comma, semicolon and newline are escaped in text values."""
    return _lines(text).replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


def _fold(line: str) -> Iterator[str]:
    """Octet-counted folding that never splits a UTF-8 sequence (a continuation starts with a space)."""
    chunk: list[str] = []
    size = 0
    limit = FOLD_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            yield "".join(chunk)
            chunk, size, limit = [" "], 1, FOLD_OCTETS  # the leading space counts
        chunk.append(char)
        size += width
    yield "".join(chunk)


def vcard(card: Card) -> str:
    """A vCard 3.0 with CRLF line ends, folded at 75 octets."""
    properties = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        f"N:{_escape(card.family_name)};{_escape(card.given_name)};;;",
        f"FN:{_escape(card.full_name)}",
    ]
    optional = (
        ("ORG", card.organization),
        ("TITLE", card.title),
        ("TEL;TYPE=WORK,VOICE", card.phone),
        ("TEL;TYPE=CELL,VOICE", card.mobile),
        ("EMAIL;TYPE=INTERNET", card.email),
        ("URL", card.website),
    )
    properties += [f"{name}:{_escape(value)}" for name, value in optional if value]
    if card.address is not None and any(card.address.parts()):
        properties.append("ADR;TYPE=WORK:;;" + ";".join(_escape(part) for part in card.address.parts()))
    if card.note:
        properties.append(f"NOTE:{_escape(card.note)}")
    properties.append("END:VCARD")
    return "".join(folded + "\r\n" for line in properties for folded in _fold(line))


def _mecard_escape(text: str) -> str:
    """MeCard escapes backslash, semicolon, comma, colon and quote; it has no newline, so a space."""
    escaped = _lines(text).replace("\n", " ")
    for char in ("\\", ";", ",", ":", '"'):
        escaped = escaped.replace(char, "\\" + char)
    return escaped


def mecard(card: Card) -> str:
    """The smaller MeCard (DoCoMo) form: fewer bytes, so a less dense code on a small card.

    It has no title field, so the title is left out; everything else a card shows is kept.
    """
    fields = [f"N:{_mecard_escape(card.family_name)},{_mecard_escape(card.given_name)}"]
    optional = (
        ("ORG", card.organization),
        ("TEL", card.phone),
        ("TEL", card.mobile),
        ("EMAIL", card.email),
        ("URL", card.website),
    )
    fields += [f"{name}:{_mecard_escape(value)}" for name, value in optional if value]
    if card.address is not None and any(card.address.parts()):
        # PO box, extended address, street, city, region, postal code, country.
        fields.append("ADR:,," + ",".join(_mecard_escape(part) for part in card.address.parts()))
    if card.note:
        fields.append(f"NOTE:{_mecard_escape(card.note)}")
    return "MECARD:" + "".join(field + ";" for field in fields) + ";"
