"""The one keyset paginator (`qrsvc.pagination`): stable pages, opaque cursors, a 400 for others'."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.keys import find_key
from qrsvc.models import ApiKey, IdempotencyRecord, QrCode
from qrsvc.pagination import paginate

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def owner(app: Any, api_key: str) -> Iterator[ApiKey]:
    with app.app_context():
        key = find_key(api_key)
        assert key is not None
        yield key


def add_codes(owner: ApiKey, ids_and_minutes: list[tuple[str, int]]) -> None:
    for code_id, minute in ids_and_minutes:
        db.session.add(
            QrCode(
                id=code_id,
                owner_id=owner.id,
                content_hash=code_id,
                data=code_id,
                options={"format": "png"},
                version=1,
                created_at=START + timedelta(minutes=minute),
            )
        )
    db.session.flush()


def walk(fetch: Callable[[str | None], Any]) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = fetch(cursor)
        pages.append([item.id for item in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


def codes_of(owner: ApiKey, limit: int) -> Callable[[str | None], Any]:
    query = sa.select(QrCode).where(QrCode.owner_id == owner.id)
    return lambda cursor: paginate(query, (QrCode.created_at, QrCode.id), limit, cursor)


def test_pages_are_newest_first_and_ties_are_broken_by_id(owner: ApiKey) -> None:
    add_codes(owner, [("qr_a", 0), ("qr_b", 1), ("qr_c", 1), ("qr_d", 1), ("qr_e", 2)])
    assert walk(codes_of(owner, 2)) == [["qr_e", "qr_d"], ["qr_c", "qr_b"], ["qr_a"]]
    assert walk(codes_of(owner, 5)) == [["qr_e", "qr_d", "qr_c", "qr_b", "qr_a"]]


def test_rows_added_between_pages_neither_repeat_nor_vanish(owner: ApiKey) -> None:
    add_codes(owner, [("qr_a", 0), ("qr_b", 1), ("qr_c", 2)])
    first = codes_of(owner, 2)(None)
    assert [code.id for code in first.items] == ["qr_c", "qr_b"]
    add_codes(owner, [("qr_z", 3)])  # newer: it belongs before the pages already read
    rest = codes_of(owner, 2)(first.next_cursor)
    assert ([code.id for code in rest.items], rest.next_cursor) == (["qr_a"], None)


def test_an_ascending_text_key_may_hold_the_separator(owner: ApiKey) -> None:
    now = datetime.now(UTC)
    for key in ("b|1", "a", "b", "c|x|y"):
        db.session.add(IdempotencyRecord(owner_id=owner.id, key=key, fingerprint="f", created_at=now))
    db.session.flush()
    query = sa.select(IdempotencyRecord).where(IdempotencyRecord.owner_id == owner.id)
    pages, cursor = [], None
    while True:
        page = paginate(query, (IdempotencyRecord.key,), 1, cursor, descending=False)
        pages.extend(record.key for record in page.items)
        if (cursor := page.next_cursor) is None:
            break
    assert pages == ["a", "b", "b|1", "c|x|y"]


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "%%%",
        _cursor(b"\xff\xfe"),
        _cursor(b"qr_only_an_id"),
        _cursor(b"2026-01-01T00:00:00|qr_naive_time"),
        _cursor(b"not a time|qr_a"),
        _cursor(b"2026-01-01T00:00:00+00:00|qr_\x00"),
    ],
)
def test_a_cursor_this_api_did_not_give_is_a_400_naming_cursor(owner: ApiKey, cursor: str) -> None:
    with pytest.raises(ApiError) as caught:
        codes_of(owner, 2)(cursor)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        400,
        "invalid_parameter",
        "cursor",
    )


@pytest.mark.parametrize("number", [b"12x", b"2147483648", b"-2147483649", b"9223372036854775808"])
def test_an_integer_key_outside_its_column_is_refused_before_the_database_sees_it(
    owner: ApiKey, number: bytes
) -> None:
    query = sa.select(ApiKey)
    with pytest.raises(ApiError) as caught:
        paginate(query, (ApiKey.id,), 2, _cursor(number))
    assert caught.value.field == "cursor"
    assert [key.id for key in paginate(query, (ApiKey.id,), 2, _cursor(b"2147483647")).items] == [owner.id]


@pytest.mark.parametrize("app_config", [{"PAGE_SIZE_MAX": 4}])
def test_a_page_query_is_bounded_by_the_configured_page_size(client: Any, auth: dict[str, str]) -> None:
    for query, status, code in [
        ({"limit": 4}, 200, None),
        ({"limit": 5}, 400, "out_of_range"),
        ({"limit": "x"}, 400, "invalid_parameter"),
        ({"limt": 4}, 400, "unknown_parameter"),
    ]:
        response = client.get("/v1/qr", headers=auth, query_string=query)
        assert (response.status_code, (response.get_json() or {}).get("error")) == (status, code), query
