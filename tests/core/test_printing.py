"""Printing codes on sheets: whole printer dots, the dot grid, sheet iteration and bounded work."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from qrsvc.errors import ApiError
from qrsvc.printing import (
    MIN_MODULE_MM,
    QUIET_ZONE,
    Box,
    CodeTooSmallError,
    PrintCost,
    PrintLimits,
    SheetLayout,
    check_cost,
    draw_code,
    find_layout,
    module_dots,
    place_code,
    sheets,
)
from qrsvc.qr import encode
from tests.conftest import decode_image

CARDS = SheetLayout("cards", "2 × 5 cards", 215.9, 279.4, 2, 5, 88.9, 50.8, 19.05, 12.7, 88.9, 50.8, 300)
LIMITS = PrintLimits("cards", "QRSVC_TEST_MAX_", items=10, pages=2, megapixels=1.0)


@pytest.mark.parametrize(
    ("width", "area", "dpi", "dots"), [(21, 20.0, 300, 8), (57, 40.0, 300, 7), (57, 40.0, 600, 14)]
)
def test_module_dots_is_the_largest_whole_number_that_fits_with_the_quiet_zone(
    width: int, area: float, dpi: int, dots: int
) -> None:
    assert module_dots(width, area, dpi) == dots
    modules = width + 2 * QUIET_ZONE
    assert dots * modules / dpi * 25.4 <= area < (dots + 1) * modules / dpi * 25.4


def test_modules_under_a_third_of_a_millimetre_are_refused() -> None:
    # 105 + 8 modules of 4 dots at 300 dpi (0.339 mm) need 38.3 mm.
    assert module_dots(105, 38.3, 300) == 4
    with pytest.raises(CodeTooSmallError) as refused:
        module_dots(105, 38.2, 300)
    assert (refused.value.status, refused.value.code) == (422, "code_too_small")
    assert MIN_MODULE_MM <= 4 * 25.4 / 300


def test_a_drawn_code_is_whole_dots_and_decodes() -> None:
    data = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lee;Ann;;;\r\nFN:Ann Lee\r\nEND:VCARD\r\n"
    drawn = draw_code(data, "M", 30.0, 300, "zxing")
    modules = encode(data, "M").width + 2 * QUIET_ZONE
    assert drawn.pixels == drawn.dots * modules
    with Image.open(io.BytesIO(drawn.png)) as image:
        assert image.size == (drawn.pixels, drawn.pixels)
        assert image.mode == "L"
        assert decode_image(image) == [data]


def test_data_that_fits_no_code_is_422() -> None:
    with pytest.raises(ApiError) as refused:
        draw_code("x" * 3000, "H", 100.0, 300, "zxing")
    assert (refused.value.status, refused.value.code) == (422, "data_too_long")


def test_placed_codes_are_centred_on_the_dot_grid() -> None:
    drawn = draw_code("hello", "M", 20.0, 300, "zxing")
    placed = place_code(drawn, Box(3.3, 1.7, 20.0, 20.0), *CARDS.origin(3), 300)
    for inches in (placed.left, placed.top):
        assert abs(inches * 300 - round(inches * 300)) < 1e-6
    x, y = CARDS.origin(3)
    assert abs(placed.left * 25.4 + placed.size * 25.4 / 2 - (x + 3.3 + 10)) <= 25.4 / 300
    assert abs(placed.top * 25.4 + placed.size * 25.4 / 2 - (y + 1.7 + 10)) <= 25.4 / 300


def test_cells_run_in_reading_order_sheet_by_sheet() -> None:
    assert CARDS.origin(0) == (19.05, 12.7)
    assert CARDS.origin(3) == pytest.approx((19.05 + 88.9, 12.7 + 50.8))
    assert list(sheets(13, 0, 10)) == [list(range(10)), [0, 1, 2]]
    assert list(sheets(4, 8, 10)) == [[8, 9], [0, 1]]


def test_unknown_layout_is_400_naming_the_choices() -> None:
    assert find_layout({"cards": CARDS}, "cards") is CARDS
    with pytest.raises(ApiError) as refused:
        find_layout({"cards": CARDS}, "avery-9999")
    assert (refused.value.status, refused.value.field) == (400, "layout")
    assert "cards" in refused.value.message


@pytest.mark.parametrize(
    ("cost", "code", "setting"),
    [
        (PrintCost(1, 11, 0, "11 cards"), "too_many_cards", "QRSVC_TEST_MAX_CARDS"),
        (PrintCost(3, 10, 0, "10 cards"), "too_many_pages", "QRSVC_TEST_MAX_PAGES"),
        (PrintCost(1, 10, 1_000_001, "10 cards"), "too_many_pixels", "QRSVC_TEST_MAX_MEGAPIXELS"),
    ],
)
def test_work_over_a_limit_is_413_naming_the_setting(cost: PrintCost, code: str, setting: str) -> None:
    with pytest.raises(ApiError) as refused:
        check_cost(cost, LIMITS)
    assert (refused.value.status, refused.value.code) == (413, code)
    assert setting in refused.value.message


def test_limits_are_inclusive() -> None:
    check_cost(PrintCost(2, 10, 1_000_000, "10 cards"), LIMITS)
