"""The pure pipeline: every format, EC level and engine must give a code that scans back exactly."""

from __future__ import annotations

import io
import itertools
import re

import pypdfium2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from qrsvc.qr import (
    BYTE_CAPACITY,
    ENGINES,
    FORMATS,
    DataTooLongError,
    RenderError,
    Style,
    encode,
    layout,
    render,
)
from qrsvc.qr.colors import parse_color
from tests.conftest import decode, rasterise

LEVELS = ("L", "M", "Q", "H")
SIZES = (200, 333, 512, 1000)
COLOURS = (("#000000", "#ffffff"), ("#1a1a1a", "#ffeecc"), ("#003366", "#f0f0f0"), ("#00f", "#ff0"))
QUIET_ZONES = (4, 1, 10, 2)

DATA = {
    "ascii": "hello world",
    "long_url": "https://www.example.com/product/12345?" + "&".join(f"utm_{i}=value{i}" for i in range(30)),
    "accents": "Crème brûlée à São Paulo — Ærøskøbing, naïve café",
    "cjk": "日本語のテキスト・中文字符・한국어",
    # Latin-1 bytes without an ECI that a decoder reads as Shift_JIS ("鳬鳬鳬鳬鳬").
    "latin1_run": "é" * 10,
    "latin1_words": "Grüße aus Köln, ça va? Ñandú",
    "emoji": "🎟️ Admit one 🎉 ✓ 👩🏽‍💻",
    "binaryish": "\x00\x01\x02\x1f\x7f\x80\xff tab\there\r\nline",
}


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_and_level_decodes(fmt: str, level: str, engine: str) -> None:
    case = FORMATS.index(fmt) + LEVELS.index(level)
    size, (fg, bg), quiet = SIZES[case % 4], COLOURS[case % 4], QUIET_ZONES[case % 4]
    data = f"https://example.com/t/{fmt}/{level}/{engine}?name=Zoë+日本"
    symbol = encode(data, level, engine=engine)
    content = render(symbol, fmt, Style(size, quiet, parse_color(fg), parse_color(bg)))
    assert decode(content, fmt) == [data]
    assert rasterise(content, fmt).size[0] >= size


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("name", sorted(DATA))
def test_text_round_trips_exactly(name: str, engine: str) -> None:
    data = DATA[name]
    for level in LEVELS:
        content = render(encode(data, level, engine=engine), "png", Style(size=600))
        assert decode(content) == [data], level


@settings(max_examples=60, deadline=None)
@given(data=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60))
def test_any_text_round_trips_with_the_default_engine(data: str) -> None:
    assert decode(render(encode(data, "M"), "png", Style(size=600))) == [data]


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("level", LEVELS)
def test_maximum_length_per_level_fits_and_one_more_byte_does_not(level: str, engine: str) -> None:
    data = "a" * BYTE_CAPACITY[level]
    symbol = encode(data, level, engine=engine)
    assert symbol.version == 40
    assert decode(render(symbol, "png", Style(size=1000, quiet_zone=4))) == [data]
    with pytest.raises(DataTooLongError) as error:
        encode(data + "a", level, engine=engine)
    assert error.value.capacity == BYTE_CAPACITY[level]
    assert f"at most {BYTE_CAPACITY[level]} bytes" in str(error.value)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_minimum_version_is_a_floor(engine: str) -> None:
    assert encode("hi", "M", min_version=7, engine=engine).version == 7
    assert encode("x" * 200, "M", min_version=2, engine=engine).version > 2


@pytest.mark.parametrize(("size", "quiet"), [(64, 4), (200, 0), (511, 4), (512, 20), (1001, 3), (4096, 4)])
def test_modules_are_whole_pixels_and_the_symbol_is_centred(size: int, quiet: int) -> None:
    symbol = encode("https://example.com/whole-pixels", "Q")
    box = layout(symbol.width, Style(size, quiet))
    assert box.module == size // (symbol.width + 2 * quiet)
    image = Image.open(io.BytesIO(render(symbol, "png", Style(size, quiet)))).convert("L")
    assert image.size == (size, size)
    side = symbol.width * box.module
    assert abs((size - side) - 2 * box.origin) <= 1  # centred
    assert box.origin >= quiet * box.module  # the quiet zone is kept
    region = image.crop((box.origin, box.origin, box.origin + side, box.origin + side))
    # Shrinking by whole modules and growing back loses nothing only if every module is uniform.
    small = region.resize((symbol.width, symbol.width), Image.Resampling.NEAREST)
    assert small.resize(region.size, Image.Resampling.NEAREST).tobytes() == region.tobytes()
    assert small.tobytes() == bytes(0 if m else 255 for m in symbol.modules)
    # Outside the symbol, background only.
    outside = image.copy()
    outside.paste(255, (box.origin, box.origin, box.origin + side, box.origin + side))
    assert outside.getextrema() == (255, 255)


def test_size_too_small_for_one_pixel_a_module_is_refused() -> None:
    symbol = encode("x" * 300, "H")  # a large symbol
    with pytest.raises(RenderError, match="at least"):
        render(symbol, "png", Style(size=64))


@pytest.mark.parametrize("fmt", ["png", "webp", "svg"])
def test_transparent_background_is_transparent_and_scans(fmt: str) -> None:
    symbol = encode("transparent", "M")
    content = render(
        symbol, fmt, Style(300, 4, parse_color("#000"), parse_color("transparent", allow_transparent=True))
    )
    if fmt == "svg":
        assert b"<rect" not in content
    else:
        with Image.open(io.BytesIO(content)) as image:
            assert image.convert("RGBA").getpixel((0, 0))[3] == 0
    assert decode(content, fmt) == ["transparent"]


@pytest.mark.parametrize("fmt", ["jpeg", "pdf"])
def test_formats_without_alpha_refuse_translucent_colours(fmt: str) -> None:
    with pytest.raises(RenderError, match="no transparency"):
        render(encode("x"), fmt, Style(background=parse_color("#ffffff80")))


def test_svg_is_one_crisp_path_with_a_viewbox() -> None:
    content = render(encode("svg structure", "H"), "svg", Style(size=333)).decode()
    assert content.count("<path") == 1
    assert 'shape-rendering="crispEdges"' in content
    assert 'viewBox="0 0 333 333"' in content
    path = re.search(r' d="([^"]+)"', content)
    assert path is not None
    assert re.fullmatch(r"(M\d+ \d+h\d+v\d+h-\d+z)+", path.group(1))  # whole user units only


def test_pdf_page_is_size_points_square() -> None:
    document = pypdfium2.PdfDocument(render(encode("pdf page"), "pdf", Style(size=432)))
    assert document[0].get_size() == (432, 432)
    document.close()


def test_engines_make_symbols_of_the_same_kind() -> None:
    for data, level in itertools.product(("a", "https://example.com/" + "x" * 80), LEVELS):
        zxing, reference = encode(data, level, engine="zxing"), encode(data, level, engine="qrcode")
        assert zxing.error_correction == reference.error_correction == level
        assert abs(zxing.version - reference.version) <= 1
        assert decode(render(reference, "png", Style())) == decode(render(zxing, "png", Style())) == [data]


@pytest.mark.parametrize(("size", "quiet_zone"), [(333, 4), (100, 1), (2000, 0)])
def test_svg_path_covers_exactly_the_dark_modules(size: int, quiet_zone: int) -> None:
    """Each rectangle of the path is one run of dark modules in a row, on the module grid."""
    symbol = encode("https://example.com/svg/" + "x" * 60, "H")
    box = layout(symbol.width, Style(size=size, quiet_zone=quiet_zone))
    content = render(symbol, "svg", Style(size=size, quiet_zone=quiet_zone)).decode()
    path = re.search(r' d="([^"]+)"', content)
    assert path is not None
    drawn = bytearray(symbol.width * symbol.width)
    for x, y, w, h, back in re.findall(r"M(\d+) (\d+)h(\d+)v(\d+)h-(\d+)z", path.group(1)):
        assert int(h) == box.module and int(back) == int(w)
        column, row = divmod(int(x) - box.origin, box.module), divmod(int(y) - box.origin, box.module)
        assert column[1] == row[1] == int(w) % box.module == 0
        for i in range(int(w) // box.module):
            drawn[row[0] * symbol.width + column[0] + i] += 1
    assert bytes(drawn) == symbol.modules
    assert decode(content.encode(), "svg") == ["https://example.com/svg/" + "x" * 60]
