"""Making codes as the integrations do (`make_code`, `make_codes`): checked, drawn, stored, counted once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from qrsvc.codes import image_of, make_code, make_codes
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.keys import find_key
from qrsvc.models import ApiKey, QrCode
from qrsvc.options import QrOptions
from qrsvc.transactions import unit_of_work
from qrsvc.usage import usage_of


@pytest.fixture
def owner(app: Any, make_key: Callable[..., str]) -> Iterator[ApiKey]:
    plain = make_key(plan="tiny")  # 5 codes a month
    with app.app_context():
        key = find_key(plain)
        assert key is not None
        yield key


def stored() -> int:
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(QrCode)) or 0)


def test_many_codes_are_stored_in_order_and_their_images_scan(
    owner: ApiKey, decode: Callable[..., Any]
) -> None:
    texts = [f"https://example.com/t/{n}" for n in range(5)]
    with unit_of_work():
        made = make_codes(owner, [QrOptions(data=text, format="png", size=256) for text in texts])
    assert [m.code.data for m in made] == texts
    assert [decode(m.image.content) for m in made] == [[text] for text in texts]
    assert all(m.code.owner_id == owner.id and m.code.id.startswith("qr_") for m in made)
    assert stored() == 5
    assert usage_of(owner.id).codes_this_month == 5
    svg = image_of(made[0].code, "svg")
    assert decode(svg.content, "svg") == [texts[0]]


def test_the_quota_is_reserved_once_for_the_lot_and_a_lot_over_it_stores_nothing(owner: ApiKey) -> None:
    with pytest.raises(ApiError) as caught:
        make_codes(owner, [QrOptions(data=f"d{n}") for n in range(6)])
    assert (caught.value.status, caught.value.code) == (429, "quota_exceeded")
    assert stored() == 0
    with unit_of_work():
        make_codes(owner, [QrOptions(data=f"d{n}") for n in range(5)])
    with pytest.raises(ApiError, match="allows 5 codes"):
        make_code(owner, QrOptions(data="one more"))


@pytest.mark.parametrize(
    ("options", "status", "code"),
    [
        (QrOptions(data="x" * 3000, error_correction="H"), 422, "data_too_long"),
        (QrOptions(data="x", foreground=QrOptions(data="x").background), 422, "low_contrast"),
        (QrOptions(data=""), 400, "invalid_parameter"),
    ],
)
def test_one_code_that_cannot_be_made_stops_the_lot(
    owner: ApiKey, options: QrOptions, status: int, code: str
) -> None:
    with pytest.raises(ApiError) as caught:
        make_codes(owner, [QrOptions(data="fine"), options])
    assert (caught.value.status, caught.value.code) == (status, code)
    assert stored() == 0
    assert usage_of(owner.id).codes_this_month == 0


def test_identical_codes_share_one_record(owner: ApiKey) -> None:
    with unit_of_work():
        first, second = make_codes(owner, [QrOptions(data="same"), QrOptions(data="same")])
        again = make_code(owner, QrOptions(data="same"))
    assert first.code.id == second.code.id == again.code.id
    assert stored() == 1


@pytest.mark.parametrize("app_config", [{"RENDER_PROCESSES": 2, "RENDER_POOL_MIN_ITEMS": 4}])
def test_a_large_lot_is_drawn_in_the_render_pool(app: Any, make_key: Callable[..., str], decode: Any) -> None:
    plain = make_key(plan="pro")
    with app.app_context():
        key = find_key(plain)
        assert key is not None
        made = make_codes(key, [QrOptions(data=f"pooled {n}", size=128) for n in range(8)])
        assert app.extensions["qrsvc_rendering"].pool._executor is not None  # the processes were started
    assert [decode(m.image.content) for m in made] == [[f"pooled {n}"] for n in range(8)]
