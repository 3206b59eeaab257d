"""Typed request parsing (`qrsvc.fields`): frozen dataclasses out, errors that name the full path."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from flask import Flask

from qrsvc.errors import ApiError
from qrsvc.fields import (
    UNSET,
    Unset,
    boolean,
    choice,
    given_fields,
    integer,
    iso_datetime,
    list_of,
    nested,
    nullable,
    number,
    parse_object,
    text,
)
from qrsvc.http import parse_body, parse_query
from qrsvc.pagination import PageQuery

LIMIT = {"items": 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    name: Annotated[str, text(max_length=20, strip=True, allow_blank=False)]
    email: Annotated[str | None, nullable(text(max_length=50), blank=True)] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    sku: Annotated[str, text(max_length=8)]
    quantity: Annotated[int, integer(1, 99)]
    price: Annotated[float | None, nullable(number(0, 1000))] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    number: Annotated[str, text()]
    customer: Customer  # a dataclass field is a nested object without saying so
    items: Annotated[tuple[Item, ...], list_of(nested(Item), min_length=1, max_length=lambda: LIMIT["items"])]
    gift: Annotated[bool, boolean()] = False
    speed: Annotated[str, choice(("slow", "fast"))] = "slow"
    ship_at: Annotated[datetime | None, nullable(iso_datetime())] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    limit: Annotated[int, integer(1, 100)] = 20
    cursor: Annotated[str | None, text()] = None
    sku: Annotated[tuple[str, ...], list_of(text())] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Changes:
    name: Annotated[str | None | Unset, nullable(text())] = UNSET
    url: Annotated[str | Unset, text()] = UNSET


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    body: Annotated[str | None, nullable(text())]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanPage(PageQuery):
    """A schema made from another module's: its parent's annotations are read in the parent's module."""

    limit: Annotated[int, integer(1, 500)] = 50


def order(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": "1001",
        "customer": {"name": " Ada ", "email": "ada@example.com"},
        "items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2, "price": 9.5}],
    }
    body.update(changes)
    return body


def refused(schema: type[Any], value: object, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_object(schema, value, **kwargs)
    return caught.value


def test_a_body_becomes_a_frozen_dataclass_with_defaults_and_nested_values() -> None:
    parsed = parse_object(Order, order(ship_at="2026-05-01T12:00:00+02:00"))
    assert parsed.customer == Customer(name="Ada", email="ada@example.com")
    assert parsed.items == (Item(sku="A", quantity=1), Item(sku="B", quantity=2, price=9.5))
    assert (parsed.gift, parsed.speed) == (False, "slow")
    assert parsed.ship_at == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.number = "2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (
            order(items=[{"sku": "A", "quantity": 1}, {"sku": "B"}]),
            400,
            "missing_parameter",
            "items[1].quantity",
        ),
        (order(items=[{"quantity": 1}]), 400, "missing_parameter", "items[0].sku"),
        (order(items=[{"sku": 5, "quantity": 1}]), 400, "invalid_parameter", "items[0].sku"),
        (order(items=[{"sku": "TOO-LONG-SKU", "quantity": 1}]), 400, "invalid_parameter", "items[0].sku"),
        (order(items=[{"sku": "A", "quantity": "2"}]), 400, "invalid_parameter", "items[0].quantity"),
        (order(items=[{"sku": "A", "quantity": 0}]), 400, "out_of_range", "items[0].quantity"),
        (order(items=[{"sku": "A", "quantity": True}]), 400, "invalid_parameter", "items[0].quantity"),
        (order(items=[{"sku": "A", "quantity": 1, "gift": 1}]), 400, "unknown_parameter", "items[0].gift"),
        (
            order(items=[{"sku": "A", "quantity": 1, "price": float("nan")}]),
            400,
            "invalid_parameter",
            "items[0].price",
        ),
        (order(items=[{"sku": "A", "quantity": 1, "price": 1001}]), 400, "out_of_range", "items[0].price"),
        (
            order(items=[{"sku": "A", "quantity": 1, "price": False}]),
            400,
            "invalid_parameter",
            "items[0].price",
        ),
        (order(items=["A"]), 400, "invalid_parameter", "items[0]"),
        (order(items=[]), 400, "invalid_parameter", "items"),
        (order(items={"sku": "A"}), 400, "invalid_parameter", "items"),
        (order(items=[{"sku": "A", "quantity": 1}] * 4), 413, "too_many_items", "items"),
        (order(customer="Ada"), 400, "invalid_parameter", "customer"),
        (order(customer={"name": "   "}), 400, "invalid_parameter", "customer.name"),
        (order(customer={"email": "a@b"}), 400, "missing_parameter", "customer.name"),
        (order(customer={"name": "Ada", "email": "a\x00b"}), 400, "invalid_parameter", "customer.email"),
        (order(customer={"name": "Ada", "phone": "1"}), 400, "unknown_parameter", "customer.phone"),
        (order(customer=None), 400, "invalid_parameter", "customer"),
        (order(number=None), 400, "invalid_parameter", "number"),
        (order(number="\ud800"), 400, "invalid_parameter", "number"),
        (order(gift="yes"), 400, "invalid_parameter", "gift"),
        (order(gift="true"), 400, "invalid_parameter", "gift"),
        (order(speed="warp"), 400, "invalid_parameter", "speed"),
        (order(ship_at="2026-05-01T12:00:00"), 400, "invalid_parameter", "ship_at"),
        (order(ship_at="9999-12-31T23:59:59-14:00"), 400, "out_of_range", "ship_at"),
        (order(ship_at="2026-02-30T00:00:00Z"), 400, "invalid_parameter", "ship_at"),
        (order(ship_at=1767225600), 400, "invalid_parameter", "ship_at"),
        (order(typo=1), 400, "unknown_parameter", "typo"),
        (
            {"customer": {"name": "Ada"}, "items": [{"sku": "A", "quantity": 1}]},
            400,
            "missing_parameter",
            "number",
        ),
    ],
)
def test_errors_name_the_field_by_its_full_path(
    body: dict[str, Any], status: int, code: str, field: str
) -> None:
    error = refused(Order, body)
    assert (error.status, error.code, error.field) == (status, code, field)
    assert error.message


def test_messages_say_the_path_and_what_is_accepted() -> None:
    assert refused(Order, order(items=[{"sku": "A"}])).message == "items[0].quantity is required"
    unknown = refused(Order, order(items=[{"sku": "A", "quantity": 1, "gift": 1}])).message
    assert unknown == "unknown parameter 'gift'; accepted: sku, quantity, price"
    assert refused(Order, order(speed="warp")).message == "speed must be one of: slow, fast"
    assert refused(Order, order(items=[{"sku": "A", "quantity": 0}])).message == (
        "items[0].quantity must be between 1 and 99"
    )


def test_a_bound_can_be_read_when_the_request_is_parsed() -> None:
    four = order(items=[{"sku": "A", "quantity": 1}] * 4)
    assert refused(Order, four).status == 413
    LIMIT["items"] = 4
    try:
        assert len(parse_object(Order, four).items) == 4
    finally:
        LIMIT["items"] = 3


def test_null_and_blank_clear_a_nullable_field_but_a_required_one_is_missing() -> None:
    customer = parse_object(Customer, {"name": "Ada", "email": "  "})
    assert customer.email is None
    assert parse_object(Customer, {"name": "Ada", "email": None}).email is None
    assert parse_object(Item, {"sku": "A", "quantity": 1, "price": None}).price is None
    error = refused(Note, {"body": None})
    assert (error.code, error.field, error.message) == ("missing_parameter", "body", "body is required")
    assert refused(Customer, {"name": None}).code == "invalid_parameter"


def test_errors_inside_a_named_object_are_prefixed_and_a_non_object_is_refused() -> None:
    error = refused(Item, {"sku": "A"}, name="lines[4]")
    assert (error.code, error.field, error.message) == (
        "missing_parameter",
        "lines[4].quantity",
        "lines[4].quantity is required",
    )
    assert refused(Item, ["A"]).code == "invalid_body"
    assert refused(Item, "A", name="line").field == "line"


def test_given_fields_are_the_changes_of_a_patch() -> None:
    assert given_fields(parse_object(Changes, {})) == {}
    assert given_fields(parse_object(Changes, {"name": None})) == {"name": None}
    assert given_fields(parse_object(Changes, {"url": "https://x"})) == {"url": "https://x"}


def test_a_field_without_a_parser_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class Loose:
        name: str

    with pytest.raises(TypeError):
        parse_object(Loose, {"name": "x"})


@pytest.fixture
def bare_app() -> Flask:
    return Flask("fields-test")


def test_a_query_string_is_parsed_as_text_with_repeated_list_fields(bare_app: Flask) -> None:
    with bare_app.test_request_context("/?limit=+5&sku=A&sku=B&api_key=secret"):
        assert parse_query(Page) == Page(limit=5, sku=("A", "B"))
    with bare_app.test_request_context("/"):
        assert parse_query(Page) == Page()
    for query, code, field in [
        ("limit=0", "out_of_range", "limit"),
        ("limit=five", "invalid_parameter", "limit"),
        ("limt=5", "unknown_parameter", "limt"),
    ]:
        with bare_app.test_request_context(f"/?{query}"), pytest.raises(ApiError) as caught:
            parse_query(Page)
        assert (caught.value.code, caught.value.field) == (code, field)


def test_a_schema_may_extend_one_from_another_module(bare_app: Flask) -> None:
    bare_app.config["PAGE_SIZE_MAX"] = 100
    with bare_app.test_request_context("/?cursor=abc"):
        assert parse_query(ScanPage) == ScanPage(limit=50, cursor="abc")
    with bare_app.test_request_context("/?limit=500"):
        assert parse_query(ScanPage).limit == 500
    with bare_app.test_request_context("/?limit=500"), pytest.raises(ApiError):
        parse_query(PageQuery)


def test_query_strings_spell_booleans_and_numbers_as_text() -> None:
    assert boolean()("flag", "1", True) is True
    assert boolean()("flag", "false", True) is False
    assert number()("mm", "2.5", True) == 2.5
    for value in ("nan", "inf", "x"):
        with pytest.raises(ApiError):
            number()("mm", value, True)


def test_a_body_must_be_a_json_object(bare_app: Flask) -> None:
    with bare_app.test_request_context("/", method="POST", json=order(api_key="ignored")):
        assert parse_body(Order).number == "1001"
    for kwargs, status, code in [
        ({"json": [1]}, 400, "invalid_body"),
        ({"data": "{", "content_type": "application/json"}, 400, "invalid_json"),
        ({"data": "number=1"}, 415, "unsupported_media_type"),
    ]:
        with bare_app.test_request_context("/", method="POST", **kwargs), pytest.raises(ApiError) as caught:
            parse_body(Order)
        assert (caught.value.status, caught.value.code) == (status, code)
