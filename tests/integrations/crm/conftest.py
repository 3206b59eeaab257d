"""CRM helpers: contacts made through the API, and vCards read back by vobject, field by field."""

from __future__ import annotations

from typing import Any

import vobject

TYPICAL = {
    "given_name": "Ann",
    "family_name": "Lee",
    "organization": "Example Corp",
    "title": "Head of Sales",
    "email": "ann.lee@example.com",
    "phone": "+1 555 0100",
    "mobile": "+1 555 0199",
    "website": "https://example.com",
    "address": {
        "street": "1 Main Street",
        "city": "Springfield",
        "region": "IL",
        "postal_code": "62701",
        "country": "USA",
    },
}

ADDRESS_FIELDS = ("street", "city", "region", "postal_code", "country")


def create(client: Any, auth: dict[str, str], body: dict[str, Any] | None = None, query: str = "") -> Any:
    """POST a contact (TYPICAL unless `body`) and return its JSON; asserts the 201."""
    response = client.post(f"/v1/crm/contacts{query}", json=TYPICAL if body is None else body, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def vcard_fields(text: str) -> dict[str, Any]:
    """What a vCard says, parsed by vobject, in our field names (absent fields are None)."""
    parsed = vobject.readOne(text)
    assert parsed.version.value == "3.0"
    contents = parsed.contents
    phones = {tuple(tel.params.get("TYPE", [])): tel.value for tel in contents.get("tel", [])}

    def one(name: str) -> Any:
        found = contents.get(name)
        return found[0].value if found else None

    address = None
    if "adr" in contents:
        adr = contents["adr"][0].value
        address = dict(
            zip(ADDRESS_FIELDS, (adr.street, adr.city, adr.region, adr.code, adr.country), strict=True)
        )
    organization = one("org")
    return {
        "given_name": parsed.n.value.given,
        "family_name": parsed.n.value.family,
        "full_name": parsed.fn.value,
        "organization": organization[0] if organization else None,
        "title": one("title"),
        "email": one("email"),
        "phone": phones.get(("WORK", "VOICE")),
        "mobile": phones.get(("CELL", "VOICE")),
        "website": one("url"),
        "address": address,
        "note": one("note"),
    }


def expected_fields(body: dict[str, Any]) -> dict[str, Any]:
    """What a vCard of a contact made from `body` must say."""
    address = body.get("address")
    return {
        "given_name": body["given_name"],
        "family_name": body["family_name"],
        "full_name": f"{body['given_name']} {body['family_name']}",
        "organization": body.get("organization"),
        "title": body.get("title"),
        "email": body.get("email"),
        "phone": body.get("phone"),
        "mobile": body.get("mobile"),
        "website": body.get("website"),
        "address": None if not address else {name: address.get(name, "") for name in ADDRESS_FIELDS},
        "note": body.get("note"),
    }


def mecard_fields(text: str) -> dict[str, list[tuple[str, ...]]]:
    """A MeCard's fields as components split on unescaped commas, unescaped: an independent reading."""
    assert text.startswith("MECARD:") and text.endswith(";;")
    fields: dict[str, list[tuple[str, ...]]] = {}
    name, components, current = "", [], ""
    chars = iter(text[len("MECARD:") : -1])
    for char in chars:
        if char == "\\":
            current += next(chars)
        elif char == ":" and not name:
            name = current
            current = ""
        elif char == ",":
            components.append(current)
            current = ""
        elif char == ";":
            fields.setdefault(name, []).append((*components, current))
            name, components, current = "", [], ""
        else:
            current += char
    return fields
